/** Types of LoopGrid.mjs: the control loop's fixed grid and meter. */
import type { LoopMetrics, Phase } from "./ControlLoop.js"

/** Tick count, overruns, missed grid points, and ring buffers of the last `window` ticks. */
export declare class Meter {
  constructor(hz: number, window: number)
  readonly hz: number
  readonly window: number
  ticks: number
  overruns: number
  missed: number
  record(jitterMs: number, durationMs: number): void
  metrics(): LoopMetrics
}

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
export declare const runGrid: (meter: Meter, phases: ReadonlyArray<Phase>, hooks: GridHooks) => () => void
