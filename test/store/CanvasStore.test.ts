import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as path from "node:path"
import { CanvasStore, layer as canvasLayer } from "../../src/store/CanvasStore.js"
import type { CanvasOptions, Pixel } from "../../src/store/CanvasStore.js"
import * as Database from "../../src/store/Database.js"
import { tempDirectory } from "./tempDirectory.js"

/** The canvas store on the file, opened for one effect and closed after it. */
const withCanvas = (filename: string, options?: CanvasOptions) =>
  <A, E>(use: (canvas: CanvasStore["Type"]) => Effect.Effect<A, E>) =>
    Effect.flatMap(CanvasStore, use).pipe(
      Effect.provide(canvasLayer(options).pipe(Layer.provide(Database.layer({ filename }))))
    )

const pixel = (x: number, y: number, color: number, user = "ada", at = 1_000): Pixel => ({ x, y, color, user, at })

describe("CanvasStore", () => {
  it.scoped("a batch placed before closing the database is there after reopening it", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDirectory, "not", "yet", "there.db")

      const version = yield* withCanvas(filename)((canvas) =>
        canvas.placeBatch([pixel(0, 0, 3), pixel(999, 0, 7), pixel(5, 4, 1), pixel(999, 999, 15)])
      )
      expect(version).toBe(4)

      const board = yield* withCanvas(filename)((canvas) => canvas.load)
      expect(board.version).toBe(4)
      expect(board.pixels.length).toBe(1000 * 1000)
      expect(board.pixels[0]).toBe(3)
      expect(board.pixels[999]).toBe(7)
      expect(board.pixels[4 * 1000 + 5]).toBe(1)
      expect(board.pixels[999 * 1000 + 999]).toBe(15)
      expect(board.pixels.reduce((painted, color) => painted + (color === 0 ? 0 : 1), 0)).toBe(4)
    }))

  it.scoped("the later of two placements on one pixel wins, and cooldowns keep each user's last one", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDirectory, "canvas.db")
      yield* withCanvas(filename, { width: 10, height: 10, palette: 4 })((canvas) =>
        Effect.gen(function*() {
          yield* canvas.placeBatch([pixel(1, 1, 1, "ada", 100), pixel(1, 1, 2, "bob", 200), pixel(2, 2, 3, "ada", 150)])
          yield* canvas.placeBatch([pixel(3, 3, 1, "ada", 120)])
          const board = yield* canvas.load
          expect(board.pixels[11]).toBe(2)
          expect(board.pixels[22]).toBe(3)
          expect(board.version).toBe(4)
          expect(yield* canvas.cooldowns(0)).toEqual(new Map([["ada", 150], ["bob", 200]]))
          expect(yield* canvas.cooldowns(160)).toEqual(new Map([["bob", 200]]))
        })
      )
    }))

  it.scoped("replace writes a whole board (every band, the last one short) and its version, and takes in later cooldowns", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDirectory, "canvas.db")
      // 1000 wide: 4 rows a band, so 250 bands, more than one statement's worth.
      const board = new Uint8Array(1000 * 1002)
      for (let i = 0; i < board.length; i++) board[i] = i % 7
      yield* withCanvas(filename, { width: 1000, height: 1002, palette: 8 })((canvas) =>
        Effect.gen(function*() {
          yield* canvas.placeBatch([pixel(0, 0, 5, "ada", 500), pixel(1, 0, 5, "bob", 900)])
          yield* canvas.replace({ pixels: board, version: 77, cooldowns: [["ada", 700], ["bob", 800], ["cy", 600]] })
        })
      )
      const reopened = yield* withCanvas(filename, { width: 1000, height: 1002, palette: 8 })((canvas) =>
        Effect.all([canvas.load, canvas.cooldowns(0)])
      )
      expect(reopened[0].version).toBe(77)
      expect(Buffer.compare(reopened[0].pixels, board)).toBe(0)
      expect(reopened[1]).toEqual(new Map([["ada", 700], ["bob", 900], ["cy", 600]]))
    }))

  it.scoped("a board is reopened only with its own size; the palette may grow", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDirectory, "canvas.db")
      yield* withCanvas(filename, { width: 10, height: 10, palette: 4 })((canvas) => canvas.placeBatch([pixel(9, 9, 3)]))

      const error = yield* Effect.flip(withCanvas(filename, { width: 20, height: 10, palette: 4 })((canvas) => canvas.load))
      expect(error._tag).toBe("CanvasShapeMismatch")

      const grown = yield* withCanvas(filename, { width: 10, height: 10, palette: 32 })((canvas) => canvas.load)
      expect([grown.palette, grown.pixels[99]]).toEqual([32, 3])
    }))
})
