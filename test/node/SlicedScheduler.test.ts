import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Scheduler from "effect/Scheduler"
import { performance } from "node:perf_hooks"
import { describe, expect, it } from "vitest"
import * as SlicedScheduler from "../../src/node/SlicedScheduler.js"

const busy = (ms: number) => {
  const end = performance.now() + ms
  while (performance.now() < end) {
    // holds the thread, as a socket write or an encoding would
  }
}

/**
 * Twenty fibers, each woken once (after `yieldNow`) to do half a millisecond of work; the first
 * of them sets a timer due at once: where in their run does the timer get its turn? (Set from
 * the first fiber, not beforehand, so a loaded machine cannot fire it before any fiber ran.)
 */
const run = async (scheduler: Scheduler.Scheduler) => {
  const order: Array<string> = []
  const fibers = Array.from({ length: 20 }, (_, i) =>
    Effect.runFork(
      Effect.withScheduler(
        Effect.zipRight(Effect.yieldNow(), Effect.sync(() => {
          if (i === 0) setTimeout(() => order.push("timer"), 0)
          busy(0.5)
          order.push(`fiber ${i}`)
        })),
        scheduler
      )
    ))
  await Effect.runPromise(Fiber.joinAll(fibers))
  await new Promise((resolve) => setTimeout(resolve, 5))
  return order
}

describe("SlicedScheduler", () => {
  it("Effect's default scheduler runs every ready fiber before the event loop gets a turn", async () => {
    const order = await run(Scheduler.defaultScheduler)
    expect(order.indexOf("timer")).toBe(20)
  })

  it("runs its fibers in slices, and the event loop's timers and I/O get their turn between them", async () => {
    const order = await run(SlicedScheduler.make({ sliceMs: 1 }))
    const timer = order.indexOf("timer")
    expect(timer).toBeGreaterThan(0)
    expect(timer).toBeLessThan(20)
    // Every fiber ran, in the order it was woken.
    expect(order.filter((entry) => entry !== "timer")).toEqual(Array.from({ length: 20 }, (_, i) => `fiber ${i}`))
  })
})
