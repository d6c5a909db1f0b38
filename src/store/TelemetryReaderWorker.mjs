/**
 * The telemetry reader thread, started by TelemetryReader.ts: answers queries of one robot's
 * recent telemetry on a read-only better-sqlite3 connection of its own, so a scan never runs
 * on the event loop and never holds the write lock (WAL: readers and the writer do not block
 * each other). Plain JavaScript for the reason TelemetryWorker.mjs gives.
 *
 * In:  { type: "query", id, robot, since, until, scanLimit, points }  { type: "close" }
 * Out: { type: "rows", id, rows, scanned, truncated }  { type: "failed", id, code, message }
 *
 * A query reads the newest `scanLimit` rows of the robot between `since` and `until` (epoch
 * ms), oldest first, and thins them evenly to at most `points` (the first and last kept).
 */
import Database from "better-sqlite3"
import { parentPort, workerData } from "node:worker_threads"

const { busyTimeoutMillis, filename } = workerData

let db
let select

const open = () => {
  if (db !== undefined) return
  db = new Database(filename, { readonly: true, fileMustExist: true, timeout: busyTimeoutMillis })
  select = db.prepare(
    "SELECT at, kind, x, y, theta, payload FROM telemetry WHERE at >= ? AND at <= ? AND robot = ? ORDER BY at DESC LIMIT ?"
  )
}

const thin = (rows, points) => {
  if (rows.length <= points) return rows
  const step = (rows.length - 1) / (points - 1)
  return Array.from({ length: points }, (_, i) => rows[Math.round(i * step)])
}

const sampleOf = (row) => {
  const sample = { at: row.at, kind: row.kind }
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

const describe = (error) => ({ code: String(error?.code ?? "UNKNOWN"), message: String(error?.message ?? error) })

parentPort.on("message", (message) => {
  switch (message.type) {
    case "query": {
      try {
        open()
        const newest = select.all(message.since, message.until, message.robot, message.scanLimit)
        newest.reverse()
        parentPort.postMessage({
          type: "rows",
          id: message.id,
          rows: thin(newest, message.points).map(sampleOf),
          scanned: newest.length,
          truncated: newest.length === message.scanLimit
        })
      } catch (error) {
        parentPort.postMessage({ type: "failed", id: message.id, ...describe(error) })
      }
      return
    }
    case "close":
      db?.close()
      return process.exit(0)
  }
})
