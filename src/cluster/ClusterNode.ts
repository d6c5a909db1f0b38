/**
 * This node as a member of a cluster: its Redis connection, its membership, its robot
 * ownership and its PubSub backplane, built for the life of a scope, with what the service needs
 * of them: which robots it runs and which nodes are live (`owns`, `owned`, `manage`, `watch`,
 * `isLive`, the shape of the links layer's `Placement`), the backplane for the fleet's hub, its
 * view for the admin API and its counters for metrics, the cluster-wide stop latches
 * ({@link ClusterLatches}): a robot acquired has its latch read before anyone is told, and the
 * direct link to the other nodes that remote refs travel over (`transport`, {@link NodeLink}).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Remote } from "../actors/index.js"
import * as ClusterActors from "./ClusterActors.js"
import type { InvalidNodeId, InvalidSettings, ListenFailed } from "./ClusterError.js"
import * as ClusterLatches from "./ClusterLatches.js"
import * as ControlLeases from "./ControlLeases.js"
import * as FencingToken from "./FencingToken.js"
import * as Membership from "./Membership.js"
import * as NodeLink from "./NodeLink.js"
import * as NodeProtocol from "./NodeProtocol.js"
import * as Ownership from "./Ownership.js"
import * as RedisAddress from "./RedisAddress.js"
import * as RedisBackplane from "./RedisBackplane.js"
import * as RedisConnection from "./RedisConnection.js"
import * as Singleton from "./Singleton.js"

/** The node-to-node protocol version this build speaks (its newest; see {@link NodeProtocol}). */
export const protocol = NodeProtocol.max

/** How this node joins. */
export interface ClusterNodeOptions {
  /** `REDIS_URL`: one Redis, a managed one over TLS, or Sentinels (see {@link RedisAddress}). */
  readonly redisUrl: string
  readonly nodeId: string
  /** Heartbeat and lease TTL, ms. */
  readonly ttl: number
  /** Where the node link listens and what it announces (defaults: a free port on every interface, the hostname). */
  readonly link?: {
    readonly port?: number | undefined
    readonly bind?: string | undefined
    readonly advertise?: string | undefined
    /** The file of the cluster's shared secret (`CLUSTER_SECRET_FILE`). */
    readonly secretFile?: string | undefined
  } | undefined
  /** The URL browsers reach this node at directly (`CLUSTER_PUBLIC_URL`), announced to the others. */
  readonly publicUrl?: string | undefined
  /**
   * Whether the loops of membership, ownership and the backplane run as the actors of a `cluster`
   * subtree ({@link ClusterNode.children}) instead of fibers of this scope (default false).
   */
  readonly supervised?: boolean | undefined
}

/** What an operator sees of the cluster from this node (`/admin/cluster`). */
export interface ClusterView {
  readonly node: string
  readonly live: ReadonlyArray<{ readonly id: string; readonly draining: boolean; readonly publicUrl?: string | undefined }>
  /** The robots this node runs now, sorted. */
  readonly owned: ReadonlyArray<string>
  readonly epoch: number
  readonly ownership: Ownership.Counts
  readonly membership: Membership.Counts
  /** Where this node's link listens, and its counters. */
  readonly link: { readonly address: string } & NodeLink.Counts
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
  /** How this node's remote refs reach the other nodes (its node link). */
  readonly transport: Remote.Transport
  /** This node's link to the others: its address and counters. */
  readonly link: NodeLink.NodeLink
  /** The control leases every node shares: which session of which node may command a robot. */
  readonly controlLeases: ControlLeases.ControlLeases
  readonly owns: (robot: string) => boolean
  readonly owned: () => ReadonlyArray<string>
  readonly manage: (robots: Iterable<string>) => Effect.Effect<void>
  /** Calls `listener` with `true` on each robot acquired and `false` on each lost or released; returns what stops it. */
  readonly watch: (listener: (robot: string, owned: boolean) => void) => () => void
  /** Whether `node` is in the live set this node last read. */
  readonly isLive: (node: string) => boolean
  /** This node's lease token on `robot` (`epoch.counter`) while it runs it. */
  readonly tokenOf: (robot: string) => string | undefined
  /** The other live nodes that do not drain and announce a public URL, as this node last read them. */
  readonly publicPeers: () => ReadonlyArray<{ readonly id: string; readonly url: string }>
  /** With `supervised`, the actors that run the loops, for a `cluster` supervisor (see `ClusterActors`); else none. */
  readonly children: ReturnType<typeof ClusterActors.children>
  readonly view: () => ClusterView
  /** Takes part in holding the singleton `name` (the canvas's board) until the scope closes, with this node's TTL. */
  readonly singleton: (name: string) => Effect.Effect<Singleton.Singleton, InvalidSettings, Scope.Scope>
}

