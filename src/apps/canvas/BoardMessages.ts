/**
 * The canvas's messages between nodes, on the two topics its hub shares on the backplane.
 *
 * - {@link PlacementsTopic}: an entry node's {@link Forward} of a placement it checked, heard by the
 *   board's owner only (the others do not subscribe, so Redis sends it nowhere else).
 * - {@link BoardTopic}: what every node hears. The owner's {@link Tick} (one per tick: the pixels it
 *   committed with their users and times, and its answers to forwarded placements), its
 *   {@link Whole} board (on a resync and when it takes the board over), a new owner's
 *   {@link Claim}, and a {@link Replica} of a node whose board is ahead of the claimant's.
 *
 * Every message is plain data (MessagePack on the backplane) and is checked on arrival: another
 * node's bytes are not trusted to have the right shape.
 *
 * @since 0.1.0
 */
import type { BoardToken } from "./CanvasCluster.js"

/** The topic of the board's frames, claims and replicas: every node subscribes. */
export const BoardTopic = "canvas/board"

/** The topic of forwarded placements: the owner subscribes. */
export const PlacementsTopic = "canvas/placements"

/** Which of the canvas hub's topics cross nodes (the local frames' topic stays on its node). */
export const shares = (topic: string): boolean => topic === BoardTopic || topic === PlacementsTopic

/** A placement an entry node checked (bounds, colour, its view of the cooldown) and hands to the owner. */
export interface Forward {
  readonly _tag: "Forward"
  /** The entry node, to whom the answer goes. */
  readonly node: string
  /** The entry node's number for it. */
  readonly id: number
  readonly user: string
  readonly x: number
  readonly y: number
  readonly color: number
}

/** The owner's answer to one forwarded placement. */
export type Answer =
  | { readonly node: string; readonly id: number; readonly ok: true; readonly seq: number; readonly until: number }
  | {
    readonly node: string
    readonly id: number
    readonly ok: false
    readonly error: "Cooldown" | "OutOfBounds" | "InvalidColor" | "Unavailable"
    readonly retryAfterMs?: number | undefined
    readonly reason?: string | undefined
  }

/** One tick of the owner: the pixels it committed (`seq` is the board's number after them) and its answers. */
export interface Tick {
  readonly _tag: "Tick"
  readonly token: BoardToken
  readonly seq: number
  /** Packed as in `Updates` (5 bytes a pixel); empty when the tick only answers. */
  readonly pixels: Uint8Array
  /** Each pixel's user and time (epoch ms), so that every replica keeps the cooldowns. */
  readonly users: ReadonlyArray<string>
  readonly ats: ReadonlyArray<number>
  readonly answers: ReadonlyArray<Answer>
}

/** The owner's whole board, sent on a resync and when it takes the board over. */
export interface Whole {
  readonly _tag: "Whole"
  readonly token: BoardToken
  readonly seq: number
  readonly pixels: Uint8Array
  /** Recent users' last placements: `[user, epoch ms]`. */
  readonly cooldowns: ReadonlyArray<readonly [string, number]>
}

/** A node that was just given the board asks whether any replica is ahead of its own. */
export interface Claim {
  readonly _tag: "Claim"
  readonly token: BoardToken
  readonly node: string
  readonly seq: number
}

/** A replica ahead of a claimant's board, sent to it whole. */
export interface Replica {
  readonly _tag: "Replica"
  /** The claim it answers. */
  readonly token: BoardToken
  readonly node: string
  readonly seq: number
  readonly pixels: Uint8Array
  readonly cooldowns: ReadonlyArray<readonly [string, number]>
}

/** What crosses on {@link BoardTopic}. */
export type BoardMessage = Tick | Whole | Claim | Replica

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null
const isCount = (u: unknown): u is number => typeof u === "number" && Number.isSafeInteger(u) && u >= 0
const isToken = (u: unknown): u is BoardToken => isRecord(u) && isCount(u.epoch) && isCount(u.counter)
const isBytes = (u: unknown): u is Uint8Array => u instanceof Uint8Array
const isCooldowns = (u: unknown): u is ReadonlyArray<readonly [string, number]> =>
  Array.isArray(u) && u.every((entry) => Array.isArray(entry) && typeof entry[0] === "string" && typeof entry[1] === "number")

const isAnswer = (u: unknown): u is Answer =>
  isRecord(u) && typeof u.node === "string" && isCount(u.id) && (
    u.ok === true ? isCount(u.seq) && typeof u.until === "number" : u.ok === false && typeof u.error === "string"
  )

/** Whether another node's message on {@link PlacementsTopic} is a {@link Forward}. */
export const isForward = (u: unknown): u is Forward =>
  isRecord(u) && u._tag === "Forward" && typeof u.node === "string" && isCount(u.id) && typeof u.user === "string" &&
  isCount(u.x) && isCount(u.y) && isCount(u.color)

/** Whether another node's message on {@link BoardTopic} is a {@link BoardMessage}. */
export const isBoardMessage = (u: unknown): u is BoardMessage => {
  if (!isRecord(u) || !isToken(u.token)) return false
  switch (u._tag) {
    case "Tick":
      return isCount(u.seq) && isBytes(u.pixels) && u.pixels.length % 5 === 0 && Array.isArray(u.users) &&
        Array.isArray(u.ats) && u.users.length * 5 === u.pixels.length && u.ats.length === u.users.length &&
        u.users.every((user) => typeof user === "string") && u.ats.every((at) => typeof at === "number") &&
        Array.isArray(u.answers) && u.answers.every(isAnswer)
    case "Whole":
      return isCount(u.seq) && isBytes(u.pixels) && isCooldowns(u.cooldowns)
    case "Claim":
      return typeof u.node === "string" && isCount(u.seq)
    case "Replica":
      return typeof u.node === "string" && isCount(u.seq) && isBytes(u.pixels) && isCooldowns(u.cooldowns)
    default:
      return false
  }
}
