/**
 * The telemetry reader thread, started by TelemetryReader.ts: answers queries of one robot's
 * recent telemetry on a read-only better-sqlite3 connection of its own, so a scan never runs
 * on the event loop and never holds the write lock (WAL: readers and the writer do not block
 * each other).
 *
 * A query reads the newest `scanLimit` rows of the robot between `since` and `until` (epoch
 * ms), oldest first, and thins them evenly to at most `points` (the first and last kept).
 */
import Database from "better-sqlite3"
import * as ParentPort from "../../node/ParentPort.js"
import type { TelemetryQuery, TelemetrySample } from "../TelemetryReader.js"

/** The thread's messages. */
export interface TelemetryReaderWorkerProtocol {
  readonly data: { readonly filename: string; readonly busyTimeoutMillis: number }
  readonly in:
    | ({ readonly type: "query"; readonly id: number; readonly scanLimit: number } & TelemetryQuery)
    | { readonly type: "close" }
  readonly out:
    | {
      readonly type: "rows"
      readonly id: number
      readonly rows: ReadonlyArray<TelemetrySample>
      readonly scanned: number
      readonly truncated: boolean
    }
    | { readonly type: "failed"; readonly id: number; readonly code: string; readonly message: string }
}

/** A row of the `telemetry` table, as selected. */
interface Row {
  readonly at: number
  readonly kind: string
  readonly x: number | null
  readonly y: number | null
  readonly theta: number | null
  readonly payload: string | null
}

const parent = ParentPort.make<TelemetryReaderWorkerProtocol>()
const { busyTimeoutMillis, filename } = parent.data

let db: Database.Database | undefined
let select: Database.Statement<[number, number, string, number], Row>

const open = () => {
  if (db !== undefined) return
  db = new Database(filename, { readonly: true, fileMustExist: true, timeout: busyTimeoutMillis })
  select = db.prepare(
    "SELECT at, kind, x, y, theta, payload FROM telemetry WHERE at >= ? AND at <= ? AND robot = ? ORDER BY at DESC LIMIT ?"
  )
}

const thin = (rows: ReadonlyArray<Row>, points: number) => {
  if (rows.length <= points) return rows
  const step = (rows.length - 1) / (points - 1)
  return Array.from({ length: points }, (_, i) => rows[Math.round(i * step)])
}

const sampleOf = (row: Row): TelemetrySample => {
  const sample: { -readonly [K in keyof TelemetrySample]: TelemetrySample[K] } = { at: row.at, kind: row.kind }
  if (row.x !== null) sample.x = row.x
  if (row.y !== null) sample.y = row.y
  if (row.theta !== null) sample.theta = row.theta
  if (row.payload !== null) {
    try {
      sample.payload = JSON.parse(row.payload)
    } catch {
      // A payload that is not JSON is left out; the sample's time and pose still count.
    }
  }
  return sample
}

const describe = (error: unknown) => {
  const failure = error as { readonly code?: unknown; readonly message?: unknown } | undefined
  return { code: String(failure?.code ?? "UNKNOWN"), message: String(failure?.message ?? error) }
}

parent.onMessage((message) => {
  switch (message.type) {
    case "query": {
      try {
        open()
        const newest = select.all(message.since, message.until, message.robot, message.scanLimit)
        newest.reverse()
        parent.post({
          type: "rows",
          id: message.id,
          rows: thin(newest, message.points).map(sampleOf),
          scanned: newest.length,
          truncated: newest.length === message.scanLimit
        })
      } catch (error) {
        parent.post({ type: "failed", id: message.id, ...describe(error) })
      }
      return
    }
    case "close":
      db?.close()
      return process.exit(0)
  }
})
