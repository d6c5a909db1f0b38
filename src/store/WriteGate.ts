/**
 * Who may write to the database next: the event loop or the telemetry worker.
 *
 * SQLite in WAL mode admits one writer at a time, and its busy handler makes a
 * waiting writer sleep and retry. A worker that commits back to back leaves
 * only microsecond gaps, so a waiting event-loop writer can starve for seconds
 * (measured: 1.7 s) and, worse, sleeps *on the event loop*. The gate fixes both:
 * it is a lock in a `SharedArrayBuffer` that both threads take before `BEGIN`;
 * the event loop waits for it asynchronously (`Atomics.waitAsync`), and the
 * worker does not start a transaction while the event loop wants the gate.
 * So an event-loop write waits at most for one worker transaction (a few ms)
 * and never blocks the loop. SQLite's `busy_timeout` stays as the backstop for
 * other processes.
 *
 * The worker side of the protocol is `withWorkerGate` in internal/writeGateCells.ts.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { HOLDER, Holder, WANTED } from "./internal/writeGateCells.js"

const FREE = Holder.free
const EVENT_LOOP = Holder.eventLoop
const WORKER = Holder.worker

/** `Atomics.waitAsync` (Node ≥ 16), typed only from lib ES2024. */
const waitAsync = (Atomics as unknown as {
  waitAsync: (cells: Int32Array, index: number, value: number) => { value: Promise<string> | string }
}).waitAsync

/** The write gate of one database. */
export interface WriteGate {
  /** The shared memory, handed to the worker. */
  readonly buffer: SharedArrayBuffer
  /** Runs `effect` holding the gate. One event-loop writer at a time. */
  readonly withGate: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Frees the gate if a dead worker still holds it (terminated mid-transaction). */
  readonly releaseWorker: Effect.Effect<void>
}

/** A free gate. */
export const make: Effect.Effect<WriteGate> = Effect.gen(function*() {
  const buffer = new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT)
  const cells = new Int32Array(buffer)
  const eventLoopWriters = yield* Effect.makeSemaphore(1)

  const acquire = Effect.promise(async () => {
    for (;;) {
      Atomics.store(cells, WANTED, 1)
      const holder = Atomics.compareExchange(cells, HOLDER, FREE, EVENT_LOOP)
      if (holder === FREE) break
      await waitAsync(cells, HOLDER, holder).value
    }
    Atomics.store(cells, WANTED, 0)
  })

  const release = (from: number) =>
    Effect.sync(() => {
      Atomics.compareExchange(cells, HOLDER, from, FREE)
      Atomics.notify(cells, HOLDER)
    })

  return {
    buffer,
    withGate: (effect) =>
      eventLoopWriters.withPermits(1)(Effect.acquireUseRelease(acquire, () => effect, () => release(EVENT_LOOP))),
    releaseWorker: release(WORKER)
  }
})
