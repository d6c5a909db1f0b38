/**
 * The backplane carries broadcasts between the PubSub hubs of several nodes,
 * like Phoenix.PubSub's adapter. The local hub delivers to its own
 * subscribers; the backplane only moves messages between nodes, and each hub
 * ignores what it published itself.
 *
 * A hub tells its backplane which topics it has local subscribers for
 * ({@link Attachment}): a networked backplane listens to a topic only while
 * some hub of its node watches it. And the backplane tells the hub when
 * messages may have been lost ({@link Resync}: a gap in a node's numbering, a
 * reconnect, or a node that asked): whoever holds state for that topic sends it
 * whole again, so that a lost delta never leaves a view wrong for long.
 *
 * The in-memory backplane here joins hubs of one process (tests, a single
 * node); `src/cluster/RedisBackplane.ts` joins nodes over Redis.
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

/** Why messages on a topic may have been lost. */
export type ResyncReason =
  /** A node's numbering on the topic skipped (a frame was lost on the way). */
  | "gap"
  /** The connection to the other nodes dropped and came back. */
  | "reconnect"
  /** A node asked (it missed something, or a subscriber of its own wants the state whole). */
  | "requested"

/** Messages on `topic` may have been lost somewhere: who holds its state should send it whole again. */
export interface Resync {
  readonly _tag: "Resync"
  readonly topic: string
  readonly reason: ResyncReason
}

/** Makes a {@link Resync} signal. */
export const resyncSignal = (topic: string, reason: ResyncReason): Resync => ({ _tag: "Resync", topic, reason })

/** What a hub hands to its backplane to be told of other nodes' broadcasts. */
export interface Receiver {
  /** Another node's broadcast (a hub must still ignore its own, which some backplanes echo). */
  readonly onMessage: (message: BackplaneMessage) => void
  /** Messages on a topic may have been lost, here or on another node. */
  readonly onResync: (signal: Resync) => void
}

/**
 * A hub's registration with the backplane, open while the scope of `subscribe` is. The hub
 * calls `watch` when a topic gets its first local subscriber and `unwatch` when its last one
 * leaves; both return at once (a networked backplane does the network work in the background).
 * A backplane may deliver only the topics watched.
 */
export interface Attachment {
  readonly watch: (topic: string) => void
  readonly unwatch: (topic: string) => void
}

/** Moves broadcasts between nodes. */
export interface Backplane {
  /** Sends a broadcast to the other nodes; never fails, never waits for the network. */
  readonly publish: (message: BackplaneMessage) => Effect.Effect<void>
  /** Receives the broadcasts of the topics watched, and resync signals, while the scope is open. */
  readonly subscribe: (receiver: Receiver) => Effect.Effect<Attachment, never, Scope.Scope>
  /** Asks every node, this one included, to send what it holds of `topic` whole (reason `requested`). */
  readonly resync: (topic: string) => Effect.Effect<void>
}

/** The in-memory backplane, with what it knows for tests. */
export interface MemoryBackplane extends Backplane {
  /** How many attached hubs watch `topic` now. */
  readonly watchers: (topic: string) => number
  /** Signals a resync of `topic` to every attached hub, as a networked backplane does on a gap. */
  readonly signal: (signal: Resync) => void
}

/**
 * An in-memory backplane: hubs given the same instance see each other's
 * broadcasts of the topics they watch, delivered on a microtask as a network
 * would deliver them later.
 */
export const memory = (): MemoryBackplane => {
  const attached = new Map<Receiver, Set<string>>()
  const signal = (resync: Resync) => {
    for (const receiver of attached.keys()) receiver.onResync(resync)
  }
  return {
    publish: (message) =>
      Effect.sync(() => {
        queueMicrotask(() => {
          for (const [receiver, watched] of attached) if (watched.has(message.topic)) receiver.onMessage(message)
        })
      }),
    subscribe: (receiver) =>
      Effect.acquireRelease(
        Effect.sync((): Attachment => {
          const watched = new Set<string>()
          attached.set(receiver, watched)
          return { watch: (topic) => void watched.add(topic), unwatch: (topic) => void watched.delete(topic) }
        }),
        () => Effect.sync(() => attached.delete(receiver))
      ),
    resync: (topic) => Effect.sync(() => queueMicrotask(() => signal(resyncSignal(topic, "requested")))),
    watchers: (topic) => {
      let count = 0
      for (const watched of attached.values()) if (watched.has(topic)) count++
      return count
    },
    signal
  }
}
