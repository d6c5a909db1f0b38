/**
 * Splits a TCP byte stream into lines ending in `\r\n`, the framing of RMI packets.
 *
 * Chunks arrive as the network cuts them: half a packet, several packets, a `\r` at the end
 * of one chunk and its `\n` at the start of the next. The framer holds at most one
 * unfinished line, and refuses a line longer than `maxLineLength` with {@link LineTooLong}
 * as soon as it knows, so neither a 1 MB line nor a line that never ends can grow memory.
 * A bare `\n` is part of the line, as the protocol only ends lines with `\r\n`.
 */
import { Data, Either } from "effect"

/** 64 KiB: the largest RMI packet (a position register with all fields) is under 1 KiB. */
export const DefaultMaxLineLength = 64 * 1024

/** A line (without its `\r\n`) longer than the framer accepts; the stream cannot be trusted after it. */
export class LineTooLong extends Data.TaggedError("LineTooLong")<{
  /** The configured maximum, in bytes. */
  readonly limit: number
  /** How many bytes of the line had been seen when it was refused. */
  readonly length: number
}> {}

/** A stateful splitter of one byte stream into lines. */
export interface LineFramer {
  /** Feeds the next chunk; returns the lines it completes, or the {@link LineTooLong} that ends the stream. */
  readonly push: (chunk: Uint8Array) => Either.Either<ReadonlyArray<string>, LineTooLong>
  /** How many bytes of an unfinished line are held; never more than `maxLineLength + 1`. */
  readonly buffered: () => number
}

const CR = 0x0d
const LF = 0x0a

/** A framer for one stream. */
export const make = (options?: { readonly maxLineLength?: number }): LineFramer => {
  const limit = options?.maxLineLength ?? DefaultMaxLineLength
  let pending: Array<Buffer> = []
  let pendingLength = 0
  let failure: LineTooLong | undefined

  const fail = (length: number) => {
    failure = new LineTooLong({ limit, length })
    pending = []
    pendingLength = 0
    return Either.left(failure)
  }

  const endsWithCr = (chunk: Buffer, start: number, lf: number): boolean =>
    lf > start ? chunk[lf - 1] === CR : pendingLength > 0 && pending[pending.length - 1]!.at(-1) === CR

  const push = (bytes: Uint8Array): Either.Either<ReadonlyArray<string>, LineTooLong> => {
    if (failure !== undefined) return Either.left(failure)
    const chunk = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const lines: Array<string> = []
    let start = 0
    let from = 0
    for (;;) {
      const lf = chunk.indexOf(LF, from)
      if (lf === -1) break
      from = lf + 1
      if (!endsWithCr(chunk, start, lf)) continue
      const length = pendingLength + (lf - start) - 1
      if (length > limit) return fail(length)
      const line = Buffer.concat([...pending, chunk.subarray(start, lf)])
      lines.push(line.toString("utf8", 0, line.length - 1))
      pending = []
      pendingLength = 0
      start = lf + 1
    }
    const rest = chunk.length - start
    // One byte over the limit may be the `\r` of a line that is exactly at the limit.
    if (pendingLength + rest > limit + 1) return fail(pendingLength + rest)
    if (rest > 0) {
      pending.push(Buffer.from(chunk.subarray(start)))
      pendingLength += rest
    }
    return Either.right(lines)
  }

  return { push, buffered: () => pendingLength }
}
