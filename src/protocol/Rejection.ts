/**
 * Bad input from a client, as the RPC bridge reports it to the gateway (to count in metrics).
 *
 * A rejection either closes the connection with a standard close code (the client's frames can
 * no longer be trusted) or answers one request with an error and keeps the connection.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as CloseCode from "./CloseCode.js"

/** Why a client's input was rejected. */
export type Rejection = Data.TaggedEnum<{
  /** A binary frame on a JSON connection or a text frame on a MessagePack one. Closes with 1003. */
  WrongFrameType: { readonly expected: "text" | "binary" }
  /** The frame's bytes do not decode in the connection's wire format. Closes with 1007. */
  Undecodable: { readonly message: string }
  /** The frame decodes, but not to an @effect/rpc client message. Closes with 1007. */
  MalformedMessage: { readonly message: string }
  /** A request for an RPC this server does not have. That request fails; the connection stays. */
  UnknownRpc: { readonly tag: string; readonly requestId: string }
  /** A request whose payload does not match its RPC's schema. That request fails; the connection stays. */
  InvalidPayload: { readonly tag: string; readonly requestId: string; readonly message: string }
  /**
   * A frame carrying more messages than the connection's limit (the gateway's `RATE_LIMIT_BURST`):
   * no client batches that many, and its rate limit could never admit them. Closes with 1008.
   */
  TooManyRequests: { readonly max: number }
  /**
   * A request past one of the connection's limits: `requests_in_flight` (requests answered once,
   * not yet answered) or `open_streams` (streams open). That request is refused at once with an
   * `Overloaded` defect; the connection stays.
   */
  Overloaded: { readonly tag: string; readonly requestId: string; readonly limit: OverloadedLimit; readonly max: number }
}>

/** Which limit an `Overloaded` request ran into. */
export type OverloadedLimit = "requests_in_flight" | "open_streams"

/** Constructors of the rejections, and `$is` / `$match` over them. */
export const {
  $is,
  $match,
  InvalidPayload,
  MalformedMessage,
  Overloaded,
  TooManyRequests,
  Undecodable,
  UnknownRpc,
  WrongFrameType
} = Data.taggedEnum<Rejection>()

/**
 * The defect a refused (`Overloaded`) request's `Exit` carries, on the wire. Protocol v1's error
 * schemas are frozen, so the refusal travels as a defect, as an unknown RPC's does; this one is
 * structured. `Schema.Defect` (what a client decodes it with) makes it an `Error` whose `name`
 * is `"Overloaded"` and whose `cause` is this object: see `isOverloaded`.
 */
export interface OverloadedDefect {
  readonly _tag: "Overloaded"
  readonly name: "Overloaded"
  readonly message: string
  readonly limit: OverloadedLimit
  readonly max: number
}

/** The wire defect of an `Overloaded` rejection. */
export const overloadedDefect = (rejection: Extract<Rejection, { readonly _tag: "Overloaded" }>): OverloadedDefect => ({
  _tag: "Overloaded",
  name: "Overloaded",
  message: describe(rejection),
  limit: rejection.limit,
  max: rejection.max
})

/**
 * Whether a request's defect, as a client sees it (an `Error` decoded by `Schema.Defect`, or the
 * raw encoded object), is the gateway's `Overloaded` refusal: the request was not run; retry
 * it once fewer requests or streams are open.
 */
export const isOverloaded = (defect: unknown): boolean => {
  if (typeof defect !== "object" || defect === null) return false
  if (defect instanceof Error) return defect.name === "Overloaded"
  return (defect as { readonly _tag?: unknown })._tag === "Overloaded"
}

/** The close code a rejection ends the connection with, or `undefined` if the connection stays. */
export const closeCode = (rejection: Rejection): number | undefined => {
  switch (rejection._tag) {
    case "WrongFrameType":
      return CloseCode.UnsupportedData
    case "Undecodable":
    case "MalformedMessage":
      return CloseCode.InvalidPayload
    case "TooManyRequests":
      return CloseCode.PolicyViolation
    case "UnknownRpc":
    case "InvalidPayload":
    case "Overloaded":
      return undefined
  }
}

/** A one-line description of a rejection, fit for a close reason or a log line. */
export const describe = (rejection: Rejection): string => {
  switch (rejection._tag) {
    case "WrongFrameType":
      return rejection.expected === "text"
        ? "Binary frame on a JSON connection (fleetvisor.v1.json takes text frames)"
        : "Text frame on a MessagePack connection (fleetvisor.v1.msgpack takes binary frames)"
    case "Undecodable":
      return `Frame does not decode: ${rejection.message}`
    case "MalformedMessage":
      return `Not an RPC message: ${rejection.message}`
    case "UnknownRpc":
      return `Unknown RPC: ${rejection.tag}`
    case "InvalidPayload":
      return `Invalid payload for ${rejection.tag}: ${rejection.message}`
    case "TooManyRequests":
      return `Too many requests in one frame: more than ${rejection.max}, the most a session may send at once`
    case "Overloaded":
      return rejection.limit === "requests_in_flight"
        ? `Overloaded: ${rejection.tag} refused, ${rejection.max} requests are in flight already (wait for their answers)`
        : `Overloaded: ${rejection.tag} refused, ${rejection.max} streams are open already (close one first)`
  }
}
