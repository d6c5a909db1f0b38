/**
 * A canvas on a fresh SQLite file for tests: the actor system, the store, the config and the
 * canvas service, and sinks that record what the canvas sends them.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as ActorSystem from "../../../src/actors/ActorSystem.js"
import type * as PubSub from "../../../src/actors/PubSub.js"
import * as Canvas from "../../../src/apps/canvas/Canvas.js"
import * as CanvasConfig from "../../../src/apps/canvas/CanvasConfig.js"
import type { CanvasFrame } from "../../../src/apps/canvas/CanvasFrame.js"
import * as CanvasStore from "../../../src/store/CanvasStore.js"
import * as Database from "../../../src/store/Database.js"

/** A small board: 8×4, four colours, a 5 s cooldown, 30 Hz. */
export const settings: Partial<CanvasConfig.CanvasSettings> = {
  width: 8,
  height: 4,
  palette: ["#ffffff", "#000000", "#ff0000", "#0000ff"],
  cooldown: CanvasConfig.defaults.cooldown,
  tick: CanvasConfig.defaults.tick
}

/** A temporary directory, removed with the scope. */
export const tempDirectory = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-canvas-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** The canvas (started under its supervisor) and the store of `filename`. */
export const storeLayer = (filename: string, overrides: Partial<CanvasConfig.CanvasSettings> = {}) => {
  const config = CanvasConfig.layerWith({ ...settings, ...overrides })
  const store = Layer.unwrapEffect(
    Effect.map(CanvasConfig.CanvasConfig, (s) => CanvasStore.layer(CanvasConfig.storeOptions(s)))
  ).pipe(Layer.provideMerge(Database.layer({ filename })), Layer.provide(config))
  return Layer.merge(store, config)
}

/** The canvas, its store on `filename`, the actor system. */
export const canvasLayer = (filename: string, overrides: Partial<CanvasConfig.CanvasSettings> = {}) =>
  Canvas.layer.pipe(
    Layer.provideMerge(storeLayer(filename, overrides)),
    Layer.provideMerge(ActorSystem.layer({ logFailures: false }))
  )

/** A sink that records frames; its backlog is whatever the test sets. */
export interface RecordingSink extends PubSub.Sink {
  readonly frames: Array<CanvasFrame>
  backlogBytes: number
}

/** A recording sink. */
export const recordingSink = (): RecordingSink => {
  const sink: RecordingSink = {
    frames: [],
    backlogBytes: 0,
    deliver: (frame) => void sink.frames.push(frame as CanvasFrame),
    backlog: () => sink.backlogBytes
  }
  return sink
}
