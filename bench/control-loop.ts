/**
 * The fleet's 100 Hz control loop, in process (`ControlLoop.make`) and on its worker thread
 * (`ControlLoop.makeWorker`, what the fleet runs): tick jitter, overruns and missed ticks, idle,
 * under telemetry load, and under the load with the main thread also blocked 20 ms every 100 ms
 * (a stand-in for long GC pauses and message bursts), beside baselines measured in the same run: the same fixed grid driven by bare timers (the
 * floor the machine allows), and how far a naive `setInterval(10)` drifts from it.
 *
 *   npx tsx bench/control-loop.ts      → one JSON object on stdout
 *
 * `load` publishes `robots` arms' telemetry at 100 Hz each (from a 1 ms timer, as polling
 * links would) to the fleet hub, where the fleet state actor and the loop's speed guard both
 * subscribe. Every phase runs `phaseSeconds`; jitter percentiles cover the whole phase.
 */
import * as Effect from "effect/Effect"
import { performance } from "node:perf_hooks"
import { ActorSystem, PubSub } from "../src/actors/index.js"
import * as ControlLoop from "../src/apps/fleet/ControlLoop.js"
import * as FleetState from "../src/apps/fleet/FleetState.js"
import * as SpeedGuard from "../src/apps/fleet/SpeedGuard.js"
import * as LinkEvent from "../src/links/LinkEvent.js"

const phaseSeconds = 4
const robots = 200
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
  override: 100,
  moving: true,
  position: { X: 500 + Math.sin(tick / 100) * 100, Y: robot, Z: 300, W: 180, P: 0, R: 0 },
  joints: { J1: 0, J2: 0, J3: 0, J4: 0, J5: 0, J6: 0 },
  timeTag: tick * 10
})

type Variant = "inProcess" | "worker"

const loopPhase = (variant: Variant, load: boolean, blockMain = false) =>
  Effect.scoped(
    Effect.gen(function*() {
      const system = yield* ActorSystem.make({ logFailures: false })
      const hub = yield* PubSub.make()
      yield* system.spawn(FleetState.make({ hub, arms: [] }), { name: "state" })
      const window = phaseSeconds * 100
      const loop = variant === "worker"
        ? yield* system.spawn(ControlLoop.makeWorker({ phases: SpeedGuard.workerPhases(hub), window, priority: -10 }), { name: "control" })
        : yield* system.spawn(ControlLoop.make({ phases: (self) => SpeedGuard.phases(hub, self), window }), { name: "control" })
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
        ...(load ? { telemetryPerSecond: Math.round(published / phaseSeconds) } : {})
      }
    })
  )

const variantPhases = async (variant: Variant) => ({
  loopIdle: await Effect.runPromise(loopPhase(variant, false)),
  loopUnderLoad: { robots, ...(await Effect.runPromise(loopPhase(variant, true))) },
  loopUnderLoadMainBlocked: { robots, ...(await Effect.runPromise(loopPhase(variant, true, true))) }
})

const main = async () => {
  const result = {
    benchmark: "control-loop",
    hz: 100,
    phaseSeconds,
    baselineBareTimerGrid: await bareGrid(),
    naiveSetIntervalDriftMs: await setIntervalDrift(),
    inProcess: await variantPhases("inProcess"),
    worker: await variantPhases("worker")
  }
  console.log(JSON.stringify(result, null, 2))
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
