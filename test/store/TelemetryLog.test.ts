import { SqlClient } from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as path from "node:path"
import { CanvasStore, layer as canvasLayer } from "../../src/store/CanvasStore.js"
import * as Database from "../../src/store/Database.js"
import { StoreHealth } from "../../src/store/StoreHealth.js"
import { layer as telemetryLayer, TelemetryLog } from "../../src/store/TelemetryLog.js"
import type { TelemetryOptions, TelemetryRow } from "../../src/store/TelemetryLog.js"
import { tempDirectory } from "./tempDirectory.js"

/** The telemetry log (and the database under it) on `filename`. */
const telemetry = (filename: string, options?: TelemetryOptions, database?: Partial<Database.DatabaseOptions>) =>
  telemetryLayer(options).pipe(Layer.provideMerge(Database.layer({ filename, ...database })))

const onTempFile = <A, E, R>(use: (filename: string) => Effect.Effect<A, E, R>) =>
  Effect.flatMap(tempDirectory, (dir) => use(path.join(dir, "telemetry.db")))

const poses = (robot: string, count: number, at: number): Array<TelemetryRow> =>
  Array.from({ length: count }, (_, i) => ({ robot, at: at + i, kind: "pose", x: i, y: -i, theta: i / 1000 }))

const countRows = Effect.flatMap(SqlClient, (sql) => sql<{ n: number }>`SELECT count(*) AS n FROM telemetry`).pipe(
  Effect.map(([row]) => row.n)
)

const hours = (n: number) => n * 3_600_000

