import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as fc from "fast-check"
import * as LineFramer from "../../../src/links/rmi/LineFramer.js"

const bytes = (text: string) => Buffer.from(text, "utf8")
const lines = (framer: LineFramer.LineFramer, chunk: string) => Either.getOrThrow(framer.push(bytes(chunk)))

describe("LineFramer", () => {
  it("splits a chunk that holds several packets", () => {
    const framer = LineFramer.make()
    expect(lines(framer, `{"a":1}\r\n{"b":2}\r\n{"c"`)).toEqual([`{"a":1}`, `{"b":2}`])
    expect(lines(framer, `:3}\r\n`)).toEqual([`{"c":3}`])
    expect(framer.buffered()).toBe(0)
  })

  it("joins a packet cut anywhere, even between \\r and \\n", () => {
    const framer = LineFramer.make()
    expect(lines(framer, `{"Command":`)).toEqual([])
    expect(lines(framer, `"FRC_Abort"}\r`)).toEqual([])
    expect(lines(framer, `\n`)).toEqual([`{"Command":"FRC_Abort"}`])
  })

  it("keeps a bare \\n inside the line: only \\r\\n ends a packet", () => {
    const framer = LineFramer.make()
    expect(lines(framer, `one\ntwo\r\n`)).toEqual([`one\ntwo`])
  })

  it("gives the same lines however the stream is cut", () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: "grapheme" }).filter((s) => !s.includes("\r\n") && !s.endsWith("\r")), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (packets, cuts) => {
          const stream = bytes(packets.map((p) => p + "\r\n").join(""))
          const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
          const framer = LineFramer.make()
          const seen: Array<string> = []
          let from = 0
          for (const to of [...points, stream.length]) {
            seen.push(...Either.getOrThrow(framer.push(stream.subarray(from, to))))
            from = to
          }
          expect(seen).toEqual(packets)
        }
      )
    )
  })

  it("accepts a line of exactly the limit and refuses one byte more", () => {
    const framer = LineFramer.make({ maxLineLength: 10 })
    expect(lines(framer, "0123456789\r\n")).toEqual(["0123456789"])
    expect(framer.push(bytes("0123456789X\r\n"))).toEqual(Either.left(new LineFramer.LineTooLong({ limit: 10, length: 11 })))
  })

  it("refuses a 1 MB line without ever holding more than the limit", () => {
    const framer = LineFramer.make({ maxLineLength: 64 * 1024 })
    const chunk = Buffer.alloc(16 * 1024, "x")
    let result: Either.Either<ReadonlyArray<string>, LineFramer.LineTooLong> = Either.right([])
    let most = 0
    for (let sent = 0; sent < 1024 * 1024 && Either.isRight(result); sent += chunk.length) {
      result = framer.push(chunk)
      most = Math.max(most, framer.buffered())
    }
    expect(Either.isLeft(result) && result.left._tag).toBe("LineTooLong")
    expect(most).toBeLessThanOrEqual(64 * 1024 + 1)
    expect(framer.buffered()).toBe(0)
  })

  it("stays failed after a line too long: the rest of the stream cannot be trusted", () => {
    const framer = LineFramer.make({ maxLineLength: 4 })
    expect(Either.isLeft(framer.push(bytes("too long\r\n")))).toBe(true)
    expect(Either.isLeft(framer.push(bytes("ok\r\n")))).toBe(true)
  })
})
