/**
 * The telemetry writer thread, started by TelemetryLog.ts. It owns its own better-sqlite3
 * connection to the database file and:
 * - commits the batches the event loop posts (internal/telemetryBatch.ts: rows in a ring of
 *   shared columns), several per transaction up to `maxTransactionRows`, each transaction
 *   through the write gate, and acknowledges them once committed;
 * - keeps a batch that failed because the file is unavailable and retries it;
 * - deletes rows older than the retention, in small transactions;
 * - checkpoints the WAL, so the event loop's connection never has to;
 * - runs the samplers it is given (`TelemetryLog.sample`): modules that make rows here, at their
 *   own rate, from memory shared with the event loop, so those rows never cross it.
 */
import Database from "better-sqlite3"
import * as ParentPort from "../../node/ParentPort.js"
import type { TelemetrySampler } from "../TelemetryLog.js"
import type { BatchMessage, RingColumns } from "./telemetryBatch.js"
import { withWorkerGate } from "./writeGateCells.js"

/** What SQLite said, for the event loop to classify (`StoreUnavailable`). */
export interface SqliteFailure {
  readonly code: string
  readonly message: string
}

/** The thread's messages. */
export interface TelemetryWorkerProtocol {
  readonly data: {
    readonly filename: string
    /** The `WriteGate`'s buffer. */
    readonly gate: SharedArrayBuffer
    readonly ring: RingColumns
    readonly busyTimeoutMillis: number
    readonly maxTransactionRows: number
    readonly retentionMillis: number
    readonly retentionIntervalMillis: number
    readonly pruneChunkRows: number
    readonly retryMillis: number
    readonly checkpointIntervalMillis: number
    /** Primary SQLite codes of a file that is unavailable (retried), not of a bad row. */
    readonly unavailableCodes: ReadonlyArray<string>
  }
  readonly in:
    | BatchMessage
    | { readonly type: "prune"; readonly id: number }
    | { readonly type: "close" }
    | { readonly type: "sampler"; readonly id: number; readonly module: string; readonly config: unknown; readonly hz: number }
    | { readonly type: "samplerInput"; readonly id: number; readonly input: unknown }
    | { readonly type: "samplerStop"; readonly id: number }
  readonly out:
    | { readonly type: "ready" }
    | { readonly type: "committed"; readonly seq: number; readonly rows: number }
    | ({ readonly type: "failed" } & SqliteFailure)
    | ({ readonly type: "rejected"; readonly seq: number; readonly rows: number } & SqliteFailure)
    | { readonly type: "pruned"; readonly id: number; readonly deleted: number }
    | ({ readonly type: "pruneFailed"; readonly id: number } & SqliteFailure)
    | { readonly type: "sampled"; readonly committed: number; readonly dropped: number }
    | { readonly type: "samplerFailed"; readonly id: number; readonly error: string }
}

const parent = ParentPort.make<TelemetryWorkerProtocol>()
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
} = parent.data

const cells = new Int32Array(gate)

const codeOf = (error: unknown) => (error as { readonly code?: unknown } | undefined)?.code
const isUnavailable = (error: unknown) => unavailableCodes.includes(String(codeOf(error)).split("_", 2).join("_"))
const describe = (error: unknown): SqliteFailure => ({
  code: String(codeOf(error) ?? "UNKNOWN"),
  message: String((error as { readonly message?: unknown } | undefined)?.message ?? error)
})

let db: Database.Database
try {
  db = new Database(filename, { fileMustExist: true, timeout: busyTimeoutMillis })
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = NORMAL")
} catch (error) {
  parent.post({ type: "failed", ...describe(error) })
  process.exit(1)
}

