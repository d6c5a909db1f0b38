/**
 * The telemetry writer thread, started by TelemetryLog.ts. It owns its own
 * better-sqlite3 connection to the database file and:
 * - commits the batches the event loop posts, several per transaction up to
 *   `maxTransactionRows`, each transaction through the write gate, and
 *   acknowledges them once committed;
 * - keeps a batch that failed because the file is unavailable and retries it;
 * - deletes rows older than the retention, in small transactions;
 * - checkpoints the WAL, so the event loop's connection never has to.
 *
 * Plain JavaScript on purpose: `new Worker(url)` loads this file with Node's
 * own loader, the same under node, `node --import tsx`, tsx and vitest,
 * without relying on a TypeScript loader being inherited by the thread.
 *
 * In:  workerData.ring: the shared columns of internal/telemetryBatch.ts
 *      { type: "batch", seq, start, count, reset, names, payloads }: rows in the ring
 *      { type: "prune", id }  { type: "close" }
 * Out: { type: "ready" }  { type: "committed", seq, rows }  { type: "failed", code, message }
 *      { type: "rejected", seq, rows, code, message }  { type: "pruned", id, deleted }
 *      { type: "pruneFailed", id, code, message }
 */
import Database from "better-sqlite3"
import { parentPort, workerData } from "node:worker_threads"

const {
  busyTimeoutMillis,
  checkpointIntervalMillis,
  filename,
  gate,
  maxTransactionRows,
  pruneChunkRows,
  retentionIntervalMillis,
  retentionMillis,
  retryMillis,
  ring,
  unavailableCodes
} = workerData

// The write gate, see WriteGate.ts: the event loop wants it → do not begin.
const HOLDER = 0
const WANTED = 1
const FREE = 0
const WORKER = 2
const cells = new Int32Array(gate)

const withGate = (write) => {
  for (;;) {
    if (Atomics.load(cells, WANTED) === 0 && Atomics.compareExchange(cells, HOLDER, FREE, WORKER) === FREE) break
    Atomics.wait(cells, HOLDER, Atomics.load(cells, HOLDER), 1)
  }
  try {
    return write()
  } finally {
    Atomics.store(cells, HOLDER, FREE)
    Atomics.notify(cells, HOLDER)
  }
}

const isUnavailable = (error) => unavailableCodes.includes(String(error?.code).split("_", 2).join("_"))
const describe = (error) => ({ code: String(error?.code ?? "UNKNOWN"), message: String(error?.message ?? error) })

let db
try {
  db = new Database(filename, { fileMustExist: true, timeout: busyTimeoutMillis })
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = NORMAL")
} catch (error) {
  parentPort.postMessage({ type: "failed", ...describe(error) })
  process.exit(1)
}

const insert = db.prepare(
  "INSERT INTO telemetry (robot, at, kind, x, y, theta, payload) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
const orNull = (value) => (Number.isNaN(value) ? null : value)

// The ring of internal/telemetryBatch.ts. The event loop does not reuse a batch's slots before it is acknowledged.
const { at, cursor, kind, robot, theta, x, y } = ring
const capacity = at.length

const writeBatches = db.transaction((batches) => {
  for (const { count, dictionary, payloads, start } of batches) {
    for (let i = 0, j = start; i < count; i++, j = j + 1 === capacity ? 0 : j + 1) {
      insert.run(dictionary[robot[j]], at[j], dictionary[kind[j]], orNull(x[j]), orNull(y[j]), orNull(theta[j]), payloads[i] ?? null)
    }
  }
})

// The names a batch's ids refer to: the dictionary as of that batch (later batches only append to it).
let dictionary = []

/** Takes a batch: orders its rows' writes before our reads, and resolves its names now, in message order. */
const receive = (batch) => {
  Atomics.load(cursor, 0)
  if (batch.reset) dictionary = []
  for (const name of batch.names) dictionary.push(name)
  return { seq: batch.seq, start: batch.start, count: batch.count, payloads: batch.payloads, dictionary }
}

const deleteExpired = db.prepare(
  "DELETE FROM telemetry WHERE rowid IN (SELECT rowid FROM telemetry WHERE at < ? ORDER BY at LIMIT ?)"
)

const pending = []
let timer

const schedule = (delay) => {
  if (timer !== undefined) return
  timer = delay > 0 ? setTimeout(drain, delay) : setImmediate(drain)
}

/** Commits the oldest batches in one transaction, then yields to the message queue. */
function drain() {
  timer = undefined
  if (pending.length === 0) return
  let taken = 0
  let rows = 0
  while (taken < pending.length && (taken === 0 || rows + pending[taken].count <= maxTransactionRows)) {
    rows += pending[taken++].count
  }
  const group = pending.slice(0, taken)
  const seq = group[taken - 1].seq
  try {
    withGate(() => writeBatches.immediate(group))
    pending.splice(0, taken)
    parentPort.postMessage({ type: "committed", seq, rows })
  } catch (error) {
    if (isUnavailable(error)) {
      parentPort.postMessage({ type: "failed", ...describe(error) })
      return schedule(retryMillis)
    }
    pending.splice(0, taken)
    parentPort.postMessage({ type: "rejected", seq, rows, ...describe(error) })
  }
  if (pending.length > 0) schedule(0)
}

/** Deletes rows past retention, a chunk per transaction so batches commit in between. */
let pruning
const prune = () =>
  (pruning ??= (async () => {
    const cutoff = Date.now() - retentionMillis
    let deleted = 0
    for (;;) {
      const { changes } = withGate(() => db.transaction(() => deleteExpired.run(cutoff, pruneChunkRows)).immediate())
      deleted += changes
      if (changes < pruneChunkRows) return deleted
      await new Promise(setImmediate)
    }
  })().finally(() => (pruning = undefined)))

const checkpoint = () => {
  try {
    db.pragma("wal_checkpoint(PASSIVE)")
  } catch {
    // A busy or failing checkpoint is retried on the next tick; writes report the file's health.
  }
}

const housekeeping = [
  setInterval(checkpoint, checkpointIntervalMillis),
  setInterval(() => prune().catch(() => {}), retentionIntervalMillis)
]

parentPort.on("message", (message) => {
  switch (message.type) {
    case "batch":
      pending.push(receive(message))
      return schedule(0)
    case "prune":
      return void prune().then(
        (deleted) => parentPort.postMessage({ type: "pruned", id: message.id, deleted }),
        (error) => parentPort.postMessage({ type: "pruneFailed", id: message.id, ...describe(error) })
      )
    case "close":
      housekeeping.forEach(clearInterval)
      db.close()
      // In a worker, exit ends this thread only; a pending drain or prune is dropped with it.
      return process.exit(0)
  }
})

parentPort.postMessage({ type: "ready" })
