/**
 * The frames nodes send each other on the Redis backplane, MessagePack-encoded, each carrying
 * the backplane protocol's major version `v` so that a cluster can be upgraded one node at a
 * time: a newer minor version only adds optional fields (which an older node ignores), and a
 * frame of a newer major version is reported as such ({@link Decoded} `UnknownVersion`) for the
 * node to count and drop, never to crash on.
 *
 * - a **message frame** `{ v, origin, seq, topic, message }` is one broadcast; `seq` numbers the
 *   broadcasts of one origin node on one topic from 1, one by one, so a receiver sees a gap;
 *   `e: 1` marks a payload that was wrapped in `Encoded` and is wrapped again on arrival;
 * - a **resync frame** `{ v, origin, topic, reason }` asks every node for a topic's state whole.
 *
 * @since 0.1.0
 */
import { Backplane, Encoded } from "../actors/index.js"
import { Packr } from "msgpackr"

/** The backplane protocol's major version, which this node speaks. */
export const protocolVersion = 1

/** One broadcast between nodes. */
export interface MessageFrame {
  readonly v: number
  readonly origin: string
  readonly seq: number
  readonly topic: string
  readonly message: unknown
}

/** A request for a topic's state whole. */
export interface ResyncFrame {
  readonly v: number
  readonly origin: string
  readonly topic: string
  readonly reason: Backplane.ResyncReason
}

/** What a frame's bytes turned out to be. */
export type Decoded<F> =
  | { readonly _tag: "Frame"; readonly frame: F }
  /** A well-formed frame of a major version this node does not speak. */
  | { readonly _tag: "UnknownVersion"; readonly version: number }
  /** Not MessagePack, or not a frame. */
  | { readonly _tag: "Invalid" }

const packr = new Packr({ useRecords: false })
const invalid = { _tag: "Invalid" } as const
const reasons: ReadonlySet<string> = new Set<Backplane.ResyncReason>(["gap", "reconnect", "requested"])

/** Encodes one broadcast; throws when the message is not serializable. */
export const encodeMessage = (origin: string, seq: number, topic: string, message: unknown): Buffer =>
  Encoded.isEncoded(message)
    ? packr.pack({ v: protocolVersion, origin, seq, topic, message: message.value, e: 1 })
    : packr.pack({ v: protocolVersion, origin, seq, topic, message })

/** Encodes a resync request. */
export const encodeResync = (origin: string, topic: string, reason: Backplane.ResyncReason): Buffer =>
  packr.pack({ v: protocolVersion, origin, topic, reason })

const header = (bytes: Buffer): Decoded<Record<string, unknown>> => {
  let value: unknown
  try {
    value = packr.unpack(bytes)
  } catch {
    return invalid
  }
  if (typeof value !== "object" || value === null) return invalid
  const frame = value as Record<string, unknown>
  const v = frame.v
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) return invalid
  if (v > protocolVersion) return { _tag: "UnknownVersion", version: v }
  if (typeof frame.origin !== "string" || typeof frame.topic !== "string") return invalid
  return { _tag: "Frame", frame }
}

/** Decodes a message frame. */
export const decodeMessage = (bytes: Buffer): Decoded<MessageFrame> => {
  const decoded = header(bytes)
  if (decoded._tag !== "Frame") return decoded
  const frame = decoded.frame
  if (typeof frame.seq !== "number" || !Number.isInteger(frame.seq) || frame.seq < 1) return invalid
  const message = frame.e === 1 ? Encoded.make(frame.message) : frame.message
  return {
    _tag: "Frame",
    frame: { v: frame.v as number, origin: frame.origin as string, seq: frame.seq, topic: frame.topic as string, message }
  }
}

/** Decodes a resync frame. */
export const decodeResync = (bytes: Buffer): Decoded<ResyncFrame> => {
  const decoded = header(bytes)
  if (decoded._tag !== "Frame") return decoded
  const frame = decoded.frame
  if (typeof frame.reason !== "string" || !reasons.has(frame.reason)) return invalid
  return {
    _tag: "Frame",
    frame: { v: frame.v as number, origin: frame.origin as string, topic: frame.topic as string, reason: frame.reason as Backplane.ResyncReason }
  }
}