const insert = db.prepare(
  "INSERT INTO telemetry (robot, at, kind, x, y, theta, payload) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
const orNull = (value: number) => (Number.isNaN(value) ? null : value)

// The event loop does not reuse a batch's slots before it is acknowledged.
const { at, cursor, kind, robot, theta, x, y } = ring
const capacity = at.length

/** A batch taken in message order, with the names its ids refer to then. */
interface Received {
  readonly seq: number
  readonly start: number
  readonly count: number
  readonly payloads: ReadonlyArray<string | undefined>
  readonly dictionary: ReadonlyArray<string>
}

const writeBatches = db.transaction((batches: ReadonlyArray<Received>) => {
  for (const { count, dictionary, payloads, start } of batches) {
    for (let i = 0, j = start; i < count; i++, j = j + 1 === capacity ? 0 : j + 1) {
      insert.run(dictionary[robot[j]], at[j], dictionary[kind[j]], orNull(x[j]), orNull(y[j]), orNull(theta[j]), payloads[i] ?? null)
    }
  }
})

// The names a batch's ids refer to: the dictionary as of that batch (later batches only append to it).
let dictionary: Array<string> = []

/** Takes a batch: orders its rows' writes before our reads, and resolves its names now, in message order. */
const receive = (batch: BatchMessage): Received => {
  Atomics.load(cursor, 0)
  if (batch.reset) dictionary = []
  for (const name of batch.names) dictionary.push(name)
  return { seq: batch.seq, start: batch.start, count: batch.count, payloads: batch.payloads, dictionary }
}

const deleteExpired = db.prepare(
  "DELETE FROM telemetry WHERE rowid IN (SELECT rowid FROM telemetry WHERE at < ? ORDER BY at LIMIT ?)"
)

const pending: Array<Received> = []
let timer: ReturnType<typeof setTimeout> | ReturnType<typeof setImmediate> | undefined

const schedule = (delay: number) => {
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
    withWorkerGate(cells, () => writeBatches.immediate(group))
    pending.splice(0, taken)
    parent.post({ type: "committed", seq, rows })
  } catch (error) {
    if (isUnavailable(error)) {
      parent.post({ type: "failed", ...describe(error) })
      return schedule(retryMillis)
    }
    pending.splice(0, taken)
    parent.post({ type: "rejected", seq, rows, ...describe(error) })
  }
  if (pending.length > 0) schedule(0)
}

/** Deletes rows past retention, a chunk per transaction so batches commit in between. */
let pruning: Promise<number> | undefined
const prune = () =>
  (pruning ??= (async () => {
    const cutoff = Date.now() - retentionMillis
    let deleted = 0
    for (;;) {
      const { changes } = withWorkerGate(cells, () => db.transaction(() => deleteExpired.run(cutoff, pruneChunkRows)).immediate())
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

/** A sampler module's instance, once imported; inputs that came before wait for it. */
interface Running {
  instance: TelemetrySampler | undefined
  readonly early: Array<unknown>
  timer: ReturnType<typeof setInterval> | undefined
}
const samplers = new Map<number, Running>()

/** One sampler's rows of now, committed in one transaction through the gate. */
const sampleRows = db.transaction((instance: TelemetrySampler) => {
  let rows = 0
  instance.sample((robotName, when, kindName, px, py, ptheta, payload) => {
    insert.run(robotName, when, kindName, orNull(px), orNull(py), orNull(ptheta), payload ?? null)
    rows++
  })
  return rows
})

const runSampler = (instance: TelemetrySampler) => {
  try {
    const rows = withWorkerGate(cells, () => sampleRows.immediate(instance))
    if (rows > 0) parent.post({ type: "sampled", committed: rows, dropped: 0 })
  } catch (error) {
    // Samples are taken again at the next turn: what this one held is counted and let go.
    parent.post({ type: "sampled", committed: 0, dropped: 1 })
    if (isUnavailable(error)) parent.post({ type: "failed", ...describe(error) })
  }
}

const startSampler = (id: number, module: string, config: unknown, hz: number) => {
  const running: Running = { instance: undefined, early: [], timer: undefined }
  samplers.set(id, running)
  import(module).then(
    (loaded: { readonly sampler: (config: unknown) => TelemetrySampler }) => {
      if (samplers.get(id) !== running) return
      const instance = loaded.sampler(config)
      for (const input of running.early.splice(0)) instance.onInput(input)
      running.instance = instance
      running.timer = setInterval(() => runSampler(instance), Math.max(1, Math.round(1000 / hz)))
    },
    (error) => parent.post({ type: "samplerFailed", id, error: String(error) })
  )
}

parent.onMessage((message) => {
  switch (message.type) {
    case "sampler":
      return startSampler(message.id, message.module, message.config, message.hz)
    case "samplerInput": {
      const running = samplers.get(message.id)
      if (running === undefined) return
      if (running.instance === undefined) running.early.push(message.input)
      else running.instance.onInput(message.input)
      return
    }
    case "samplerStop": {
      clearInterval(samplers.get(message.id)?.timer)
      samplers.delete(message.id)
      return
    }
    case "batch":
      pending.push(receive(message))
      return schedule(0)
    case "prune":
      return void prune().then(
        (deleted) => parent.post({ type: "pruned", id: message.id, deleted }),
        (error) => parent.post({ type: "pruneFailed", id: message.id, ...describe(error) })
      )
    case "close":
      housekeeping.forEach(clearInterval)
      for (const running of samplers.values()) clearInterval(running.timer)
      db.close()
      // In a worker, exit ends this thread only; a pending drain or prune is dropped with it.
      return process.exit(0)
  }
})

parent.post({ type: "ready" })
