/**
 * The control loop's thread, started by `ControlLoop.makeWorker`: runs the fixed grid
 * (LoopGrid.mjs) and the phases built by a phases module, on its own event loop, so that the
 * main thread's work and garbage collections do not delay its ticks. The thread has nothing
 * else to do, so it blocks for the last milliseconds before each tick (sub-millisecond
 * wake-ups instead of the timers' millisecond clock), takes the nice value
 * `workerData.priority` if it may, and the real-time policy SCHED_FIFO at
 * `workerData.realtimePriority` if it may.
 *
 * Plain JavaScript on purpose: `new Worker(url)` loads this file with Node's own loader, the
 * same under node, `node --import tsx`, tsx and vitest, without relying on a TypeScript loader
 * being inherited by the thread. The phases module (`workerData.module`) is plain JavaScript
 * for the same reason; it exports `phases(config, io)`, where `io.onInput(handler)` receives
 * what the main thread sends and `io.post(output)` sends outputs back.
 *
 * In:  { type: "input", data }  { type: "metrics", id }
 * Out: { type: "ready", prioritized, realtime: true | why it was refused }  { type: "output", data }  { type: "metrics", id, metrics }
 *      { type: "report", metrics }  { type: "failed", phase, error }
 */
import { parentPort, workerData } from "node:worker_threads"
import { Meter, runGrid } from "./LoopGrid.mjs"
import { prioritizeThread } from "./ThreadPriority.mjs"

const { hz, window, report, module, config, priority, realtimePriority } = workerData

const { prioritized, realtime } = prioritizeThread({ priority, realtimePriority })

let onInput = () => {}
const io = {
  post: (data) => parentPort.postMessage({ type: "output", data }),
  onInput: (handler) => {
    onInput = handler
  }
}
const phases = (await import(module)).phases(config, io)
const meter = new Meter(hz, window)

parentPort.on("message", (message) => {
  if (message.type === "input") onInput(message.data)
  else if (message.type === "metrics") parentPort.postMessage({ type: "metrics", id: message.id, metrics: meter.metrics() })
})

runGrid(meter, phases, {
  block: true,
  fail: (phase, error) => parentPort.postMessage({ type: "failed", phase, error: String(error) }),
  report: report ? (metrics) => parentPort.postMessage({ type: "report", metrics }) : undefined
})
parentPort.postMessage({ type: "ready", prioritized, realtime })
