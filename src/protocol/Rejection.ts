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
}>

/** Constructors of the rejections, and `$is` / `$match` over them. */
export const { $is, $match, InvalidPayload, MalformedMessage, Undecodable, UnknownRpc, WrongFrameType } = Data
  .taggedEnum<Rejection>()

/** The close code a rejection ends the connection with, or `undefined` if the connection stays. */
export const closeCode = (rejection: Rejection): number | undefined => {
  switch (rejection._tag) {
    case "WrongFrameType":
      return CloseCode.UnsupportedData
    case "Undecodable":
    case "MalformedMessage":
      return CloseCode.InvalidPayload
    case "UnknownRpc":
    case "InvalidPayload":
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
  }
}
