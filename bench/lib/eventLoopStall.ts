/**
 * Measures how long the event loop stalls, two ways: Node's
 * `monitorEventLoopDelay` histogram (max), and a 1 ms `setInterval` that
 * records the longest gap between its own callbacks (what a 1 ms timer, a
 * control loop, actually experiences: about 1 ms when nothing stalls). Also
 * reports how busy the loop was (`eventLoopUtilization`, 0–1).
 */
import { monitorEventLoopDelay, performance } from "node:perf_hooks"

/** What one measurement saw, in ms. */
export interface Stall {
  readonly monitorMaxMs: number
  readonly timerMaxGapMs: number
  readonly eventLoopUtilization: number
}

/** Starts measuring; `stop` returns the figures. */
export const measureStall = (): { readonly stop: () => Stall } => {
  const histogram = monitorEventLoopDelay({ resolution: 1 })
  histogram.enable()
  const utilization = performance.eventLoopUtilization()
  let last = performance.now()
  let maxGap = 0
  const timer = setInterval(() => {
    const now = performance.now()
    maxGap = Math.max(maxGap, now - last)
    last = now
  }, 1)
  return {
    stop: () => {
      clearInterval(timer)
      histogram.disable()
      return {
        monitorMaxMs: histogram.max / 1e6,
        timerMaxGapMs: maxGap,
        eventLoopUtilization: performance.eventLoopUtilization(utilization).utilization
      }
    }
  }
}
