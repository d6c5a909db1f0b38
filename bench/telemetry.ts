/**
 * TelemetryLog throughput and the event loop's longest stall while it writes,
 * beside a baseline measured in the same run: the same rows inserted
 * synchronously on the event loop with better-sqlite3, in transactions as large
 * as the worker's.
 *
 *   npx tsx bench/telemetry.ts      → one JSON object on stdout
 *
 * Every phase runs `phaseSeconds` on a fresh file in a temp dir (removed at the
 * end) and is repeated `repetitions` times; figures are medians. A 1 ms timer
 * produces the rows (`offered` rows/s), as robot links would. `idle` measures
 * the same stall meters with nothing running: the machine's noise floor.
 *
 * Stalls are measured in the steady state: from `warmupSeconds` into the
 * phase, under its load from the start. Before that come JIT compilation and
 * the first scavenges after the store opens, which promote what opening it
 * allocated (a one-off 4–5 ms pause that is start-up, not logging).
 * `timerMaxGapMs` is the whole gap; `ownMaxMs` is the part of a gap this
 * process can account for, without the machine's share: the thread waiting for
 * a core, timer wake-ups coming late (see lib/eventLoopStall.ts).
 */
import Sqlite from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Worker } from "node:worker_threads"
import { CanvasStore } from "../src/store/CanvasStore.js"
import { TelemetryRing } from "../src/store/internal/telemetryBatch.js"
import * as Store from "../src/store/Store.js"
import { TelemetryLog } from "../src/store/TelemetryLog.js"
import type { TelemetryRow } from "../src/store/TelemetryLog.js"
import { measureStall } from "./lib/eventLoopStall.js"
import type { Stall } from "./lib/eventLoopStall.js"

const phaseSeconds = 2
const warmupSeconds = 0.5
const repetitions = 3
const transactionRows = 2_000
const robots = 50

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-bench-"))
let files = 0
const freshFile = () => path.join(dir, `bench-${files++}.db`)

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const round = (value: number, digits = 2) => Number(value.toFixed(digits))
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Waits out the warm-up, then measures stalls for the phase. */
const measurePhase = async (): Promise<Stall> => {
  await sleep(warmupSeconds * 1000)
  const stall = measureStall()
  await sleep(phaseSeconds * 1000)
  return stall.stop()
}

/**
 * Pose rows at `rowsPerSecond` for the warm-up and the phase, handed to `sink`
 * by a 1 ms timer (what is due at each tick); the stalls of the phase.
 */
const produce = async (rowsPerSecond: number, sink: (rows: ReadonlyArray<TelemetryRow>) => void): Promise<Stall> => {
  const started = performance.now()
  let sample = 0
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - started) * rowsPerSecond) / 1000)
    const at = Date.now()
    const rows: Array<TelemetryRow> = []
    for (; sample < due; sample++) {
      rows.push({ robot: `robot-${sample % robots}`, at, kind: "pose", x: sample * 0.01, y: -sample * 0.01, theta: 1.5 })
    }
    sink(rows)
  }, 1)
  const stalls = await measurePhase()
  clearInterval(timer)
  return stalls
}

interface PhaseResult {
  readonly rowsPerSecond: number
  readonly dropped: number
  readonly monitorMaxMs: number
  readonly timerMaxGapMs: number
  readonly ownMaxMs: number
  readonly runQueueMaxMs: number
  readonly eventLoopUtilization: number
  readonly canvasMaxMs?: number
  readonly canvasFailures?: number
}

/** The store on a fresh file, ready for `runPromise`. */
const openStore = (filename: string) => ManagedRuntime.make(Store.layer({ database: { filename } }))

/** TelemetryLog at `rowsPerSecond` offered; with `canvas`, a 30 Hz canvas batch on the event loop as well. */
const telemetryLogPhase = async (rowsPerSecond: number, canvas: boolean): Promise<PhaseResult> => {
  const runtime = openStore(freshFile())
  const log = await runtime.runPromise(TelemetryLog)
  const store = await runtime.runPromise(CanvasStore)
  const canvasTimes: Array<number> = []
  let canvasFailures = 0
  let tick = 0
  const canvasTimer = canvas
    ? setInterval(() => {
      const started = performance.now()
      const y = tick++ % 1000
      const pixels = Array.from({ length: 20 }, (_, i) => ({ x: i * 50, y, color: 1, user: `u${i}`, at: Date.now() }))
      runtime.runPromise(store.placeBatch(pixels)).then(
        () => canvasTimes.push(performance.now() - started),
        () => canvasFailures++
      )
    }, 33)
    : undefined

  const started = performance.now()
  const stalls = await produce(rowsPerSecond, (rows) => Effect.runSync(log.appendAll(rows)))
  const stats = await runtime.runPromise(log.stats)
  const seconds = (performance.now() - started) / 1000
  clearInterval(canvasTimer)
  await runtime.dispose()
  return {
    rowsPerSecond: Math.round(stats.committed / seconds),
    dropped: stats.dropped,
    ...stalls,
    ...(canvas ? { canvasMaxMs: Math.max(...canvasTimes), canvasFailures } : {})
  }
}

