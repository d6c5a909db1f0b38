import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as path from "node:path"
import { CanvasStore, layer as canvasLayer } from "../../src/store/CanvasStore.js"
import * as Database from "../../src/store/Database.js"
import { batchPixels } from "./fixtures/paintUntilKilled.js"
import { killAfterAcks } from "../support/killAfterAcks.js"
import { tempDirectory } from "./tempDirectory.js"

const painter = path.join(import.meta.dirname, "fixtures", "paintUntilKilled.ts")

/** Runs the painter on `filename` and kills it with SIGKILL once it has acknowledged `acks` batches. */
const paintThenKill = (filename: string, acks: number) =>
  killAfterAcks<{ batch: number; version: number }>(painter, [filename], acks)

describe("CanvasStore durability", () => {
  it.scopedLive("every pixel acknowledged before kill -9 is there when the file is reopened", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDirectory, "canvas.db")
      const acknowledged = yield* paintThenKill(filename, 200)
      expect(acknowledged.length).toBeGreaterThanOrEqual(200)

      const board = yield* Effect.flatMap(CanvasStore, (canvas) => canvas.load).pipe(
        Effect.provide(canvasLayer().pipe(Layer.provide(Database.layer({ filename }))))
      )
      const last = acknowledged[acknowledged.length - 1]
      expect(board.version).toBeGreaterThanOrEqual(last.version)
      const lost = acknowledged.flatMap(({ batch }) =>
        batchPixels(batch).filter((p) => board.pixels[p.y * board.width + p.x] !== p.color)
      )
      expect(lost).toEqual([])
    }), 60_000)
})
