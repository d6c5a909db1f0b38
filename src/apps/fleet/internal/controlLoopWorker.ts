/**
 * The control loop's thread, started by `ControlLoop.makeWorker`: runs the fixed grid
 * (LoopGrid.ts) and the phases built by a phases module, on its own event loop, so that the
 * main thread's work and garbage collections do not delay its ticks. The thread has nothing
 * else to do, so it blocks for the last milliseconds before each tick (sub-millisecond
 * wake-ups instead of the timers' millisecond clock), takes the nice value `priority` if it
 * may, and the real-time policy SCHED_FIFO at `realtimePriority` if it may.
 *
 * The phases module (`module`: its bundle, see `WorkerThread.bundle`) exports
 * `phases(config, io)`, where `io.onInput(handler)` receives what the main thread sends and
 * `io.post(output)` sends outputs back.
 */
import * as ParentPort from "../../../node/ParentPort.js"
import { prioritizeThread, type ThreadPriority } from "../../../node/ThreadPriority.js"
import type { LoopMetrics, Phase, WorkerIo } from "../ControlLoop.js"
import { Meter, runGrid } from "../LoopGrid.js"

/** What a phases module exports. */
export interface PhasesModule {
  readonly phases: (config: any, io: WorkerIo) => ReadonlyArray<Phase>
}

/** The thread's messages. */
export interface ControlLoopWorkerProtocol {
  readonly data: {
    readonly hz: number
    readonly window: number
    /** Post the metrics once a second. */
    readonly report: boolean
    /** The URL of the phases module's bundle. */
    readonly module: string
    readonly config: unknown
    readonly priority: number | undefined
    readonly realtimePriority: number | undefined
  }
  readonly in:
    | { readonly type: "input"; readonly data: unknown }
    | { readonly type: "metrics"; readonly id: number }
  readonly out:
    | ({ readonly type: "ready" } & ThreadPriority)
    | { readonly type: "output"; readonly data: unknown }
    | { readonly type: "metrics"; readonly id: number; readonly metrics: LoopMetrics }
    | { readonly type: "report"; readonly metrics: LoopMetrics }
    | { readonly type: "failed"; readonly phase: string; readonly error: string }
}

const parent = ParentPort.make<ControlLoopWorkerProtocol>()
const { config, hz, module, priority, realtimePriority, report, window } = parent.data

const { prioritized, realtime } = prioritizeThread({ priority, realtimePriority })

let onInput: (input: unknown) => void = () => {}
const io: WorkerIo = {
  post: (data) => parent.post({ type: "output", data }),
  onInput: (handler) => {
    onInput = handler
  }
}
const phases = ((await import(module)) as PhasesModule).phases(config, io)
const meter = new Meter(hz, window)

parent.onMessage((message) => {
  if (message.type === "input") onInput(message.data)
  else parent.post({ type: "metrics", id: message.id, metrics: meter.metrics() })
})

runGrid(meter, phases, {
  block: true,
  fail: (phase, error) => parent.post({ type: "failed", phase, error: String(error) }),
  report: report ? (metrics) => parent.post({ type: "report", metrics }) : undefined
})
parent.post({ type: "ready", prioritized, realtime })