/** The baseline: the same rows, inserted on the event loop, `transactionRows` per transaction. */
const syncInsertPhase = async (rowsPerSecond: number): Promise<PhaseResult> => {
  const filename = freshFile()
  const schema = openStore(filename)
  await schema.runPromise(Effect.void)
  await schema.dispose()
  const db = new Sqlite(filename)
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = NORMAL")
  const insert = db.prepare("INSERT INTO telemetry (robot, at, kind, x, y, theta, payload) VALUES (?, ?, ?, ?, ?, ?, ?)")
  const insertAll = db.transaction((rows: ReadonlyArray<TelemetryRow>) => {
    for (const r of rows) insert.run(r.robot, r.at, r.kind, r.x, r.y, r.theta, null)
  })
  let buffer: Array<TelemetryRow> = []
  let committed = 0

  const started = performance.now()
  const stalls = await produce(rowsPerSecond, (rows) => {
    for (const row of rows) buffer.push(row)
    while (buffer.length >= transactionRows) {
      insertAll(buffer.slice(0, transactionRows))
      buffer = buffer.slice(transactionRows)
      committed += transactionRows
    }
  })
  const seconds = (performance.now() - started) / 1000
  db.close()
  return { rowsPerSecond: Math.round(committed / seconds), dropped: 0, ...stalls }
}

const idlePhase = async (): Promise<PhaseResult> => ({ rowsPerSecond: 0, dropped: 0, ...(await measurePhase()) })

/** Median of each figure over the repetitions. */
const repeat = async (phase: () => Promise<PhaseResult>) => {
  const results: Array<PhaseResult> = []
  for (let i = 0; i < repetitions; i++) results.push(await phase())
  const keys = Object.keys(results[0]) as Array<keyof PhaseResult>
  return Object.fromEntries(keys.map((key) => [key, round(median(results.map((r) => r[key] ?? 0)))]))
}

/**
 * Event-loop cost of handing 1,000-row batches to a thread: an array of row
 * objects (structured clone) against the TelemetryLog's ring (the rows written
 * into shared columns, and a message naming them).
 */
const postCost = async () => {
  const sink = new Worker("require('node:worker_threads').parentPort.on('message', () => {})", { eval: true })
  const rows = Array.from({ length: 1_000 }, (_, i): TelemetryRow => ({
    robot: `robot-${i % robots}`,
    at: Date.now(),
    kind: "pose",
    x: i,
    y: -i,
    theta: 1.5
  }))
  const batches = 500
  const time = (post: () => void) => {
    const started = performance.now()
    for (let i = 0; i < batches; i++) post()
    return ((performance.now() - started) * 1000) / (batches * rows.length)
  }
  const objects = () => sink.postMessage(rows)
  const ring = new TelemetryRing(100_000)
  const shared = () => {
    for (const row of rows) ring.add(row)
    sink.postMessage(ring.take(0))
  }
  const samples = { objects: [] as Array<number>, shared: [] as Array<number> }
  for (let i = 0; i < repetitions + 1; i++) {
    samples.objects.push(time(objects))
    await sleep(100)
    samples.shared.push(time(shared))
    await sleep(100)
  }
  await sink.terminate()
  return {
    rowObjectsStructuredClone: round(median(samples.objects.slice(1)), 3),
    sharedRing: round(median(samples.shared.slice(1)), 3)
  }
}

const main = async () => {
  const target = 100_000
  const flood = 400_000
  const result = {
    bench: "telemetry",
    node: process.version,
    cpus: os.cpus().length,
    loadAverage: round(os.loadavg()[0]),
    phaseSeconds,
    warmupSeconds,
    repetitions,
    transactionRows,
    idle: await repeat(idlePhase),
    at100k: {
      telemetryLog: await repeat(() => telemetryLogPhase(target, false)),
      baselineSyncInserts: await repeat(() => syncInsertPhase(target))
    },
    flood: {
      telemetryLogWithCanvas: await repeat(() => telemetryLogPhase(flood, true)),
      baselineSyncInserts: await repeat(() => syncInsertPhase(flood))
    },
    postCostMicrosPerRow: await postCost()
  }
  console.log(JSON.stringify(result, null, 2))
}

main().finally(() => fs.rmSync(dir, { recursive: true, force: true }))
