/**
 * The cells of `WriteGate`'s shared `Int32Array`, and the telemetry writer thread's side of
 * the gate (`withWorkerGate`); the event loop's side is WriteGate.ts.
 *
 * @internal
 */

/** Index of the cell that says who holds the gate ({@link Holder}). */
export const HOLDER = 0
/** Index of the cell set while the event loop wants the gate: the worker does not begin then. */
export const WANTED = 1

/** Who holds the gate. */
export const Holder = { free: 0, eventLoop: 1, worker: 2 } as const

/** Runs `write` on the worker's thread holding the gate, waiting (blocking this thread) while the event loop wants or holds it. */
export const withWorkerGate = <A>(cells: Int32Array, write: () => A): A => {
  for (;;) {
    if (Atomics.load(cells, WANTED) === 0 && Atomics.compareExchange(cells, HOLDER, Holder.free, Holder.worker) === Holder.free) break
    Atomics.wait(cells, HOLDER, Atomics.load(cells, HOLDER), 1)
  }
  try {
    return write()
  } finally {
    Atomics.store(cells, HOLDER, Holder.free)
    Atomics.notify(cells, HOLDER)
  }
}
