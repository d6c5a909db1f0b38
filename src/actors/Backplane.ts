/**
 * The backplane carries broadcasts between the PubSub hubs of several nodes,
 * like Phoenix.PubSub's adapter: two callbacks, nothing else. The local hub
 * delivers to its own subscribers; the backplane only moves messages between
 * nodes, and each hub ignores what it published itself.
 *
 * Only the in-memory backplane exists now (several hubs in one process: tests,
 * and a single node). A Redis one is one file implementing `Backplane`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** A broadcast on its way between nodes. */
export interface BackplaneMessage {
  /** The node that published it. */
  readonly origin: string
  readonly topic: string
  /** Must survive serialization for a networked backplane. */
  readonly message: unknown
}

/** Moves broadcasts between nodes. */
export interface Backplane {
  /** Sends a broadcast to every other node. */
  readonly publish: (message: BackplaneMessage) => Effect.Effect<void>
  /** Receives every node's broadcasts (its own included) while the scope is open. */
  readonly subscribe: (onMessage: (message: BackplaneMessage) => void) => Effect.Effect<void, never, Scope.Scope>
}

/**
 * An in-memory backplane: hubs given the same instance see each other's
 * broadcasts, delivered on a microtask as a network would deliver them later.
 */
export const memory = (): Backplane => {
  const listeners = new Set<(message: BackplaneMessage) => void>()
  return {
    publish: (message) =>
      Effect.sync(() => {
        queueMicrotask(() => {
          for (const listener of listeners) listener(message)
        })
      }),
    subscribe: (onMessage) =>
      Effect.acquireRelease(
        Effect.sync(() => listeners.add(onMessage)),
        () => Effect.sync(() => listeners.delete(onMessage))
      )
  }
}