describe("TelemetryLog", () => {
  it.scopedLive("rows are committed, in their columns, once flush completes", () =>
    onTempFile((filename) =>
      Effect.gen(function*() {
        const log = yield* TelemetryLog
        const sql = yield* SqlClient
        yield* log.append({ robot: "arm-7", at: 5, kind: "joints", payload: { J1: 10, J2: -20.5 } })
        yield* log.append({ robot: "agv-1", at: 6, kind: "pose", x: 1.5, y: 2.5, theta: 0.25 })
        yield* log.appendAll(poses("agv-2", 10_000, 1_000))
        yield* log.flush

        expect(yield* log.stats).toEqual({ appended: 10_002, committed: 10_002, dropped: 0, queued: 0, sampled: 0, sampleFailures: 0 })
        expect(yield* countRows).toBe(10_002)
        expect(yield* sql`SELECT robot, at, kind, x, y, theta, payload FROM telemetry WHERE at < 10 ORDER BY at`).toEqual([
          { robot: "arm-7", at: 5, kind: "joints", x: null, y: null, theta: null, payload: "{\"J1\":10,\"J2\":-20.5}" },
          { robot: "agv-1", at: 6, kind: "pose", x: 1.5, y: 2.5, theta: 0.25, payload: null }
        ])
      }).pipe(Effect.provide(telemetry(filename)))
    ))

  it.scopedLive("rows reach SQLite exactly as appended: odd values, a ring that wraps, a dictionary that starts over", () =>
    onTempFile((filename) =>
      Effect.gen(function*() {
        const log = yield* TelemetryLog
        const sql = yield* SqlClient
        const odd: Array<TelemetryRow> = [
          { robot: "", kind: "", at: 0 },
          { robot: "ロボット-🤖", kind: "po\"se\n\u0000", at: -1, x: Infinity, y: -Infinity, theta: 0 },
          { robot: "r".repeat(10_000), kind: "pose", at: Number.MAX_SAFE_INTEGER, x: Number.MAX_VALUE, y: 5e-324 },
          { robot: "agv-1", kind: "pose", at: 1.5, x: NaN, theta: -1e-300, payload: null },
          { robot: "agv-1", kind: "arm", at: 2, payload: 0 },
          { robot: "agv-1", kind: "arm", at: 3, payload: false },
          { robot: "agv-1", kind: "arm", at: 4, payload: "" },
          { robot: "agv-1", kind: "arm", at: 5, payload: { joints: [1.25, -0.5], note: "ü\u2028\"'" } },
          { robot: "agv-1", kind: "arm", at: 6, payload: () => 1 }
        ]
        // 6,000 distinct robots: more names than the dictionary keeps, through a ring of 2,500 rows.
        const many = Array.from({ length: 6_000 }, (_, i): TelemetryRow => ({
          robot: `robot-${i}`,
          kind: i % 3 === 0 ? "pose" : `kind-${i % 7}`,
          at: 1_000 + i,
          x: i / 3,
          ...(i % 2 === 0 ? { y: 0.5 - i } : {}),
          ...(i % 5 === 0 ? { payload: { i } } : {})
        }))
        const rows = [...odd, ...many]
        for (let i = 0; i < rows.length; i += 2_000) {
          yield* log.appendAll(rows.slice(i, i + 2_000))
          yield* log.flush
        }

        expect(yield* log.stats).toEqual({ appended: rows.length, committed: rows.length, dropped: 0, queued: 0, sampled: 0, sampleFailures: 0 })
        const stored = yield* sql`SELECT robot, at, kind, x, y, theta, payload FROM telemetry ORDER BY rowid`
        const orNull = (value: number | undefined) => (value === undefined || Number.isNaN(value) ? null : value)
        expect(stored).toEqual(rows.map((row) => ({
          robot: row.robot,
          at: row.at,
          kind: row.kind,
          x: orNull(row.x),
          y: orNull(row.y),
          theta: orNull(row.theta),
          payload: row.payload === undefined ? null : (JSON.stringify(row.payload) ?? null)
        })))
      }).pipe(Effect.provide(telemetry(filename, { maxQueuedRows: 2_500, batchRows: 700 })))
    ))

  it.scopedLive("a row whose payload is not JSON is refused by a throw and counted nowhere; the next rows are kept", () =>
    onTempFile((filename) =>
      Effect.gen(function*() {
        const log = yield* TelemetryLog
        const sql = yield* SqlClient
        log.unsafeAppend({ robot: "agv-1", at: 1, kind: "pose", x: 1 })
        expect(() => log.unsafeAppend({ robot: "agv-1", at: 2, kind: "bad", payload: { n: 1n } })).toThrow(TypeError)
        log.unsafeAppend({ robot: "agv-1", at: 3, kind: "pose", x: 3 })
        yield* log.flush

        expect(yield* log.stats).toEqual({ appended: 2, committed: 2, dropped: 0, queued: 0, sampled: 0, sampleFailures: 0 })
        expect(yield* sql`SELECT at, kind, x FROM telemetry ORDER BY rowid`).toEqual([
          { at: 1, kind: "pose", x: 1 },
          { at: 3, kind: "pose", x: 3 }
        ])
      }).pipe(Effect.provide(telemetry(filename)))
    ))

  it.scopedLive("closing the log flushes it: rows appended just before are on disk", () =>
    onTempFile((filename) =>
      Effect.gen(function*() {
        yield* Effect.flatMap(TelemetryLog, (log) => log.appendAll(poses("agv-1", 2_500, 0))).pipe(
          Effect.provide(telemetry(filename))
        )
        expect(yield* countRows.pipe(Effect.provide(Database.layer({ filename })))).toBe(2_500)
      })
    ))

  it.scopedLive("rows older than the retention are deleted on demand", () =>
    onTempFile((filename) =>
      Effect.gen(function*() {
        const log = yield* TelemetryLog
        const now = Date.now()
        yield* log.appendAll(poses("agv-1", 12_000, now - hours(3)))
        yield* log.appendAll(poses("agv-1", 10, now))
        yield* log.flush

        expect(yield* log.prune).toBe(12_000)
        expect(yield* countRows).toBe(10)
      }).pipe(Effect.provide(telemetry(filename, { retention: "1 hour", retentionInterval: "1 hour" })))
    ))

  it.scopedLive("rows older than the retention are deleted on schedule", () =>
    onTempFile((filename) =>
      Effect.gen(function*() {
        const log = yield* TelemetryLog
        const now = Date.now()
        yield* log.appendAll(poses("agv-2", 100, now - hours(2)))
        yield* log.appendAll(poses("agv-2", 10, now))
        yield* log.flush
        yield* countRows.pipe(Effect.repeat({ until: (n) => n === 10, schedule: Schedule.spaced("20 millis") }))
      }).pipe(Effect.provide(telemetry(filename, { retention: "1 hour", retentionInterval: "100 millis" })))
    ))

  it.scopedLive("past maxQueuedRows, rows are dropped and counted, and append never waits", () =>
    onTempFile((filename) =>
      Effect.gen(function*() {
        const log = yield* TelemetryLog
        // One synchronous burst: the worker cannot acknowledge anything before it ends.
        yield* log.appendAll(poses("agv-1", 5_000, 0))
        expect(yield* log.stats).toEqual({ appended: 5_000, committed: 0, dropped: 4_000, queued: 1_000, sampled: 0, sampleFailures: 0 })

        yield* log.flush
        expect(yield* log.stats).toEqual({ appended: 5_000, committed: 1_000, dropped: 4_000, queued: 0, sampled: 0, sampleFailures: 0 })
        expect(yield* countRows).toBe(1_000)
      }).pipe(Effect.provide(telemetry(filename, { maxQueuedRows: 1_000, batchRows: 100 })))
    ))

  it.scopedLive("canvas writes on the event loop and a flooding worker never meet at SQLite's lock", () =>
    onTempFile((filename) =>
      Effect.gen(function*() {
        const log = yield* TelemetryLog
        const canvas = yield* CanvasStore
        const flood = yield* log.appendAll(poses("agv-1", 300, 0)).pipe(
          Effect.repeat(Schedule.spaced("1 millis")),
          Effect.fork
        )
        // With busy_timeout 0 every collision would be an immediate SQLITE_BUSY, here or in the worker.
        for (let tick = 0; tick < 60; tick++) {
          yield* canvas.placeBatch([{ x: tick, y: tick, color: 1 + (tick % 15), user: `u${tick}`, at: tick }])
          yield* Effect.sleep("5 millis")
        }
        yield* Fiber.interrupt(flood)
        yield* log.flush

        const stats = yield* log.stats
        expect(stats.committed).toBeGreaterThan(0)
        expect(stats.committed + stats.dropped).toBe(stats.appended)
        expect((yield* Effect.flatMap(StoreHealth, (health) => health.get))._tag).toBe("Ok")
        expect((yield* canvas.load).version).toBe(60)
      }).pipe(
        Effect.provide(Layer.provideMerge(canvasLayer(), telemetry(filename, {}, { busyTimeout: 0 })))
      )
    ))
})
