/**
 * A Node worker thread owned by a scope, for actors and services that run part of their work
 * on a thread of its own: it starts when the resource is acquired and is terminated when the
 * scope closes. Its messages go to `onMessage`; an error, or an exit before the scope closes, is
 * reported once to `onFailure` with the reason, for the owner to fail with (an actor then
 * crashes and its supervisor restarts it, thread included).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Worker } from "node:worker_threads"

/** What the owner does with the thread's messages and failure. */
export interface WorkerThreadHooks<Message> {
  readonly onMessage: (message: Message) => void
  readonly onFailure: (reason: string) => void
}

/**
 * Owns the thread `make` starts; it is terminated when the scope closes.
 */
export const start = <Message>(
  make: () => Worker,
  hooks: WorkerThreadHooks<Message>
): Effect.Effect<Worker, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => {
        const worker = make()
        let done = false
        const fail = (reason: string) => {
          if (done) return
          done = true
          hooks.onFailure(reason)
        }
        worker.on("message", hooks.onMessage)
        worker.on("error", (error) => fail(String(error)))
        worker.on("exit", (code) => fail(`exited with code ${code}`))
        return {
          worker,
          terminate: () => {
            done = true
            return worker.terminate()
          }
        }
      }),
      (thread) => Effect.promise(thread.terminate)
    ),
    (thread) => thread.worker
  )
