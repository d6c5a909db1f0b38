/**
 * Measures how long the event loop stalls, and how much of that is this process.
 *
 * Wall clock, two ways: Node's `monitorEventLoopDelay` histogram (max), and a
 * 1 ms `setInterval` that records the longest gap between its own callbacks
 * (what a 1 ms timer, a control loop, actually experiences: about 1 ms when
 * nothing stalls). Both count every cause: our own work, but also the thread
 * waiting for a core while other processes hold both, and timer wake-ups that
 * come late; on a shared 2-core VM that is several ms even when we do nothing.
 *
 * So each gap between two ticks is also split, from two counters read at every
 * tick: the loop's idle time (`eventLoopUtilization`: time blocked waiting for
 * events, which includes a late wake-up) and, on Linux, the thread's run-queue
 * wait (`/proc/self/task/<pid>/schedstat`: time runnable but not running; a
 * wait is added when it ends, and the thread is running at every tick, so it
 * is exact). `runQueueMaxMs` is the longest wait for a core within one gap.
 * `ownMaxMs` is, over the gaps, the most time the gap can owe to this process:
 * the smaller of its busy time (gap less idle) and the gap less its run-queue
 * wait. Both are at least the work the thread did in the gap (JavaScript, GC,
 * native and blocking calls such as SQLite's), so it never hides a stall of
 * ours; with nothing to do it is about 0.1 ms. (schedstat's CPU time is not
 * used: for a running thread it lags by up to a scheduler tick, 4 ms here.)
 * Also reports how busy the loop was (`eventLoopUtilization`, 0–1).
 */
import * as fs from "node:fs"
import { monitorEventLoopDelay, performance } from "node:perf_hooks"

/** What one measurement saw, in ms. */
export interface Stall {
  readonly monitorMaxMs: number
  readonly timerMaxGapMs: number
  /** The most of one gap this process can account for: min(gap − idle, gap − run-queue wait). */
  readonly ownMaxMs: number
  /** The longest run-queue wait within one gap (NaN off Linux). */
  readonly runQueueMaxMs: number
  readonly eventLoopUtilization: number
}

/** The event-loop thread's total run-queue wait in ms, if the kernel tells. */
const runQueueClock = (): { readonly read: () => number; readonly close: () => void } | undefined => {
  let fd: number
  try {
    fd = fs.openSync(`/proc/self/task/${process.pid}/schedstat`, "r")
  } catch {
    return undefined
  }
  const buffer = Buffer.alloc(64)
  const read = () => {
    // "<ns on a CPU> <ns waiting for one> <time slices>\n": the second field.
    const length = fs.readSync(fd, buffer, 0, buffer.length, 0)
    let i = buffer.indexOf(32) + 1
    let ns = 0
    for (; i < length && buffer[i] !== 32; i++) ns = ns * 10 + buffer[i] - 48
    return ns / 1e6
  }
  return { read, close: () => fs.closeSync(fd) }
}

/** Starts measuring; `stop` returns the figures. */
export const measureStall = (): { readonly stop: () => Stall } => {
  const histogram = monitorEventLoopDelay({ resolution: 1 })
  histogram.enable()
  const utilization = performance.eventLoopUtilization()
  const clock = runQueueClock()
  let last = performance.now()
  let lastIdle = performance.eventLoopUtilization().idle
  let lastWait = clock?.read() ?? NaN
  let maxGap = 0
  let maxOwn = 0
  let maxWait = clock === undefined ? NaN : 0
  const timer = setInterval(() => {
    const now = performance.now()
    const idle = performance.eventLoopUtilization().idle
    const gap = now - last
    const busy = gap - (idle - lastIdle)
    maxGap = Math.max(maxGap, gap)
    if (clock === undefined) maxOwn = Math.max(maxOwn, busy)
    else {
      const wait = clock.read()
      maxOwn = Math.max(maxOwn, Math.min(busy, gap - (wait - lastWait)))
      maxWait = Math.max(maxWait, wait - lastWait)
      lastWait = wait
    }
    last = now
    lastIdle = idle
  }, 1)
  return {
    stop: () => {
      clearInterval(timer)
      histogram.disable()
      clock?.close()
      return {
        monitorMaxMs: histogram.max / 1e6,
        timerMaxGapMs: maxGap,
        ownMaxMs: maxOwn,
        runQueueMaxMs: maxWait,
        eventLoopUtilization: performance.eventLoopUtilization(utilization).utilization
      }
    }
  }
}