/**
 * Joins the cluster: starts listening for the other nodes (its node link, whose address the
 * first heartbeat announces), connects to Redis (without waiting for it: a node starts while
 * Redis is down), joins the membership, takes part in ownership and opens its backplane until
 * the scope closes, when it releases its leases and leaves.
 */
export const start = (
  options: ClusterNodeOptions
): Effect.Effect<ClusterNode, InvalidNodeId | InvalidSettings | ListenFailed, Scope.Scope> =>
  Effect.gen(function*() {
    // One reading of the URL for every connection; a URL that cannot work stops the start here.
    const address = yield* RedisConnection.address(options.redisUrl)
    const supervised = options.supervised ?? false
    yield* Effect.logInfo(`cluster: node ${options.nodeId} joins through ${RedisAddress.describe(address)}`)
    const secretFile = options.link?.secretFile
    const secret = secretFile === undefined ? undefined : yield* NodeLink.readSecret(secretFile)
    let joined: Membership.Membership | undefined
    const link = yield* NodeLink.make({
      node: options.nodeId,
      peers: NodeLink.fromMembership(() => joined),
      port: options.link?.port,
      bind: options.link?.bind,
      advertise: options.link?.advertise,
      secret
    })
    yield* Effect.logInfo(`node link listening, announced as ${link.address}${secret === undefined ? " (no cluster secret)" : ""}`)
    const context = yield* Layer.build(
      Ownership.layer({ ttl: options.ttl, runLoop: !supervised }).pipe(
        Layer.provideMerge(
          Membership.layer({
            node: options.nodeId,
            protocol,
            ttl: options.ttl,
            address: link.address,
            publicUrl: options.publicUrl,
            runLoop: !supervised
          })
        ),
        Layer.provideMerge(RedisConnection.layer(address))
      )
    )
    const ownership = Context.get(context, Ownership.Ownership)
    const membership = Context.get(context, Membership.Membership)
    joined = membership
    const backplane = yield* RedisBackplane.make({ url: address, nodeId: options.nodeId, runLoop: !supervised })
    const latches = yield* ClusterLatches.make({
      redis: Context.get(context, RedisConnection.ClusterRedis),
      url: address,
      node: options.nodeId
    })
    const controlLeases = yield* ControlLeases.make({
      redis: Context.get(context, RedisConnection.ClusterRedis),
      node: options.nodeId,
      membership
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
      transport: link,
      link,
      controlLeases,
      owns: ownership.owns,
      owned: ownership.owned,
      manage: ownership.manage,
      watch: (listener) => {
        listeners.add(listener)
        return () => void listeners.delete(listener)
      },
      isLive: (node) => membership.unsafeLive().some((member) => member.id === node),
      tokenOf: (robot) => {
        const token = ownership.owns(robot) ? ownership.tokenOf(robot) : undefined
        return token === undefined ? undefined : FencingToken.format(token)
      },
      publicPeers: () =>
        membership.unsafeLive().flatMap((member) =>
          member.id === options.nodeId || member.draining || member.publicUrl === undefined ? [] : [{ id: member.id, url: member.publicUrl }]
        ),
      children: supervised ? ClusterActors.children({ membership, ownership, backplane }) : [],
      view: () => ({
        node: options.nodeId,
        live: membership.unsafeLive().map((member) => ({
          id: member.id,
          draining: member.draining,
          ...(member.publicUrl === undefined ? {} : { publicUrl: member.publicUrl })
        })),
        owned: [...ownership.owned()].sort(),
        epoch: ownership.epoch(),
        ownership: ownership.counts(),
        membership: membership.counts(),
        link: { address: link.address, ...link.counts() }
      }),
      singleton: (name) =>
        Singleton.make({ redis: Context.get(context, RedisConnection.ClusterRedis), membership, name, ttl: options.ttl })
    } satisfies ClusterNode
  })
