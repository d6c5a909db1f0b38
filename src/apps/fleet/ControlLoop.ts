/**
 * A fixed-timestep control loop as an actor, the way a game engine or a robot controller runs
 * one: every `1/hz` seconds (100 Hz by default) it runs its phases in order, synchronously,
 * on one tick: read inputs → process → control → actuator outputs. Ticks are scheduled on a
 * fixed grid (`start + n × period`), so a late tick does not push the next ones back.
 *
 * It measures itself: the jitter of each tick (how late it started against the grid), how
 * long the phases took, overruns (a tick whose phases ended after the next tick was due) and
 * missed ticks (the grid points skipped when the loop fell more than a period behind).
 *
 * The loop runs on Node's timers, not through the actor's mailbox, so a flood of mail to
 * anyone (the actor included) does not delay it; the actor owns the timer, answers metric
 * requests, and stops the loop when it stops.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { performance } from "node:perf_hooks"
import * as Actor from "../../actors/Actor.js"
import type { ActorRef, Reply } from "../../actors/ActorRef.js"

/** What a phase knows about the tick it runs in. */
export interface Tick {
  /** Ticks since the loop started, from 0. */
  readonly index: number
  /** The fixed timestep, in seconds. */
  readonly dt: number
  /** The grid time of this tick, `performance.now()` milliseconds. */
  readonly scheduledAt: number
}

/** One phase of a tick; phases run in the order given, synchronously. */
export interface Phase {
  readonly name: string
  readonly run: (tick: Tick) => void
}

/** The loop's measurements since it started. */
export interface LoopMetrics {
  readonly hz: number
  readonly ticks: number
  /** Ticks whose phases ended after the next tick was due. */
  readonly overruns: number
  /** Grid points skipped because the loop was more than a period behind. */
  readonly missed: number
  /** Lateness of tick starts over the last `window` ticks, ms. */
  readonly jitterP50Ms: number
  readonly jitterP99Ms: number
  readonly jitterMaxMs: number
  /** Phase time of the last `window` ticks, ms. */
  readonly durationP99Ms: number
  readonly durationMaxMs: number
  /** How many recent ticks the percentiles cover. */
  readonly window: number
}

/** Options of a loop. */
export interface ControlLoopOptions {
  /** Ticks per second; default 100. */
  readonly hz?: number | undefined
  /** Builds the phases when the loop starts; their resources live as long as this incarnation. */
  readonly phases: (self: ActorRef<never>) => Effect.Effect<ReadonlyArray<Phase>, never, Scope.Scope>
  /** How many recent ticks the percentiles cover; default 1000 (10 s at 100 Hz). */
  readonly window?: number | undefined
  /** Called once a second with the metrics, e.g. to publish them. */
  readonly report?: ((metrics: LoopMetrics) => void) | undefined
}

/** Asks for the loop's {@link LoopMetrics}. */
export interface GetMetrics {
  readonly _tag: "GetMetrics"
  readonly reply: Reply<LoopMetrics>
}

class PhaseFailed {
  readonly _tag = "PhaseFailed"
  constructor(readonly phase: string, readonly error: unknown) {}
}

/** What a loop accepts; `PhaseFailed` is its own. */
export type ControlLoopMessage = GetMetrics | PhaseFailed

/** A `GetMetrics` message for `ask`. */
export const getMetrics = (reply: Reply<LoopMetrics>): ControlLoopMessage => ({ _tag: "GetMetrics", reply })

class Meter {
  ticks = 0
  overruns = 0
  missed = 0
  private readonly jitter: Float64Array
  private readonly duration: Float64Array
  constructor(readonly hz: number, readonly window: number) {
    this.jitter = new Float64Array(window)
    this.duration = new Float64Array(window)
  }
  record(jitterMs: number, durationMs: number) {
    const i = this.ticks % this.window
    this.jitter[i] = jitterMs
    this.duration[i] = durationMs
    this.ticks++
  }
  metrics(): LoopMetrics {
    const n = Math.min(this.ticks, this.window)
    const jitter = Array.from(this.jitter.subarray(0, n)).sort((a, b) => a - b)
    const duration = Array.from(this.duration.subarray(0, n)).sort((a, b) => a - b)
    const at = (sorted: Array<number>, q: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))])
    return {
      hz: this.hz,
      ticks: this.ticks,
      overruns: this.overruns,
      missed: this.missed,
      jitterP50Ms: at(jitter, 0.5),
      jitterP99Ms: at(jitter, 0.99),
      jitterMaxMs: jitter[jitter.length - 1] ?? 0,
      durationP99Ms: at(duration, 0.99),
      durationMaxMs: duration[duration.length - 1] ?? 0,
      window: n
    }
  }
}

/** Runs `phases` on the grid until the scope closes. */
const run = (
  options: ControlLoopOptions,
  phases: ReadonlyArray<Phase>,
  meter: Meter,
  fail: (failure: PhaseFailed) => void
) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const period = 1000 / meter.hz
      const dt = 1 / meter.hz
      const start = performance.now()
      let index = 0
      let lastReport = start
      let timer: NodeJS.Timeout | undefined
      let stopped = false
      const schedule = () => {
        const due = start + index * period
        timer = setTimeout(tick, Math.max(0, Math.ceil(due - performance.now())))
      }
      const tick = () => {
        if (stopped) return
        const began = performance.now()
        let due = start + index * period
        // Node's timers run on a millisecond clock and may fire a little early: wait out the rest.
        if (began < due) {
          timer = due - began > 1 ? setTimeout(tick, Math.ceil(due - began)) : undefined
          if (timer === undefined) setImmediate(tick)
          return
        }
        if (began - due >= period) {
          const skip = Math.floor((began - due) / period)
          meter.missed += skip
          index += skip
          due = start + index * period
        }
        const info: Tick = { index, dt, scheduledAt: due }
        for (const phase of phases) {
          try {
            phase.run(info)
          } catch (error) {
            return fail(new PhaseFailed(phase.name, error))
          }
        }
        const ended = performance.now()
        meter.record(began - due, ended - began)
        index++
        if (ended > start + index * period) meter.overruns++
        if (options.report !== undefined && ended - lastReport >= 1000) {
          lastReport = ended
          options.report(meter.metrics())
        }
        schedule()
      }
      schedule()
      return () => {
        stopped = true
        clearTimeout(timer)
      }
    }),
    (stop) => Effect.sync(stop)
  )

/** The behaviour of a control loop; see the module documentation. A phase that throws crashes it. */
export const make = (options: ControlLoopOptions): Actor.Behaviour<ControlLoopMessage, Meter> =>
  Actor.make<ControlLoopMessage, Meter>({
    name: "control_loop",
    init: (ctx) =>
      Effect.gen(function*() {
        const meter = new Meter(options.hz ?? 100, options.window ?? 1000)
        const phases = yield* options.phases(ctx.self as ActorRef<never>)
        yield* run(options, phases, meter, (failure) => ctx.self.unsafeTellUrgent(failure))
        return meter
      }),
    receive: (meter, message) => {
      if (message._tag === "PhaseFailed") {
        return Effect.dieMessage(`control loop phase ${message.phase} failed: ${String(message.error)}`)
      }
      message.reply.succeed(meter.metrics())
      return meter
    }
  })
