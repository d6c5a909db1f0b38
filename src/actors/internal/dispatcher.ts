import { Deque } from "./deque.js"

/** Something the dispatcher can run: an actor cell with mail. */
export interface Runnable {
  /** Handles up to `budget` messages; reschedules itself if mail remains. */
  run(budget: number): void
}

/** Messages one actor may handle before the next ready actor gets its turn. */
const throughput = 32
/**
 * How long one flush may hold the event loop before it yields to I/O and timers. A timer waits
 * at most about two slices (the continuation runs once more, on `setImmediate`, before the loop
 * comes round to its timers): small enough for a 100 Hz control loop to keep its grid.
 */
const sliceMillis = 1

/**
 * Runs ready actors, Akka-dispatcher style: an actor with mail is queued once;
 * a flush runs queued actors round-robin on a microtask, each for at most
 * `throughput` messages, and after `sliceMillis` continues on `setImmediate`
 * so sockets and timers are never starved by busy actors (Erlang's reductions,
 * measured in time). An idle actor costs
 * nothing here: no fiber, no timer.
 *
 * @internal
 */
export class Dispatcher {
  private readonly ready = new Deque<Runnable>(64)
  private pending = false

  schedule(runnable: Runnable): void {
    this.ready.push(runnable)
    if (!this.pending) {
      this.pending = true
      queueMicrotask(this.flush)
    }
  }

  private readonly flush = (): void => {
    const start = performance.now()
    while (this.ready.length > 0) {
      ;(this.ready.shift() as Runnable).run(throughput)
      if (performance.now() - start > sliceMillis) {
        setImmediate(this.flush)
        return
      }
    }
    this.pending = false
  }
}
