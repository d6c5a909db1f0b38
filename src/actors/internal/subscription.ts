import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type { ActorRef } from "../ActorRef.js"
import * as ExitReason from "../ExitReason.js"
import type { ActorCell } from "./cell.js"
import { Deque } from "./deque.js"
import { Envelope, skip } from "./envelope.js"

/** What a full subscriber buffer does with one more message. */
export type Overflow = "sliding" | "dropping" | "backpressure" | "disconnect"

/** Counters shared by every subscription of one hub. */
export interface HubCounters {
  delivered: number
  dropped: number
  disconnected: number
}

/**
 * One subscriber of one topic, with a bounded buffer: what was handed to it
 * and not yet consumed counts against `bufferSize`, and `overflow` decides what
 * happens beyond it.
 *
 * @internal
 */
export abstract class Sub {
  /** Position in its topic's array, for O(1) removal. */
  index = -1
  dropped = 0
  closed = false
  private waiters: Array<() => void> | undefined = undefined
  cancelExit: () => void = noop

  constructor(
    readonly topic: string,
    readonly owner: ActorCell | undefined,
    readonly bufferSize: number,
    readonly overflow: Overflow,
    readonly counters: HubCounters,
    readonly detach: (sub: Sub) => void
  ) {}

  /** What was handed over and not yet consumed. */
  abstract pending(): number
  /** Hands over one message; the buffer has room or the policy allowed it. */
  protected abstract push(message: unknown): void
  /** Drops the oldest unconsumed message; `false` if that is not possible. */
  protected abstract evictOldest(): boolean

  /**
   * Offers one message. Returns `true` if delivered, `false` if dropped or the
   * subscriber was disconnected, and `"full"` when a backpressure subscriber
   * has no room: the publisher must wait (`awaitRoom`) and offer again.
   */
  offer(message: unknown): boolean | "full" {
    if (this.closed) return false
    if (this.pending() >= this.bufferSize) {
      switch (this.overflow) {
        case "backpressure":
          return "full"
        case "sliding":
          if (this.evictOldest()) {
            this.dropped++
            this.counters.dropped++
            break
          }
          this.dropped++
          this.counters.dropped++
          return false
        case "dropping":
          this.dropped++
          this.counters.dropped++
          return false
        case "disconnect":
          this.counters.disconnected++
          this.disconnect()
          return false
      }
    }
    this.push(message)
    this.counters.delivered++
    return true
  }

  /** Waits until the buffer has room or the subscription ends. */
  get awaitRoom(): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      if (this.closed || this.pending() < this.bufferSize) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      ;(this.waiters ??= []).push(wake)
      return Effect.sync(() => {
        if (this.waiters !== undefined) this.waiters = this.waiters.filter((w) => w !== wake)
      })
    })
  }

  /** Called when a message was consumed: wakes a waiting publisher. */
  protected consumed(): void {
    if (this.waiters !== undefined && this.pending() < this.bufferSize) this.wakeAll()
  }

  private wakeAll(): void {
    const waiters = this.waiters
    this.waiters = undefined
    if (waiters !== undefined) for (const wake of waiters) wake()
  }

  /** Ends the subscription. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.cancelExit()
    this.detach(this)
    this.wakeAll()
    this.onClose()
  }

  protected onClose(): void {}

  /** The overflow policy `disconnect`: the subscriber is too slow and is stopped with a clear reason. */
  protected disconnect(): void {
    const owner = this.owner
    this.close()
    owner?.exit(ExitReason.shutdown(`slow consumer: ${this.bufferSize} messages pending on topic ${this.topic}`))
  }
}

const noop = () => {}

/** A message for an actor subscriber, counted against its buffer until the actor takes it. */
class Delivery extends Envelope {
  cancelled = false
  constructor(readonly sub: ActorSub, readonly message: unknown) {
    super()
  }
  open(): unknown {
    if (this.cancelled) return skip
    this.cancelled = true
    this.sub.taken(this)
    return this.message
  }
  discard(): unknown {
    if (!this.cancelled) {
      this.cancelled = true
      this.sub.taken(this)
    }
    return this.message
  }
}

/** Delivers to an actor's mailbox (normal lane). */
export class ActorSub extends Sub {
  private readonly inflight = new Deque<Delivery>()
  private count = 0
  constructor(
    topic: string,
    owner: ActorCell,
    bufferSize: number,
    overflow: Overflow,
    counters: HubCounters,
    detach: (sub: Sub) => void,
    private readonly map: ((message: unknown) => unknown) | undefined
  ) {
    super(topic, owner, bufferSize, overflow, counters, detach)
  }
  pending(): number {
    return this.count
  }
  protected push(message: unknown): void {
    const delivery = new Delivery(this, this.map === undefined ? message : this.map(message))
    this.inflight.push(delivery)
    this.count++
    ;(this.owner as ActorCell).offer(delivery, false)
  }
  protected evictOldest(): boolean {
    for (let oldest = this.inflight.shift(); oldest !== undefined; oldest = this.inflight.shift()) {
      if (!oldest.cancelled) {
        oldest.cancelled = true
        this.count--
        return true
      }
    }
    return false
  }
  /** A delivery left the mailbox (handled or discarded). */
  taken(delivery: Delivery): void {
    this.count--
    while (this.inflight.length > 0 && (this.inflight.peek() as Delivery).cancelled) this.inflight.shift()
    if (this.inflight.peek() === delivery) this.inflight.shift()
    this.consumed()
  }
}

/** Delivers to an Effect `Queue` owned by a scope. */
export class QueueSub extends Sub {
  constructor(
    topic: string,
    bufferSize: number,
    overflow: Overflow,
    counters: HubCounters,
    detach: (sub: Sub) => void,
    readonly queue: Queue.Queue<unknown>
  ) {
    super(topic, undefined, bufferSize, overflow, counters, detach)
  }
  pending(): number {
    const size = this.queue.unsafeSize()
    return size._tag === "Some" ? Math.max(0, size.value) : 0
  }
  protected push(message: unknown): void {
    this.queue.unsafeOffer(message)
  }
  protected evictOldest(): boolean {
    return Option.isSome(Effect.runSync(Queue.poll(this.queue)))
  }
  protected override onClose(): void {
    Effect.runFork(Queue.shutdown(this.queue))
  }
}

/** Something that takes messages synchronously (a socket writer) and reports its own backlog. */
export interface Sink {
  /** Takes one message now. */
  readonly deliver: (message: unknown) => void
  /** What it holds and has not yet passed on, in the unit of `bufferSize` (messages, bytes…). */
  readonly backlog: () => number
}

/** Delivers to a sink owned by an actor. */
export class SinkSub extends Sub {
  constructor(
    topic: string,
    owner: ActorCell,
    bufferSize: number,
    overflow: Overflow,
    counters: HubCounters,
    detach: (sub: Sub) => void,
    private readonly sink: Sink
  ) {
    super(topic, owner, bufferSize, overflow, counters, detach)
  }
  pending(): number {
    return this.sink.backlog()
  }
  protected push(message: unknown): void {
    this.sink.deliver(message)
  }
  protected evictOldest(): boolean {
    return false
  }
}

/** The owner of a subscription, for `broadcastFrom`. */
export const ownerOf = (sub: Sub): ActorRef<never> | undefined => sub.owner
