/**
 * A payload encoded at most once per encoding, however many subscribers it
 * reaches. A publisher wraps a value; each socket asks for the bytes of its
 * own serialization; the first asker encodes, the others get the same bytes.
 *
 * ```ts
 * yield* PubSub.broadcast(pubsub, "canvas", Encoded.make(update))
 * // in each session: socket.send(encoded.get("json", JSON.stringify))
 * ```
 *
 * @since 0.1.0
 */

/** A value and its memoized encodings. */
export class Encoded<A> {
  private readonly encodings = new Map<string, unknown>()
  constructor(readonly value: A) {}

  /** The encoding named `key`, computed by `encode` the first time only. */
  get<B>(key: string, encode: (value: A) => B): B {
    let bytes = this.encodings.get(key) as B | undefined
    if (bytes === undefined) {
      bytes = encode(this.value)
      this.encodings.set(key, bytes)
    }
    return bytes
  }

  /** How many encodings were computed (for tests of the encode-once promise). */
  get computed(): number {
    return this.encodings.size
  }
}

/** Wraps a value to be encoded once per encoding. */
export const make = <A>(value: A): Encoded<A> => new Encoded(value)

/** Whether a message is an `Encoded` payload. */
export const isEncoded = (u: unknown): u is Encoded<unknown> => u instanceof Encoded
