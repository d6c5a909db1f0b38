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
 * measured in time). Actors given urgent mail run first. An idle actor costs
 * nothing here: no fiber, no timer.
 *
 * @internal
 */
export class Dispatcher {
  private readonly ready = new Deque<Runnable>(64)
  /** Actors given urgent mail: they run before the others. */
  private readonly urgent = new Deque<Runnable>(8)
  private pending = false

  schedule(runnable: Runnable): void {
    this.ready.push(runnable)
    this.wake()
  }

  /**
   * Schedules an actor that was given urgent mail ahead of every other ready actor. It may then
   * also be in the ordinary queue; its turn there finds its mailbox as it is by then.
   */
  scheduleUrgent(runnable: Runnable): void {
    this.urgent.push(runnable)
    this.wake()
  }

  private wake(): void {
    if (!this.pending) {
      this.pending = true
      queueMicrotask(this.flush)
    }
  }

  private readonly flush = (): void => {
    const start = performance.now()
    while (this.urgent.length > 0 || this.ready.length > 0) {
      ;((this.urgent.length > 0 ? this.urgent : this.ready).shift() as Runnable).run(throughput)
      if (performance.now() - start > sliceMillis) {
        setImmediate(this.flush)
        return
      }
    }
    this.pending = false
  }
}
