/**
 * The fleet's 100 Hz control loop, in process (`ControlLoop.make`) and on its worker thread
 * (`ControlLoop.makeWorker`, what the fleet runs): tick jitter, overruns and missed ticks, idle,
 * under telemetry load, and under the load with the main thread also blocked 20 ms every 100 ms
 * (a stand-in for long GC pauses and message bursts), beside baselines measured in the same run: the same fixed grid driven by bare timers (the
 * floor the machine allows), and how far a naive `setInterval(10)` drifts from it.
 *
 * The worker also runs under the load with every core of the machine busy (one spinning
 * process per core, as when a broker and the service fill a small machine): at the fleet's
 * nice -10, and under SCHED_FIFO (`realtimePriority`, granted only with CAP_SYS_NICE or an
 * RLIMIT_RTPRIO: `granted` says), beside bare timers with the cores busy.
 *
 *   npx tsx bench/control-loop.ts      → one JSON object on stdout
 *
 * `load` publishes `robots` arms' telemetry at 100 Hz each (from a 1 ms timer, as polling
 * links would) to the fleet hub, where the fleet state actor and the loop's speed guard both
 * subscribe. Every phase runs `phaseSeconds`; jitter percentiles cover the whole phase.
 */
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import { performance } from "node:perf_hooks"
import { ActorSystem, PubSub } from "../src/actors/index.js"
import * as ControlLoop from "../src/apps/fleet/ControlLoop.js"
import * as Leases from "../src/apps/fleet/Leases.js"
import * as StopLatches from "../src/apps/fleet/StopLatches.js"
import * as FleetState from "../src/apps/fleet/FleetState.js"
import * as SpeedGuard from "../src/apps/fleet/SpeedGuard.js"
import * as LinkEvent from "../src/links/LinkEvent.js"

const phaseSeconds = 4
const robots = 200
const realtimePriority = 10
const round = (value: number, digits = 3) => Number(value.toFixed(digits))

const percentiles = (samples: Array<number>) => {
  const sorted = [...samples].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
  return { ticks: sorted.length, jitterP50Ms: round(at(0.5)), jitterP99Ms: round(at(0.99)), jitterMaxMs: round(at(1)) }
}

/** The timer floor: the same fixed grid, driven by bare `setTimeout`s, no actor and no phases. */
const bareGrid = () =>
  new Promise<ReturnType<typeof percentiles>>((resolve) => {
    const samples: Array<number> = []
    const start = performance.now()
    let n = 0
    const tick = () => {
      const due = start + n * 10
      const now = performance.now()
      if (now < due) return void setTimeout(tick, Math.ceil(due - now))
      samples.push(now - due)
      n++
      if (n >= phaseSeconds * 100) return resolve(percentiles(samples))
      setTimeout(tick, Math.max(0, Math.ceil(start + n * 10 - performance.now())))
    }
    tick()
  })

/** What a naive `setInterval(10)` loop does: how far behind the grid it is after the phase. */
const setIntervalDrift = () =>
  new Promise<number>((resolve) => {
    const start = performance.now()
    let n = 0
    const timer = setInterval(() => {
      if (++n < phaseSeconds * 100) return
      clearInterval(timer)
      resolve(round(performance.now() - (start + n * 10)))
    }, 10)
  })

/** Keeps every core busy with a spinning process until the returned function is called. */
const busyCores = () => {
  const spinners = Array.from(
    { length: os.availableParallelism() },
    () => spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" })
  )
  return () => spinners.forEach((spinner) => spinner.kill("SIGKILL"))
}

/** How many of this process's threads run under SCHED_FIFO (field 41 of /proc's `stat`). */
const fifoThreads = () =>
  fs.readdirSync("/proc/self/task").filter((tid) => {
    try {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, "utf8")
      return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[38] === "1"
    } catch {
      return false
    }
  }).length

const busyWait = (ms: number) => {
  const until = performance.now() + ms
  while (performance.now() < until) {
    // the main thread busy
  }
}

const telemetry = (robot: number, tick: number): LinkEvent.ArmTelemetry => ({
  _tag: "ArmTelemetry",
  robot: `arm-${robot}`,
  at: Date.now(),
  programStatus: "running",
  servoReady: true,
  tpMode: false,
  override: 100,
  moving: true,
  position: { X: 500 + Math.sin(tick / 100) * 100, Y: robot, Z: 300, W: 180, P: 0, R: 0 },
  joints: { J1: 0, J2: 0, J3: 0, J4: 0, J5: 0, J6: 0 },
  timeTag: tick * 10
})

