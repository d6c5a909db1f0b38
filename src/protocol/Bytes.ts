/**
 * Binary fields: raw `bin` in MessagePack, base64 text in JSON, from one schema.
 *
 * Encoding yields a `Uint8Array` whose `toJSON` returns base64: msgpackr writes any typed array
 * as `bin` (before it looks at `toJSON`), while `JSON.stringify` calls `toJSON`. Decoding accepts
 * both shapes, so the same schema reads frames of either wire format.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Encoding from "effect/Encoding"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

class Base64Json extends Uint8Array {
  toJSON(): string {
    // Node's encoder where there is one: Effect's takes seconds and hundreds of MB of garbage
    // for a 1000×1000 board's snapshot; the browser bundle has no Buffer and uses Effect's.
    return typeof Buffer === "function"
      ? Buffer.from(this.buffer, this.byteOffset, this.byteLength).toString("base64")
      : Encoding.encodeBase64(this)
  }
}

const view = (bytes: Uint8Array): Uint8Array => new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/**
 * A byte string. The decoded value is always a plain `Uint8Array` (a view, not a copy), whatever
 * the runtime's MessagePack decoder returns (`Buffer` in Node).
 */
export const Bytes: Schema.Schema<Uint8Array, Uint8Array | string> = Schema.transformOrFail(
  Schema.Union(Schema.Uint8ArrayFromSelf, Schema.String),
  Schema.Uint8ArrayFromSelf,
  {
    strict: true,
    decode: (input, _, ast) =>
      typeof input === "string"
        ? Either.mapLeft(Encoding.decodeBase64(input), (error) => new ParseResult.Type(ast, input, error.message))
        : ParseResult.succeed(view(input)),
    encode: (bytes) => ParseResult.succeed(new Base64Json(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength))
  }
).annotations({ identifier: "Bytes" })
