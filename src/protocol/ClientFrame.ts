/**
 * Reading a frame a client sent: its kind, its bytes, and the shape of the @effect/rpc messages
 * in it. Whether a request names a known RPC with a valid payload is the bridge's business.
 *
 * @since 0.1.0
 */
import type { FromClientEncoded } from "@effect/rpc/RpcMessage"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Rejection from "./Rejection.js"
import type { WireCodec } from "./WireCodec.js"

// @effect/rpc request ids are bigint counters, sent as decimal strings.
const RequestId = Schema.String.pipe(Schema.pattern(/^[0-9]{1,20}$/))

const ClientMessage = Schema.Union(
  Schema.Struct({
    _tag: Schema.Literal("Request"),
    id: RequestId,
    tag: Schema.String,
    payload: Schema.Unknown,
    headers: Schema.Array(Schema.Tuple(Schema.String, Schema.String)),
    traceId: Schema.optional(Schema.String),
    spanId: Schema.optional(Schema.String),
    sampled: Schema.optional(Schema.Boolean)
  }),
  Schema.Struct({ _tag: Schema.Literal("Ack"), requestId: RequestId }),
  Schema.Struct({ _tag: Schema.Literal("Interrupt"), requestId: RequestId }),
  Schema.Struct({ _tag: Schema.Literal("Ping") }),
  Schema.Struct({ _tag: Schema.Literal("Eof") })
)

const decodeMessage = Schema.decodeUnknownEither(ClientMessage)

/**
 * Decodes the client messages of one frame with the connection's codec, or says why not. A frame
 * of more than `maxMessages` messages is `TooManyRequests`, found before the rest of it is decoded
 * or any of it checked.
 */
export const decode = (
  codec: WireCodec,
  frame: string | Uint8Array,
  maxMessages = Infinity
): Either.Either<ReadonlyArray<FromClientEncoded>, Rejection.Rejection> => {
  if ((typeof frame === "string") !== (codec.frame === "text")) {
    return Either.left(Rejection.WrongFrameType({ expected: codec.frame }))
  }
  let decoded: ReadonlyArray<unknown>
  try {
    decoded = codec.decode(frame, maxMessages)
  } catch (error) {
    return Either.left(Rejection.Undecodable({ message: error instanceof Error ? error.message : String(error) }))
  }
  if (decoded.length > maxMessages) return Either.left(Rejection.TooManyRequests({ max: maxMessages }))
  const messages: Array<FromClientEncoded> = []
  for (const value of decoded) {
    const message = decodeMessage(value)
    if (Either.isLeft(message)) {
      return Either.left(Rejection.MalformedMessage({ message: ParseResult.TreeFormatter.formatErrorSync(message.left) }))
    }
    messages.push(message.right as FromClientEncoded)
  }
  return Either.right(messages)
}
