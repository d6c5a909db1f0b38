/**
 * A worker module's end of its thread (see `WorkerThread.run`): the `workerData` its owner
 * started it with, and its messages, typed by the module's `WorkerThread.Protocol`.
 *
 * @since 0.1.0
 */
import { parentPort, type Transferable, workerData } from "node:worker_threads"
import type { Protocol } from "./WorkerThread.js"

/** The thread's end of its owner's {@link WorkerThread.Thread}. */
export interface ParentPort<P extends Protocol> {
  /** What the owner started the thread with. */
  readonly data: P["data"]
  readonly post: (message: P["out"], transfer?: ReadonlyArray<Transferable>) => void
  /** Calls `handler` with each message of the owner. */
  readonly onMessage: (handler: (message: P["in"]) => void) => void
}

/** The calling thread's port; only on a worker thread. */
export const make = <P extends Protocol>(): ParentPort<P> => {
  const port = parentPort
  if (port === null) throw new Error("ParentPort.make: not on a worker thread")
  return {
    data: workerData as P["data"],
    post: (message, transfer) => port.postMessage(message, transfer),
    onMessage: (handler) => void port.on("message", handler)
  }
}
