/**
 * The fixed-timestep grid of the control loop and its meter, shared by the in-process loop
 * (ControlLoop.ts) and the loop's worker thread (internal/controlLoopWorker.ts), so both run
 * the same algorithm.
 *
 * @since 0.1.0
 */
import { performance } from "node:perf_hooks"
import type { LoopMetrics, Phase, Tick } from "./ControlLoop.js"

/** Tick count, overruns, missed grid points, and ring buffers of the last `window` ticks. */
export class Meter {
  ticks = 0
  overruns = 0
  missed = 0
  private readonly jitter: Float64Array
  private readonly duration: Float64Array
  constructor(readonly hz: number, readonly window: number) {
    this.jitter = new Float64Array(window)
    this.duration = new Float64Array(window)
  }
  /** Records one tick's lateness and phase time, ms. */
  record(jitterMs: number, durationMs: number): void {
    const i = this.ticks % this.window
    this.jitter[i] = jitterMs
    this.duration[i] = durationMs
    this.ticks++
  }
  /** The metrics of the ticks so far. */
  metrics(): LoopMetrics {
    const n = Math.min(this.ticks, this.window)
    const jitter = Array.from(this.jitter.subarray(0, n)).sort((a, b) => a - b)
    const duration = Array.from(this.duration.subarray(0, n)).sort((a, b) => a - b)
    const at = (sorted: ReadonlyArray<number>, q: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))])
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

/** How early a blocking loop's timer fires, ms. */
const blockMillis = 2

/** What the grid calls besides the phases. */
export interface GridHooks {
  /** A phase threw: the grid has stopped. */
  readonly fail: (phase: string, error: unknown) => void
  /** Called once a second with the metrics. */
  readonly report?: ((metrics: LoopMetrics) => void) | undefined
  /** Block the thread (Atomics.wait) for the last milliseconds before a tick; only on a thread of its own. */
  readonly block?: boolean | undefined
}

/** Runs `phases` on the grid `start + n × period` until the returned function is called. */
export const runGrid = (meter: Meter, phases: ReadonlyArray<Phase>, hooks: GridHooks): () => void => {
  const period = 1000 / meter.hz
  const dt = 1 / meter.hz
  const start = performance.now()
  let index = 0
  let lastReport = start
  let timer: ReturnType<typeof setTimeout> | undefined
  let stopped = false
  // With `hooks.block`, the timer wakes the loop up to `blockMillis` early and it blocks the
  // thread for the rest: sub-millisecond wake-ups, for a thread that has nothing else to do.
  // Not a spin on the clock: each `performance.now()` allocates a number, and garbage on this
  // thread means scavenges, which wait for V8's helper threads at normal priority.
  const early = hooks.block ? blockMillis : 0
  const blocker = hooks.block ? new Int32Array(new SharedArrayBuffer(4)) : undefined
  const schedule = () => {
    const due = start + index * period
    timer = setTimeout(tick, Math.max(0, Math.ceil(due - performance.now()) - early))
  }
  const tick = () => {
    if (stopped) return
    let began = performance.now()
    let due = start + index * period
    if (blocker !== undefined) {
      while (began < due && due - began <= early + 1) {
        Atomics.wait(blocker, 0, 0, due - began)
        began = performance.now()
      }
    }
    // Node's timers run on a millisecond clock and may fire a little early: wait out the rest.
    if (began < due) {
      timer = due - began > 1 ? setTimeout(tick, Math.ceil(due - began) - early) : undefined
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
        stopped = true
        return hooks.fail(phase.name, error)
      }
    }
    const ended = performance.now()
    meter.record(began - due, ended - began)
    index++
    if (ended > start + index * period) meter.overruns++
    if (hooks.report !== undefined && ended - lastReport >= 1000) {
      lastReport = ended
      hooks.report(meter.metrics())
    }
    schedule()
  }
  schedule()
  return () => {
    stopped = true
    clearTimeout(timer)
  }
}
