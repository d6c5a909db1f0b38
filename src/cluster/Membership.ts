/**
 * Which nodes of the cluster are alive, followed through Redis.
 *
 * Each node writes a heartbeat key `<prefix>:node:<id>` (JSON: its protocol version, whether it
 * drains, when it started, where its node link listens, the URL browsers reach it at when it has one) with a TTL, every TTL/3, and puts itself in the sorted set
 * `<prefix>:nodes` scored by when that heartbeat expires (Redis's own clock, so that the nodes'
 * clocks never matter). Every node polls the set: members whose score passed are pruned, and a
 * member is live while its heartbeat key exists. A node that stops (crash, SIGSTOP, lost network)
 * drops out one TTL after its last heartbeat at the latest; a node that leaves gracefully drops
 * out at the next poll.
 *
 * All keys share the prefix's hash tag (`{fleetvisor}` by default), so they live in one slot of
 * a Redis Cluster.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { Redis } from "ioredis"
import { InvalidNodeId, type RedisUnavailable } from "./ClusterError.js"
import * as RedisConnection from "./RedisConnection.js"

/** A live node, as its last heartbeat describes it. */
export interface Member {
  readonly id: string
  /** The node-to-node protocol version it speaks. */
  readonly protocol: number
  /** It announced a graceful drain: it takes no new robots and is handing its own over. */
  readonly draining: boolean
  /** When it started, ms since the epoch (its clock). */
  readonly startedAt: number
  /** Where its node link listens, `host:port` (see `NodeLink`); absent for a node without one. */
  readonly address?: string | undefined
  /** The URL browsers reach it at directly (`CLUSTER_PUBLIC_URL`), when it announces one. */
  readonly publicUrl?: string | undefined
}

/** How a node takes part in the membership. */
export interface Options {
  /** The cluster's connection (see `RedisConnection.connect`). */
  readonly redis: Redis
  /** This node's id (`NODE_ID`): unique in the cluster, non-empty, without `|`. */
  readonly node: string
  /** The node-to-node protocol version this node speaks. */
  readonly protocol: number
  /** Where this node's node link listens, `host:port`, announced to the others. */
  readonly address?: string | undefined
  /** How long a heartbeat lives, ms (default 5,000); it is written every TTL/3. */
  readonly ttl?: number
  /** How often the live nodes are read, ms (default 250). */
  readonly pollInterval?: number
  /** The keys' prefix with its hash tag (default `{fleetvisor}`). */
  readonly prefix?: string
  /** Whether closing the scope removes the heartbeat at once (default true); false leaves it to expire, as a crash would. */
  readonly leaveOnClose?: boolean
  /** The URL browsers reach this node at directly, announced in its heartbeat (none: not announced). */
  readonly publicUrl?: string | undefined
  /**
   * Whether `make` runs {@link Membership.loop} itself until the scope closes (default true); with
   * false the caller runs it (an actor of the `cluster` subtree), and running it again after an
   * interruption goes on from this object's view and counts.
   */
  readonly runLoop?: boolean
}

/** Plain counters, for metrics. */
export interface Counts {
  /** Heartbeats written. */
  readonly heartbeats: number
  /** Polls of the live nodes that got an answer. */
  readonly polls: number
  /** Changes of the live set (a node joined, left, or started to drain). */
  readonly changes: number
  /** Heartbeats and polls that Redis did not answer. */
  readonly redisErrors: number
}

/** This node's view of the cluster. */
export interface Membership {
  /** This node's id. */
  readonly node: string
  /** This node's protocol version. */
  readonly protocol: number
  /** The live nodes as last polled, sorted by id (a plain read for hot paths). */
  readonly unsafeLive: () => ReadonlyArray<Member>
  /** The live nodes as last polled, sorted by id. */
  readonly live: Effect.Effect<ReadonlyArray<Member>>
  /** The live nodes now, then each time the set changes. */
  readonly changes: Stream.Stream<ReadonlyArray<Member>>
  /** Polls Redis now, updating the view. */
  readonly refresh: Effect.Effect<ReadonlyArray<Member>, RedisUnavailable>
  /** Announces that this node drains (written at once; it stays a member until it leaves). */
  readonly drain: Effect.Effect<void, RedisUnavailable>
  /** Whether this node announced a drain. */
  readonly isDraining: () => boolean
  /** The counters so far. */
  readonly counts: () => Counts
  /** The heartbeats (every TTL/3) and the polls of the live nodes, forever; interrupting it leaves nothing. */
  readonly loop: Effect.Effect<never>
}

/** This node's membership as a service. */
export const Membership: Context.Tag<Membership, Membership> = Context.GenericTag<Membership>("fleetvisor/cluster/Membership")

/** The default key prefix: one Redis Cluster hash tag for every key of the cluster. */
export const defaultPrefix = "{fleetvisor}"

/** The heartbeat key of `node`. */
export const nodeKey = (prefix: string, node: string) => `${prefix}:node:${node}`

/** The sorted set of nodes scored by heartbeat expiry. */
export const nodesKey = (prefix: string) => `${prefix}:nodes`

const heartbeatScript = RedisConnection.script(`
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
return now
`)

const membersScript = RedisConnection.script(`
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
`)

