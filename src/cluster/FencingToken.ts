/**
 * A lease's fencing token: `(epoch, counter)`, compared lexicographically. The counter grows with
 * every lease Redis grants; the epoch grows each time Redis is found to have lost its memory (and
 * with it the counter), so a token granted later always compares greater, across restarts too.
 * A robot's owner hands its token with every command, and whoever acts on the command refuses a
 * token older than the newest it has seen.
 *
 * In Redis a lease's value is `node|epoch|counter`.
 *
 * @since 0.1.0
 */

/** A fencing token. */
export interface FencingToken {
  readonly epoch: number
  readonly counter: number
}

/** Negative when `a` is older than `b`, zero when equal, positive when newer. */
export const compare = (a: FencingToken, b: FencingToken): number =>
  a.epoch !== b.epoch ? a.epoch - b.epoch : a.counter - b.counter

/** Whether `a` was granted after `b`. */
export const isNewer = (a: FencingToken, b: FencingToken): boolean => compare(a, b) > 0

/** `epoch.counter`, for logs. */
export const format = (token: FencingToken): string => `${token.epoch}.${token.counter}`

/** A lease's value in Redis, read back: who holds it and its token. */
export interface LeaseValue {
  readonly node: string
  readonly token: FencingToken
}

/** Reads a lease's value `node|epoch|counter`; `undefined` when it is not one. */
export const parseLease = (value: string): LeaseValue | undefined => {
  const parts = value.split("|")
  if (parts.length !== 3) return undefined
  const epoch = Number(parts[1])
  const counter = Number(parts[2])
  if (!Number.isSafeInteger(epoch) || !Number.isSafeInteger(counter) || parts[0] === "") return undefined
  return { node: parts[0], token: { epoch, counter } }
}
