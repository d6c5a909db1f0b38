import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"

/** An entry with a deadline: an outstanding `ask`. */
export interface Timed {
  deadline: number
  timeoutMillis: number
  tprev: Timed | undefined
  tnext: Timed | undefined
  tlist: TimedList | undefined
  /** Called once when the deadline passes before the entry was removed. */
  expire(): void
}

/** Entries sharing one timeout value: appended in deadline order, so the head expires first. */
interface TimedList {
  head: Timed | undefined
  tail: Timed | undefined
}

/**
 * Deadlines for `ask` without a timer per request. Requests with the same
 * timeout expire in the order they were made, so each timeout value keeps a
 * FIFO list (O(1) add and remove) and one fiber sleeps on the `Clock` until the
 * earliest head: under `TestClock` the test moves time; live, it is one timer.
 *
 * @internal
 */
export class Deadlines {
  private readonly lists = new Map<number, TimedList>()
  private timer: Fiber.RuntimeFiber<void> | undefined
  private wakeAt = Infinity
  private closed = false

  constructor(
    private readonly clock: Clock.Clock,
    private readonly fork: (effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void>
  ) {}

  add(entry: Timed): void {
    let list = this.lists.get(entry.timeoutMillis)
    if (list === undefined) {
      list = { head: undefined, tail: undefined }
      this.lists.set(entry.timeoutMillis, list)
    }
    entry.deadline = this.clock.unsafeCurrentTimeMillis() + entry.timeoutMillis
    entry.tlist = list
    entry.tprev = list.tail
    entry.tnext = undefined
    if (list.tail === undefined) list.head = entry
    else list.tail.tnext = entry
    list.tail = entry
    if (entry.deadline < this.wakeAt) this.arm(entry.deadline)
  }

  remove(entry: Timed): void {
    const list = entry.tlist
    if (list === undefined) return
    if (entry.tprev === undefined) list.head = entry.tnext
    else entry.tprev.tnext = entry.tnext
    if (entry.tnext === undefined) list.tail = entry.tprev
    else entry.tnext.tprev = entry.tprev
    entry.tprev = entry.tnext = entry.tlist = undefined
  }

  /** Stops the timer; outstanding entries never expire afterwards. */
  close(): void {
    this.closed = true
    this.timer?.unsafeInterruptAsFork(FiberId.none)
    this.timer = undefined
  }

  private arm(at: number): void {
    if (this.closed) return
    this.timer?.unsafeInterruptAsFork(FiberId.none)
    this.wakeAt = at
    const delay = Math.max(0, at - this.clock.unsafeCurrentTimeMillis())
    const timer = this.fork(this.clock.sleep(Duration.millis(delay)))
    this.timer = timer
    timer.addObserver((exit) => {
      if (this.timer !== timer) return
      this.timer = undefined
      this.wakeAt = Infinity
      if (exit._tag === "Success") this.sweep()
    })
  }

  private sweep(): void {
    const now = this.clock.unsafeCurrentTimeMillis()
    let next = Infinity
    for (const [timeout, list] of this.lists) {
      let head = list.head
      while (head !== undefined && head.deadline <= now) {
        this.remove(head)
        head.expire()
        head = list.head
      }
      if (head === undefined) this.lists.delete(timeout)
      else if (head.deadline < next) next = head.deadline
    }
    if (next !== Infinity) this.arm(next)
  }
}