type Variant = "inProcess" | "worker"

/** Log lines go to stderr: stdout is the JSON. */
const logToStderr = Logger.replace(
  Logger.defaultLogger,
  Logger.make((options) => void process.stderr.write(`${Logger.logfmtLogger.log(options)}\n`))
)

interface LoopOptions {
  readonly blockMain?: boolean
  readonly realtime?: boolean
}

const loopPhase = (variant: Variant, load: boolean, { blockMain = false, realtime = false }: LoopOptions = {}) =>
  Effect.scoped(
    Effect.gen(function*() {
      const system = yield* ActorSystem.make({ logFailures: false })
      const hub = yield* PubSub.make()
      const latches = yield* StopLatches.make()
      yield* system.spawn(FleetState.make({ hub, arms: [], leases: Leases.make(), latches, roster: new Map() }), { name: "state" })
      const window = phaseSeconds * 100
      const loop = variant === "worker"
        ? yield* system.spawn(
          ControlLoop.makeWorker({
            phases: SpeedGuard.workerPhases(hub),
            window,
            priority: -10,
            realtimePriority: realtime ? realtimePriority : undefined
          }),
          { name: "control" }
        )
        : yield* system.spawn(ControlLoop.make({ phases: (self) => SpeedGuard.phases(hub, self), window }), { name: "control" })
      const granted = fifoThreads() > 0
      const m0 = yield* loop.ask(ControlLoop.getMetrics)
      let published = 0
      let generator: NodeJS.Timeout | undefined
      if (load) {
        const start = performance.now()
        generator = setInterval(() => {
          const due = Math.floor((performance.now() - start) / 10) * robots
          while (published < due) {
            const i = published++
            Effect.runFork(LinkEvent.publish(hub, telemetry(i % robots, Math.floor(i / robots))))
          }
        }, 1)
      }
      const blocker = blockMain ? setInterval(() => busyWait(20), 100) : undefined
      yield* Effect.sleep(`${phaseSeconds} seconds`)
      clearInterval(generator)
      clearInterval(blocker)
      const m = yield* loop.ask(ControlLoop.getMetrics)
      return {
        ticks: m.ticks - m0.ticks,
        jitterP50Ms: round(m.jitterP50Ms),
        jitterP99Ms: round(m.jitterP99Ms),
        jitterMaxMs: round(m.jitterMaxMs),
        durationP99Ms: round(m.durationP99Ms),
        overruns: m.overruns - m0.overruns,
        missed: m.missed - m0.missed,
        ...(load ? { telemetryPerSecond: Math.round(published / phaseSeconds) } : {}),
        ...(realtime ? { realtimePriority, granted } : {})
      }
    })
  ).pipe(Effect.provide(logToStderr))

const variantPhases = async (variant: Variant) => ({
  loopIdle: await Effect.runPromise(loopPhase(variant, false)),
  loopUnderLoad: { robots, ...(await Effect.runPromise(loopPhase(variant, true))) },
  loopUnderLoadMainBlocked: { robots, ...(await Effect.runPromise(loopPhase(variant, true, { blockMain: true }))) }
})

/** Runs `measure` with every core busy. */
const withCoresBusy = async <A>(measure: () => Promise<A>) => {
  const stop = busyCores()
  try {
    return { busyCores: os.availableParallelism(), ...(await measure()) }
  } finally {
    stop()
  }
}

const main = async () => {
  const loadAverageBefore = os.loadavg().map((l) => round(l, 2))
  const result = {
    benchmark: "control-loop",
    hz: 100,
    phaseSeconds,
    baselineBareTimerGrid: await bareGrid(),
    naiveSetIntervalDriftMs: await setIntervalDrift(),
    inProcess: await variantPhases("inProcess"),
    worker: await variantPhases("worker"),
    coresBusy: {
      baselineBareTimerGrid: await withCoresBusy(bareGrid),
      workerUnderLoad: await withCoresBusy(() => Effect.runPromise(loopPhase("worker", true))),
      workerUnderLoadRealtime: await withCoresBusy(() => Effect.runPromise(loopPhase("worker", true, { realtime: true })))
    },
    loadAverage: { before: loadAverageBefore, after: os.loadavg().map((l) => round(l, 2)) }
  }
  console.log(JSON.stringify(result, null, 2))
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
