/**
 * The actors of a node's `cluster` subtree: `membership` (heartbeats, polls of the live nodes),
 * `ownership` (renewals, acquisitions, the claims' deadlines) and `backplane` (the subscribing
 * connection's frames to the hubs). Each runs one loop of its object and holds nothing else: the
 * leases, deadlines, views and counters stay in the objects `ClusterNode` built above the tree.
 * A crashed or restarted child runs its loop again from them and from Redis; nothing is released
 * by a restart (a stop is never undone by a restart, nor a lease given up by one). Only closing
 * the node's own scope (the service stopping, after its tree) releases leases and leaves.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Actor from "../actors/Actor.js"
import type * as Membership from "./Membership.js"
import type * as Ownership from "./Ownership.js"
import type * as RedisBackplane from "./RedisBackplane.js"

/** What the loops belong to. */
export interface Loops {
  readonly membership: Membership.Membership
  readonly ownership: Ownership.Ownership
  readonly backplane: RedisBackplane.RedisBackplane
}

/** An actor that runs `loop` for the life of each of its incarnations; it ignores messages. */
export const loopActor = (name: string, loop: Effect.Effect<never>): Actor.Behaviour<unknown, null> =>
  Actor.make<unknown, null>({
    name,
    init: (ctx) => Effect.as(Effect.forkIn(loop, ctx.scope), null),
    receive: (state) => Effect.succeed(state)
  })

/** The children of the `cluster` subtree, in start order, each with its id in the tree. */
export const children = (loops: Loops): ReadonlyArray<{ readonly id: string; readonly behaviour: Actor.Behaviour<unknown, null> }> => [
  { id: "membership", behaviour: loopActor("membership", loops.membership.loop) },
  { id: "ownership", behaviour: loopActor("ownership", loops.ownership.loop) },
  { id: "backplane", behaviour: loopActor("backplane", loops.backplane.listen) }
]
