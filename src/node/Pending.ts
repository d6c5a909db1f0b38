/**
 * Requests that wait for their reply, by the id their message carries: the request/reply
 * half of the messages between a thread and its owner, on either side.
 *
 * @since 0.1.0
 */

/** Waiters (a reply, a deferred, a resolve function) by request id. */
export class Pending<A> {
  private nextId = 0
  private readonly waiting = new Map<number, A>()

  /** Remembers `waiter`; returns the id its request carries. */
  add(waiter: A): number {
    const id = this.nextId++
    this.waiting.set(id, waiter)
    return id
  }

  /** The waiter of `id`, forgotten; `undefined` if it was taken or dropped before. */
  take(id: number): A | undefined {
    const waiter = this.waiting.get(id)
    this.waiting.delete(id)
    return waiter
  }

  /** Forgets the waiter of `id` (it gave up). */
  drop(id: number): void {
    this.waiting.delete(id)
  }

  /** Waiters without a reply yet. */
  get size(): number {
    return this.waiting.size
  }

  /** Takes every waiter, e.g. to fail them all when the thread is gone. */
  takeAll(): Array<A> {
    const all = [...this.waiting.values()]
    this.waiting.clear()
    return all
  }
}