/** Whether `id` can name a node. */
export const validNodeId = (id: string) => id.length > 0 && !id.includes("|")

/** Runs `effect` every `millis` after a first pause, forever, ignoring its failures. */
const every = <A, E>(millis: number, effect: Effect.Effect<A, E>) =>
  Effect.forever(Effect.zipRight(Effect.sleep(millis), Effect.ignore(effect)))

const sameView = (a: ReadonlyArray<Member>, b: ReadonlyArray<Member>) =>
  a.length === b.length &&
  a.every((m, i) => m.id === b[i].id && m.draining === b[i].draining && m.protocol === b[i].protocol &&
    m.address === b[i].address && m.publicUrl === b[i].publicUrl)

/**
 * Joins the membership: writes the first heartbeat and reads the live nodes (both only tried:
 * a node may start while Redis is down), then keeps both going until the scope closes.
 */
export const make = (options: Options): Effect.Effect<Membership, InvalidNodeId, Scope.Scope> =>
  Effect.gen(function*() {
    const { redis, node, protocol } = options
    if (!validNodeId(node)) return yield* Effect.fail(new InvalidNodeId({ node }))
    const ttl = options.ttl ?? 5_000
    const prefix = options.prefix ?? defaultPrefix
    const startedAt = Date.now()
    const publicUrl = options.publicUrl === undefined ? {} : { publicUrl: options.publicUrl }
    const ownKey = nodeKey(prefix, node)
    const setKey = nodesKey(prefix)
    let draining = false
    const counts = { heartbeats: 0, polls: 0, changes: 0, redisErrors: 0 }
    const view = yield* SubscriptionRef.make<ReadonlyArray<Member>>([])
    let current: ReadonlyArray<Member> = []

    const failed = <A, R>(effect: Effect.Effect<A, RedisUnavailable, R>) =>
      Effect.tapError(effect, () => Effect.sync(() => counts.redisErrors++))

    const heartbeat = failed(Effect.suspend(() =>
      RedisConnection.run(redis, "heartbeat", heartbeatScript, [ownKey, setKey], [
        node,
        ttl,
        JSON.stringify({ protocol, draining, startedAt, ...(options.address === undefined ? {} : { address: options.address }), ...publicUrl })
      ])
    ).pipe(Effect.tap(() => Effect.sync(() => counts.heartbeats++)), Effect.asVoid))

    const refresh = failed(Effect.gen(function*() {
      const ids = (yield* RedisConnection.run(redis, "members", membersScript, [setKey], [])) as Array<string>
      const values = ids.length === 0 ? [] : yield* RedisConnection.command("members", () =>
        redis.mget(ids.map((id) => nodeKey(prefix, id))))
      const members: Array<Member> = []
      ids.forEach((id, i) => {
        const value = values[i]
        if (value == null) return
        try {
          const info = JSON.parse(value) as Partial<Member>
          members.push({
            id,
            protocol: Number(info.protocol ?? 0),
            draining: info.draining === true,
            startedAt: Number(info.startedAt ?? 0),
            ...(typeof info.address === "string" ? { address: info.address } : {}),
            ...(typeof info.publicUrl === "string" ? { publicUrl: info.publicUrl } : {})
          })
        } catch {
          members.push({ id, protocol: 0, draining: false, startedAt: 0 })
        }
      })
      members.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      counts.polls++
      if (!sameView(current, members)) {
        current = members
        counts.changes++
        yield* SubscriptionRef.set(view, members)
      }
      return current
    }))

    yield* Effect.ignore(heartbeat)
    yield* Effect.ignore(refresh)
    // A node that finds itself missing (Redis restarted empty) writes its heartbeat at once.
    const poll = Effect.flatMap(refresh, (members) =>
      members.some((member) => member.id === node) ? Effect.void : Effect.zipRight(heartbeat, refresh))
    const loop: Effect.Effect<never> = Effect.zipRight(
      Effect.forkScoped(every(Math.max(1, Math.floor(ttl / 3)), heartbeat)),
      every(options.pollInterval ?? 250, poll)
    ).pipe(Effect.scoped)
    if (options.runLoop ?? true) yield* Effect.forkScoped(loop)
    if (options.leaveOnClose ?? true) {
      yield* Effect.addFinalizer(() =>
        Effect.ignore(RedisConnection.command("leave", () => redis.multi().del(ownKey).zrem(setKey, node).exec()))
      )
    }

    return {
      node,
      protocol,
      unsafeLive: () => current,
      live: Effect.sync(() => current),
      changes: view.changes,
      refresh,
      drain: Effect.suspend(() => {
        draining = true
        return heartbeat
      }).pipe(Effect.zipRight(Effect.ignore(refresh))),
      isDraining: () => draining,
      counts: () => ({ ...counts }),
      loop
    } satisfies Membership
  })

/** A layer joining the membership over the cluster's connection for the lifetime of the layer. */
export const layer = (
  options: Omit<Options, "redis">
): Layer.Layer<Membership, InvalidNodeId, RedisConnection.ClusterRedis> =>
  Layer.scoped(Membership, Effect.flatMap(RedisConnection.ClusterRedis, (redis) => make({ ...options, redis })))
