/**
 * JSON payloads to and from the message schemas. Decoding is lenient (unknown fields are
 * dropped) and fails with a {@link MessageDecodeError} that says where and why, so a link can
 * count and log bad messages. Encoding is strict: a message with a field the schema does not
 * know, or a value the schema forbids, is refused instead of sent.
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import { Connection } from "./Connection.js"
import { Factsheet } from "./Factsheet.js"
import { InstantActions } from "./InstantActions.js"
import { Order } from "./Order.js"
import { State } from "./State.js"
import type { TopicName } from "./Topic.js"
import { Visualization } from "./Visualization.js"

/** The schema of the message on each topic. */
export const schemas = {
  order: Order,
  instantActions: InstantActions,
  state: State,
  visualization: Visualization,
  connection: Connection,
  factsheet: Factsheet
} as const

/** The message type carried on topic `T`. */
export type MessageOf<T extends TopicName> = Schema.Schema.Type<(typeof schemas)[T]>

/** One problem found in a payload: where (e.g. `actions[0].blockingType`) and what. */
export interface Issue {
  readonly path: string
  readonly message: string
}

/** A payload that is not valid JSON or does not match the message schema. */
export class MessageDecodeError extends Data.TaggedError("MessageDecodeError")<{
  /** The schema's name, e.g. `State`. */
  readonly schema: string
  /** The whole failure as ParseResult's TreeFormatter renders it. */
  readonly reason: string
  readonly issues: ReadonlyArray<Issue>
}> {
  override get message() {
    return this.reason
  }
}

/** An outgoing message the schema refuses (a wrong value, or a field it does not know). */
export class MessageEncodeError extends Data.TaggedError("MessageEncodeError")<{
  readonly schema: string
  readonly reason: string
  readonly issues: ReadonlyArray<Issue>
}> {
  override get message() {
    return this.reason
  }
}

const textDecoder = new TextDecoder()

const renderPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (acc, key) => (typeof key === "number" ? `${acc}[${key}]` : acc === "" ? String(key) : `${acc}.${String(key)}`),
    ""
  )

const schemaName = (schema: Schema.Schema.Any): string =>
  Option.getOrElse(SchemaAST.getIdentifierAnnotation(schema.ast), () => "message")

const describe = (schema: Schema.Schema.Any, error: ParseResult.ParseError) => ({
  schema: schemaName(schema),
  reason: ParseResult.TreeFormatter.formatErrorSync(error),
  issues: ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => ({
    path: renderPath(issue.path),
    message: issue.message
  }))
})

// JSON nested thousands of levels deep overflows the stack of the schema's decoder or of its error formatter.
const thrown = (schema: Schema.Schema.Any, error: unknown): MessageDecodeError => {
  const reason = error instanceof RangeError ? `payload nested too deeply (${error.message})` : String(error)
  return new MessageDecodeError({ schema: schemaName(schema), reason, issues: [{ path: "", message: reason }] })
}

/** A decoder of JSON payloads (text or bytes, as MQTT delivers them) into messages of `schema`. */
export const decoder = <A, I>(
  schema: Schema.Schema<A, I>
): ((payload: string | Uint8Array) => Either.Either<A, MessageDecodeError>) => {
  const decodeJson = Schema.decodeUnknownEither(Schema.parseJson(schema), { errors: "all" })
  const decodeValue = Schema.decodeUnknownEither(schema)
  const decodeAll = (text: string) =>
    Either.mapLeft(decodeJson(text), (error) => new MessageDecodeError(describe(schema, error)))
  return (payload) => {
    try {
      const text = typeof payload === "string" ? payload : textDecoder.decode(payload)
      let value: unknown
      try {
        value = JSON.parse(text)
      } catch {
        return decodeAll(text)
      }
      // The common case, a valid message, takes the short way; a bad one is decoded again to say all that is wrong.
      const decoded = decodeValue(value)
      return Either.isRight(decoded) ? Either.right(decoded.right) : decodeAll(text)
    } catch (error) {
      return Either.left(thrown(schema, error))
    }
  }
}

/** A decoder of payloads already parsed from JSON (and checked against the official schemas, see `Inbound`) into messages of `schema`. */
export const valueDecoder = <A, I>(schema: Schema.Schema<A, I>): ((value: unknown) => Either.Either<A, MessageDecodeError>) => {
  const decodeFirst = Schema.decodeUnknownEither(schema)
  const decodeAll = Schema.decodeUnknownEither(schema, { errors: "all" })
  return (value) => {
    try {
      const decoded = decodeFirst(value)
      if (Either.isRight(decoded)) return Either.right(decoded.right)
      return Either.mapLeft(decodeAll(value), (error) => new MessageDecodeError(describe(schema, error)))
    } catch (error) {
      return Either.left(thrown(schema, error))
    }
  }
}

/** An encoder of messages of `schema` into JSON text, refusing fields the schema does not know. */
export const encoder = <A, I>(schema: Schema.Schema<A, I>): ((message: A) => Either.Either<string, MessageEncodeError>) => {
  const encodeJson = Schema.encodeEither(Schema.parseJson(schema), { errors: "all", onExcessProperty: "error" })
  return (message) =>
    Either.mapLeft(encodeJson(message), (error) => new MessageEncodeError(describe(schema, error)))
}

const decoders = {
  order: decoder(Order),
  instantActions: decoder(InstantActions),
  state: decoder(State),
  visualization: decoder(Visualization),
  connection: decoder(Connection),
  factsheet: decoder(Factsheet)
}

const valueDecoders = {
  order: valueDecoder(Order),
  instantActions: valueDecoder(InstantActions),
  state: valueDecoder(State),
  visualization: valueDecoder(Visualization),
  connection: valueDecoder(Connection),
  factsheet: valueDecoder(Factsheet)
}

const encoders = {
  order: encoder(Order),
  instantActions: encoder(InstantActions),
  state: encoder(State),
  visualization: encoder(Visualization),
  connection: encoder(Connection),
  factsheet: encoder(Factsheet)
}

/** Decodes the payload of a message received on `topic`. */
export const decode = <T extends TopicName>(
  topic: T,
  payload: string | Uint8Array
): Either.Either<MessageOf<T>, MessageDecodeError> =>
  (decoders[topic] as (payload: string | Uint8Array) => Either.Either<MessageOf<T>, MessageDecodeError>)(payload)

/** Decodes the payload of a message received on `topic`, already parsed from JSON. */
export const decodeValue = <T extends TopicName>(
  topic: T,
  value: unknown
): Either.Either<MessageOf<T>, MessageDecodeError> =>
  (valueDecoders[topic] as (value: unknown) => Either.Either<MessageOf<T>, MessageDecodeError>)(value)

/** Encodes a message to send on `topic` as JSON text. */
export const encode = <T extends TopicName>(
  topic: T,
  message: MessageOf<T>
): Either.Either<string, MessageEncodeError> =>
  (encoders[topic] as (message: MessageOf<T>) => Either.Either<string, MessageEncodeError>)(message)
