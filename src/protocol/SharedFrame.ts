/**
 * Stream chunks encoded once for any number of subscribers.
 *
 * A chunk of a streaming RPC travels as `{ _tag: "Chunk", requestId, values }`. When one item
 * goes to thousands of subscribers, only `requestId` differs between their frames, so the values
 * are schema-encoded once (not at all when they are their own encoding: {@link encodesAsIs}) and
 * serialized at most once per wire format (lazily, on first use);
 * each subscriber's frame is a fixed head, its request id, and that shared tail. The frame is
 * byte for byte the one @effect/rpc's RpcServer would have encoded for that subscriber.
 *
 * @since 0.1.0
 */
import type * as Rpc from "@effect/rpc/Rpc"
import * as RpcSchema from "@effect/rpc/RpcSchema"
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as SchemaAST from "effect/SchemaAST"
import type { WireFormat } from "./Subprotocol.js"
import * as WireCodec from "./WireCodec.js"

/** One stream chunk, encoded once, ready to be written to any subscriber of its RPC. */
export interface SharedFrame {
  /** The values as the RPC's schema encodes them. */
  readonly values: NonEmptyReadonlyArray<unknown>
  /** The bytes of a `Chunk` message of this wire format after its request id (memoized). */
  readonly tail: (wire: WireFormat) => string | Uint8Array
}

const chunkEncoders = new WeakMap<Rpc.Any, (values: ReadonlyArray<unknown>) => ReadonlyArray<unknown>>()

/**
 * Whether values of `ast` are their own encoding: no transformation (a date as a number, say)
 * and no declaration anywhere inside, only structs, arrays, unions, literals and refinements of
 * them. Such values go out as they are, unchecked: the schema's refinements check what clients
 * send, while what the server streams is built by its typed code (the fleet's views, 30 times a
 * second, would otherwise spend more time in the check than in the encoding).
 */
export const encodesAsIs = (ast: SchemaAST.AST, seen: Set<SchemaAST.AST> = new Set()): boolean => {
  if (seen.has(ast)) return true
  seen.add(ast)
  switch (ast._tag) {
    case "Transformation":
    case "Declaration":
      return false
    case "Refinement":
      return encodesAsIs(ast.from, seen)
    case "Suspend":
      return encodesAsIs(ast.f(), seen)
    case "Union":
      return ast.types.every((member) => encodesAsIs(member, seen))
    case "TupleType":
      return ast.elements.every((element) => encodesAsIs(element.type, seen)) &&
        ast.rest.every((rest) => encodesAsIs(rest.type, seen))
    case "TypeLiteral":
      return ast.propertySignatures.every((property) => encodesAsIs(property.type, seen)) &&
        ast.indexSignatures.every((index) => encodesAsIs(index.type, seen))
    default:
      return true
  }
}

const chunkEncoder = (rpc: Rpc.Any) => {
  let encode = chunkEncoders.get(rpc)
  if (encode === undefined) {
    const schemas = RpcSchema.getStreamSchemas((rpc as unknown as Rpc.AnyWithProps).successSchema.ast)
    if (Option.isNone(schemas)) throw new TypeError(`${rpc._tag} is not a streaming RPC`)
    const items = Schema.Array(schemas.value.success as Schema.Schema<unknown, unknown>)
    encode = encodesAsIs(items.ast) ? (values) => values : Schema.encodeSync(items)
    chunkEncoders.set(rpc, encode)
  }
  return encode
}

// `{"_tag":"Chunk","requestId":` in JSON; in MessagePack the record definition of the message
// and "Chunk", the same in every frame because the message is the first object msgpackr meets.
const jsonHead = "{\"_tag\":\"Chunk\",\"requestId\":"
const msgpackHead = (() => {
  const template = WireCodec.msgpack.encode({ _tag: "Chunk", requestId: "", values: 0 }) as Uint8Array
  if (template[template.length - 2] !== 0xa0 || template[template.length - 1] !== 0x00) {
    throw new Error("SharedFrame: unexpected MessagePack layout of a Chunk message")
  }
  return template.slice(0, template.length - 2)
})()

const msgpackTail = (values: ReadonlyArray<unknown>): Uint8Array => {
  const message = WireCodec.msgpack.encode({ _tag: "Chunk", requestId: "", values }) as Uint8Array
  for (let i = 0; i < msgpackHead.length; i++) {
    if (message[i] !== msgpackHead[i]) throw new Error("SharedFrame: unexpected MessagePack layout of a Chunk message")
  }
  return message.slice(msgpackHead.length + 1)
}

// Clients number their requests from 1, so the subscribers of one stream share a few request
// ids: the frame of each (wire, id) is built once, for at most this many ids per wire format.
// (Keyed by the id itself: a key made per delivery would cost an allocation and a hash each.)
const maxFramesPerShared = 64

class EncodedOnce implements SharedFrame {
  private json: string | undefined
  private msgpack: Uint8Array | undefined
  /** The frames built, by request id, for each wire format. */
  private jsonFrames: Map<string, string> | undefined
  private msgpackFrames: Map<string, Uint8Array> | undefined
  constructor(readonly values: NonEmptyReadonlyArray<unknown>) {}
  tail(wire: WireFormat): string | Uint8Array {
    if (wire === "json") return this.json ??= `,"values":${WireCodec.json.encode(this.values)}}`
    return this.msgpack ??= msgpackTail(this.values)
  }
  frame(wire: WireFormat, requestId: string): string | Uint8Array {
    const frames: Map<string, string | Uint8Array> = wire === "json"
      ? this.jsonFrames ??= new Map()
      : this.msgpackFrames ??= new Map()
    let frame = frames.get(requestId)
    if (frame === undefined) {
      frame = buildFrame(this, wire, requestId)
      if (frames.size < maxFramesPerShared) frames.set(requestId, frame)
    }
    return frame
  }
}

/**
 * Encodes stream items of a streaming RPC once. Throws (a defect) if the values do not match the
 * RPC's schema or the RPC does not stream.
 */
export const encodeOnce = <R extends Rpc.Any>(
  rpc: R,
  values: NonEmptyReadonlyArray<Rpc.SuccessChunk<R>>
): SharedFrame => new EncodedOnce(chunkEncoder(rpc)(values) as NonEmptyReadonlyArray<unknown>)

/**
 * The frame of a shared chunk for one subscriber: the `Chunk` message of the request
 * `requestId` (its decimal digits, as the client sent them), in the subscriber's wire format.
 * Subscribers with the same request id get the same bytes, built once.
 */
export const chunkFrame = (frame: SharedFrame, wire: WireFormat, requestId: string): string | Uint8Array =>
  frame instanceof EncodedOnce ? frame.frame(wire, requestId) : buildFrame(frame, wire, requestId)

const buildFrame = (frame: SharedFrame, wire: WireFormat, requestId: string): string | Uint8Array => {
  const tail = frame.tail(wire)
  if (typeof tail === "string") return `${jsonHead}"${requestId}"${tail}`
  const idHeader = requestId.length < 32 ? [0xa0 | requestId.length] : [0xd9, requestId.length]
  const out = new Uint8Array(msgpackHead.length + idHeader.length + requestId.length + tail.length)
  out.set(msgpackHead)
  let offset = msgpackHead.length
  for (const byte of idHeader) out[offset++] = byte
  for (let i = 0; i < requestId.length; i++) out[offset++] = requestId.charCodeAt(i)
  out.set(tail, offset)
  return out
}
