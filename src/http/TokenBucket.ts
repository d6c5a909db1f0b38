/**
 * The flood limit of one session: a token bucket that throttles before it gives up.
 *
 * Each frame takes a token; tokens refill at `perSecond` up to `burst`. A frame that finds the
 * bucket empty is not refused: it goes into debt and waits until the refill pays it off (the
 * session stops reading its socket meanwhile, so TCP slows the sender). A client whose debt
 * reaches a whole `burst` is not slowing down: that frame is a `Flood`, and the session closes
 * with 1008.
 *
 * @since 0.1.0
 */

/** What to do with one frame. */
export type Verdict =
  /** Handle it now. */
  | { readonly _tag: "Accept" }
  /** Handle it after `delayMs`, in order after other delayed frames. */
  | { readonly _tag: "Throttle"; readonly delayMs: number }
  /** The client ignores throttling: close the session. */
  | { readonly _tag: "Flood" }

/** A token bucket; `take` and `delayMs` read the clock they are given, so it is testable without timers. */
export interface TokenBucket {
  /** Takes a token for one frame at `now` (ms). */
  readonly take: (now: number) => Verdict
  /** How long from `now` until the debt is paid (0 when there is none). */
  readonly delayMs: (now: number) => number
  /** Tokens now (negative while in debt). */
  readonly tokens: (now: number) => number
}

const accept: Verdict = { _tag: "Accept" }
const flood: Verdict = { _tag: "Flood" }

/** A full bucket of `burst` tokens refilled at `perSecond`. */
export const make = (options: { readonly perSecond: number; readonly burst: number }, now: number): TokenBucket => {
  let tokens = options.burst
  let updated = now
  const perMs = options.perSecond / 1000
  const refill = (at: number) => {
    if (at > updated) {
      tokens = Math.min(options.burst, tokens + (at - updated) * perMs)
      updated = at
    }
  }
  const delayMs = (at: number) => {
    refill(at)
    return tokens >= 0 ? 0 : Math.ceil(-tokens / perMs)
  }
  return {
    take: (at) => {
      refill(at)
      if (tokens - 1 < -options.burst) return flood
      tokens -= 1
      return tokens >= 0 ? accept : { _tag: "Throttle", delayMs: delayMs(at) }
    },
    delayMs,
    tokens: (at) => {
      refill(at)
      return tokens
    }
  }
}
