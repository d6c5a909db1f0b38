/**
 * This node as a member of a cluster: its Redis connection, its membership, its robot
 * ownership and its PubSub backplane, built for the life of a scope, with what the service needs
 * of them: which robots it runs and which nodes are live (`owns`, `owned`, `manage`, `watch`,
 * `isLive`, the shape of the links layer's `Placement`), the backplane for the fleet's hub, its
 * view for the admin API and its counters for metrics, and the cluster-wide stop latches
 * ({@link ClusterLatches}): a robot acquired has its latch read before anyone is told.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as ClusterActors from "./ClusterActors.js"
import type { InvalidNodeId, InvalidSettings } from "./ClusterError.js"
import * as ClusterLatches from "./ClusterLatches.js"
import * as Membership from "./Membership.js"
import * as Ownership from "./Ownership.js"
import * as RedisAddress from "./RedisAddress.js"
import * as RedisBackplane from "./RedisBackplane.js"
import * as RedisConnection from "./RedisConnection.js"

/** The node-to-node protocol version this build speaks. */
export const protocol = 1

/** How this node joins. */
export interface ClusterNodeOptions {
  /** `REDIS_URL`: one Redis, a managed one over TLS, or Sentinels (see {@link RedisAddress}). */
  readonly redisUrl: string
  readonly nodeId: string
  /** Heartbeat and lease TTL, ms. */
  readonly ttl: number
  /**
   * Whether the loops of membership, ownership and the backplane run as the actors of a `cluster`
   * subtree ({@link ClusterNode.children}) instead of fibers of this scope (default false).
   */
  readonly supervised?: boolean | undefined
}

/** What an operator sees of the cluster from this node (`/admin/cluster`). */
export interface ClusterView {
  readonly node: string
  readonly live: ReadonlyArray<{ readonly id: string; readonly draining: boolean }>
  /** The robots this node runs now, sorted. */
  readonly owned: ReadonlyArray<string>
  readonly epoch: number
  readonly ownership: Ownership.Counts
  readonly membership: Membership.Counts
}

/** This node in the cluster. */
export interface ClusterNode {
  readonly node: string
  readonly ownership: Ownership.Ownership
  readonly membership: Membership.Membership
  /** The PubSub backplane of this node (its node id is `node`), with its counters. */
  readonly backplane: RedisBackplane.RedisBackplane
  /** The emergency-stop latches every node shares. */
  readonly latches: ClusterLatches.ClusterLatches
  readonly owns: (robot: string) => boolean
  readonly owned: () => ReadonlyArray<string>
  readonly manage: (robots: Iterable<string>) => Effect.Effect<void>
  /** Calls `listener` with `true` on each robot acquired and `false` on each lost or released; returns what stops it. */
  readonly watch: (listener: (robot: string, owned: boolean) => void) => () => void
  /** Whether `node` is in the live set this node last read. */
  readonly isLive: (node: string) => boolean
  /** With `supervised`, the actors that run the loops, for a `cluster` supervisor (see `ClusterActors`); else none. */
  readonly children: ReturnType<typeof ClusterActors.children>
  readonly view: () => ClusterView
}

/**
 * Joins the cluster: connects to Redis (without waiting for it: a node starts while Redis is
 * down), joins the membership, takes part in ownership and opens its backplane until the scope
 * closes, when it releases its leases and leaves.
 */
export const start = (options: ClusterNodeOptions): Effect.Effect<ClusterNode, InvalidNodeId | InvalidSettings, Scope.Scope> =>
  Effect.gen(function*() {
    // One reading of the URL for every connection; a URL that cannot work stops the start here.
    const address = yield* RedisConnection.address(options.redisUrl)
    const supervised = options.supervised ?? false
    yield* Effect.logInfo(`cluster: node ${options.nodeId} joins through ${RedisAddress.describe(address)}`)
    const context = yield* Layer.build(
      Ownership.layer({ ttl: options.ttl, runLoop: !supervised }).pipe(
        Layer.provideMerge(Membership.layer({ node: options.nodeId, protocol, ttl: options.ttl, runLoop: !supervised })),
        Layer.provideMerge(RedisConnection.layer(address))
      )
    )
    const ownership = Context.get(context, Ownership.Ownership)
    const membership = Context.get(context, Membership.Membership)
    const backplane = yield* RedisBackplane.make({ url: address, nodeId: options.nodeId, runLoop: !supervised })
    const latches = yield* ClusterLatches.make({
      redis: Context.get(context, RedisConnection.ClusterRedis),
      url: address,
      node: options.nodeId
    })
    const listeners = new Set<(robot: string, owned: boolean) => void>()
    yield* Effect.forkScoped(Stream.runForEach(ownership.changes, (change) =>
      Effect.gen(function*() {
        if (change._tag === "Rewritten") return
        // The new owner knows the robot's latch before its link may start.
        if (change._tag === "Acquired") yield* latches.refresh(change.robot)
        for (const listener of listeners) listener(change.robot, change._tag === "Acquired")
      })))
    // Lets the fork subscribe before the tree starts; what a watcher starts from is `owned()` anyway.
    yield* Effect.yieldNow()
    return {
      node: options.nodeId,
      ownership,
      membership,
      backplane,
      latches,
      owns: ownership.owns,
      owned: ownership.owned,
      manage: ownership.manage,
      watch: (listener) => {
        listeners.add(listener)
        return () => void listeners.delete(listener)
      },
      isLive: (node) => membership.unsafeLive().some((member) => member.id === node),
      children: supervised ? ClusterActors.children({ membership, ownership, backplane }) : [],
      view: () => ({
        node: options.nodeId,
        live: membership.unsafeLive().map((member) => ({ id: member.id, draining: member.draining })),
        owned: [...ownership.owned()].sort(),
        epoch: ownership.epoch(),
        ownership: ownership.counts(),
        membership: membership.counts()
      })
    } satisfies ClusterNode
  })
