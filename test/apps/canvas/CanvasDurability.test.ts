import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as path from "node:path"
import { Canvas } from "../../../src/apps/canvas/Canvas.js"
import type { Snapshot } from "../../../src/protocol/CanvasRpcs.js"
import { shape } from "./fixtures/placeUntilKilled.js"
import { killAfterAcks } from "../../support/killAfterAcks.js"
import { canvasLayer, tempDirectory } from "./support.js"

const placer = path.join(import.meta.dirname, "fixtures", "placeUntilKilled.ts")

interface Ack {
  readonly x: number
  readonly y: number
  readonly color: number
  readonly seq: number
}

/** Runs the placer on `filename` and kills it with SIGKILL once it has printed `acks` acknowledgements. */
const placeThenKill = (filename: string, acks: number) => killAfterAcks<Ack>(placer, [filename], acks)

describe("Canvas durability", () => {
  it.scopedLive("every pixel the canvas acknowledged before kill -9 is on the board of the next start", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDirectory, "canvas.db")
      const acknowledged = yield* placeThenKill(filename, 400)
      expect(acknowledged.length).toBeGreaterThanOrEqual(400)

      const board = (yield* Effect.flatMap(Canvas, (canvas) => canvas.snapshot).pipe(
        Effect.provide(canvasLayer(filename, shape))
      )).event as Snapshot
      expect(board.seq).toBeGreaterThanOrEqual(Math.max(...acknowledged.map((ack) => ack.seq)))
      const lost = acknowledged.filter((ack) => board.pixels[ack.y * board.width + ack.x] !== ack.color)
      expect(lost).toEqual([])
    }), 60_000)
})
