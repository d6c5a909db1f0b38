/**
 * The two wire formats as codecs of whole WebSocket frames.
 *
 * They are @effect/rpc's `RpcSerialization.json` and `RpcSerialization.msgPack` (msgpackr with
 * records), which clients use as they are. The server side differs in one point: a frame must
 * hold whole messages (a truncated MessagePack frame is an error here, where @effect/rpc's parser
 * would wait for the rest in the next frame), and one stateless codec serves every connection.
 *
 * @since 0.1.0
 */
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import { Unpackr } from "msgpackr"
import type { WireFormat } from "./Subprotocol.js"

/** How one wire format encodes messages into frames and decodes frames into messages. */
export interface WireCodec {
  readonly wire: WireFormat
  /** The kind of WebSocket frame this format travels in. */
  readonly frame: "text" | "binary"
  /** The @effect/rpc serialization a client of this format uses. */
  readonly serialization: RpcSerialization.RpcSerialization["Type"]
  /** Encodes one message into one frame. */
  readonly encode: (message: unknown) => string | Uint8Array
  /**
   * Decodes the messages of one frame; throws if the frame is not valid in this format. Given
   * `max`, it stops after `max + 1` messages: enough to tell that a frame carries too many, at
   * the cost of no more than that.
   */
  readonly decode: (frame: string | Uint8Array, max?: number) => ReadonlyArray<unknown>
}

const jsonEncoder = RpcSerialization.json.unsafeMake()
const textDecoder = new TextDecoder("utf-8", { fatal: true })

/** JSON text frames, one message per frame. */
export const json: WireCodec = {
  wire: "json",
  frame: "text",
  serialization: RpcSerialization.json,
  encode: (message) => jsonEncoder.encode(message) as string,
  decode: (frame) => [JSON.parse(typeof frame === "string" ? frame : textDecoder.decode(frame))]
}

const msgpackEncoder = RpcSerialization.msgPack.unsafeMake()
// The same options as RpcSerialization.msgPack. Without shared structures msgpackr keeps no
// state between frames, so one decoder serves every connection.
const msgpackDecoder = new Unpackr({ useRecords: true })

/** MessagePack binary frames, one or more whole messages per frame. */
export const msgpack: WireCodec = {
  wire: "msgpack",
  frame: "binary",
  serialization: RpcSerialization.msgPack,
  encode: (message) => msgpackEncoder.encode(message)!,
  decode: (frame, max) => {
    if (typeof frame === "string") throw new TypeError("MessagePack frames are binary")
    if (max === undefined || max === Infinity) return msgpackDecoder.unpackMultiple(frame)!
    const values: Array<unknown> = []
    msgpackDecoder.unpackMultiple(frame, (value) => values.push(value) <= max)
    return values
  }
}

/** The codec of a wire format. */
export const of = (wire: WireFormat): WireCodec => (wire === "json" ? json : msgpack)
