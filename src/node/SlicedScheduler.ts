/**
 * A fiber scheduler that never holds the event loop for more than a slice.
 *
 * Effect's default scheduler runs every ready fiber in one go, in microtasks: a hundred fibers
 * woken by one broadcast (the subscribers of a view, each writing to its socket) run back to
 * back, and whatever arrives meanwhile (an emergency stop on another socket) waits for all of
 * them. Fibers run with this scheduler (`Effect.withScheduler`) take turns in slices of
 * `sliceMs`: between slices the event loop polls I/O and runs timers, as the actor dispatcher
 * does between its slices.
 *
 * ```ts
 * const fanOut = SlicedScheduler.make({ sliceMs: 1 })
 * yield* Effect.forkScoped(Effect.withScheduler(subscriberLoop, fanOut))
 * ```
 *
 * @since 0.1.0
 */
import * as Scheduler from "effect/Scheduler"
import { performance } from "node:perf_hooks"

/** Options of `make`. */
export interface Options {
  /** How long one slice may run, in ms. Default 1. */
  readonly sliceMs?: number | undefined
}

/** A scheduler running its fibers' tasks from `setImmediate`, at most `sliceMs` at a time. */
export const make = (options: Options = {}): Scheduler.Scheduler => {
  const sliceMs = options.sliceMs ?? 1
  let tasks: Array<Scheduler.Task> = []
  let next = 0
  let scheduled = false
  const runSlice = () => {
    scheduled = false
    const deadline = performance.now() + sliceMs
    while (next < tasks.length) {
      const task = tasks[next]
      tasks[next++] = undefined as unknown as Scheduler.Task
      task()
      if (next < tasks.length && performance.now() >= deadline) break
    }
    if (next >= tasks.length) {
      tasks = []
      next = 0
    } else if (!scheduled) {
      scheduled = true
      setImmediate(runSlice)
    }
  }
  return Scheduler.make((task) => {
    tasks.push(task)
    if (!scheduled) {
      scheduled = true
      setImmediate(runSlice)
    }
  })
}
