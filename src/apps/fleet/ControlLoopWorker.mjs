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
import { execFileSync } from "node:child_process"
import { readlinkSync } from "node:fs"
import { setPriority } from "node:os"
import { parentPort, workerData } from "node:worker_threads"
import { Meter, runGrid } from "./LoopGrid.mjs"

const { hz, window, report, module, config, priority, realtimePriority } = workerData

// Linux keeps a nice value per thread, and `setPriority()` without a pid sets this thread's.
// Raising it needs CAP_SYS_NICE: without it, the thread keeps the process's priority.
let prioritized = false
if (priority !== undefined) {
  try {
    setPriority(priority)
    prioritized = true
  } catch {
    // not allowed here
  }
}

/**
 * Puts this thread, and only it, under SCHED_FIFO at `rtPriority` with util-linux `chrt`: it
 * then runs as soon as it wakes up, ahead of every normal thread of the machine. `-R`
 * (SCHED_RESET_ON_FORK): threads and processes it starts do not inherit the policy. Needs
 * CAP_SYS_NICE or an RLIMIT_RTPRIO of at least `rtPriority`. Returns true, or why it was refused.
 */
const makeRealtime = (rtPriority) => {
  try {
    const tid = readlinkSync("/proc/thread-self").split("/").pop()
    execFileSync("chrt", ["-f", "-R", "-p", String(rtPriority), tid], { stdio: ["ignore", "ignore", "pipe"], timeout: 5_000 })
    return true
  } catch (error) {
    const stderr = error.stderr?.toString().trim()
    return stderr || error.message
  }
}
const realtime = realtimePriority === undefined ? false : makeRealtime(realtimePriority)

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
