import { SqlClient } from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as path from "node:path"
import { AuditLog, layer as auditLayer } from "../../src/store/AuditLog.js"
import { CanvasStore, layer as canvasLayer } from "../../src/store/CanvasStore.js"
import type { Pixel } from "../../src/store/CanvasStore.js"
import * as Database from "../../src/store/Database.js"
import { StoreHealth } from "../../src/store/StoreHealth.js"
import { tempDirectory } from "./tempDirectory.js"

/** The canvas and the audit log on a fresh file. */
const store = Layer.unwrapScoped(Effect.map(tempDirectory, (dir) =>
  Layer.mergeAll(canvasLayer(), auditLayer).pipe(
    Layer.provideMerge(Database.layer({ filename: path.join(dir, "store.db") }))
  )))

/** One pixel on each of `count` bands, starting at row `y`. */
const stripe = (y: number, count: number, color: number): Array<Pixel> =>
  Array.from({ length: count }, (_, i) => ({ x: 0, y: y + 4 * i, color, user: "ada", at: 1 }))

const status = Effect.flatMap(StoreHealth, (health) => Effect.map(health.get, (status) => status._tag))

describe("StoreHealth", () => {
  it.scoped("a read-only file fails writes with StoreUnavailable and degrades health until a write succeeds", () =>
    Effect.gen(function*() {
      const canvas = yield* CanvasStore
      const sql = yield* SqlClient
      yield* canvas.placeBatch(stripe(0, 1, 1))

      // query_only makes SQLite refuse every write on this connection with SQLITE_READONLY,
      // the code a file that became read-only gives (chmod would not stop root, who runs CI).
      yield* sql.unsafe("PRAGMA query_only = ON")
      const error = yield* Effect.flip(canvas.placeBatch(stripe(1, 1, 2)))
      expect([error._tag, error.reason, error.code]).toEqual(["StoreUnavailable", "read-only", "SQLITE_READONLY"])
      expect(yield* status).toBe("Degraded")

      yield* sql.unsafe("PRAGMA query_only = OFF")
      yield* canvas.placeBatch(stripe(2, 1, 3))
      expect(yield* status).toBe("Ok")

      const board = yield* canvas.load
      expect([board.pixels[0], board.pixels[1000], board.pixels[2000], board.version]).toEqual([1, 0, 3, 2])
    }).pipe(Effect.provide(store)))

  it.scoped("a full disk fails the batch whole, and nothing committed before is lost", () =>
    Effect.gen(function*() {
      const canvas = yield* CanvasStore
      const sql = yield* SqlClient
      yield* canvas.placeBatch(stripe(0, 10, 5))

      // max_page_count caps the file at its current size (it cannot go lower): the next write
      // that needs a new page gets SQLITE_FULL from the real engine, as on a full disk.
      yield* sql.unsafe("PRAGMA max_page_count = 1")
      const error = yield* Effect.flip(canvas.placeBatch(stripe(40, 50, 6)))
      expect([error.reason, error.code]).toEqual(["disk-full", "SQLITE_FULL"])
      expect(yield* status).toBe("Degraded")

      // Space is freed: the canvas actor retries the same batch on its next tick.
      yield* sql.unsafe("PRAGMA max_page_count = 1073741823")
      expect(yield* canvas.placeBatch(stripe(40, 50, 6))).toBe(60)
      expect(yield* status).toBe("Ok")

      const board = yield* canvas.load
      expect(stripe(0, 10, 5).every((p) => board.pixels[p.y * 1000] === 5)).toBe(true)
      expect(stripe(40, 50, 6).every((p) => board.pixels[p.y * 1000] === 6)).toBe(true)
    }).pipe(Effect.provide(store)))

  it.scoped("with no one writing, a probe finds out that the file takes writes again", () =>
    Effect.gen(function*() {
      const audit = yield* AuditLog
      const health = yield* StoreHealth
      const sql = yield* SqlClient

      yield* sql.unsafe("PRAGMA query_only = ON")
      const entry = { at: 1, who: "ada", robot: "agv-1", command: "startPause", params: {}, result: "ok" } as const
      expect((yield* Effect.flip(audit.record(entry))).reason).toBe("read-only")
      yield* sql.unsafe("PRAGMA query_only = OFF")

      const recovered = yield* health.changes.pipe(
        Stream.takeUntil((status) => status._tag === "Ok"),
        Stream.runDrain,
        Effect.fork
      )
      expect(yield* status).toBe("Degraded")
      yield* TestClock.adjust(Database.defaultProbeInterval)
      yield* Fiber.join(recovered)
      expect(yield* status).toBe("Ok")
      expect(yield* audit.query({ limit: 10 })).toEqual([])
    }).pipe(Effect.provide(store)))
})
