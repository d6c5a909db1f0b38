/**
 * Control leases in Redis: which session, of which node, may command a robot, for the whole
 * cluster (the fleet's `SharedLeases`).
 *
 * - **Keys**: `{fleetvisor}:control:<robot>` holds `{"node","session","user"}` with the lease's
 *   TTL (`PX`): a lease nobody renews ends by itself. `{fleetvisor}:controls:<node>` is the set of
 *   robots a node's sessions took, so that a node that died has its leases swept.
 * - **One script per step**: taking (free, expired, or already this session's), renewing and
 *   ending each check the holder in the same Lua call that writes, so two nodes never both win.
 * - **Sweeping**: when a node drops out of the membership, every live node sweeps its leases (a
 *   script that deletes those still held by it); sweeping twice does nothing more.
 * - **Redis loses its memory**: whenever the connection becomes ready again, the node writes its
 *   own table's leases again (`SET NX` with what is left of each); a lease another session took in
 *   between is told `lost`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Redis } from "ioredis"
import type { RedisUnavailable } from "./ClusterError.js"
import type * as Membership from "./Membership.js"
import * as RedisConnection from "./RedisConnection.js"

/** A lease's value in Redis. */
export interface ControlHolder {
  readonly node: string
  readonly session: string
  readonly user: string
}

/** What taking a lease answered: granted, or held by another session. */
export type Grant = { readonly _tag: "Granted" } | { readonly _tag: "Held"; readonly node: string; readonly user: string }

/** A lease of this node's table (see {@link ControlLeases.attach}). */
export interface LocalLease {
  readonly robot: string
  readonly holder: { readonly session: string; readonly user: string }
  readonly remainingMs: number
}

/** Plain counters, for metrics. */
export interface Counts {
  readonly granted: number
  readonly held: number
  readonly renewed: number
  readonly released: number
  /** Leases of departed nodes deleted by this node's sweeps. */
  readonly swept: number
  /** Leases written again after Redis came back. */
  readonly rewritten: number
  readonly redisErrors: number
}

/** The cluster's control leases, from this node. */
export interface ControlLeases {
  readonly node: string
  readonly acquire: (robot: string, holder: { readonly session: string; readonly user: string }, ttlMs: number) => Effect.Effect<Grant, RedisUnavailable>
  readonly renew: (robot: string, session: string, ttlMs: number) => Effect.Effect<boolean, RedisUnavailable>
  readonly release: (robot: string, session: string) => Effect.Effect<void>
  /** The holder of `robot`'s lease now, read from Redis. */
  readonly holderOf: (robot: string) => Effect.Effect<ControlHolder | undefined, RedisUnavailable>
  /** Deletes the leases still held by `node` (it left); answers how many. */
  readonly sweep: (node: string) => Effect.Effect<number, RedisUnavailable>
  readonly attach: (local: {
    readonly all: () => ReadonlyArray<LocalLease>
    readonly lost: (robot: string, session: string) => void
  }) => Effect.Effect<void>
  readonly counts: () => Counts
}

/** What {@link make} needs. */
export interface Options {
  readonly redis: Redis
  readonly node: string
  /** When given, leases of nodes that leave it are swept. */
  readonly membership?: Membership.Membership | undefined
  /** The keys' prefix with its hash tag (default `{fleetvisor}`). */
  readonly prefix?: string | undefined
}

/** The key of `robot`'s lease. */
export const controlKey = (prefix: string, robot: string) => `${prefix}:control:${robot}`

/** The set of robots `node`'s sessions took. */
export const nodeControlsKey = (prefix: string, node: string) => `${prefix}:controls:${node}`

// KEYS: lease, node's set. ARGV: node, session, value, ttl, robot. Returns nil when granted, else the holder's value.
const acquireScript = RedisConnection.script(`
local v = redis.call('GET', KEYS[1])
if v then
  local ok, cur = pcall(cjson.decode, v)
  if ok and type(cur) == 'table' and (cur.node ~= ARGV[1] or cur.session ~= ARGV[2]) then return v end
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[5])
return false
`)

// KEYS: lease. ARGV: node, session, ttl. Returns 1 when renewed.
const renewScript = RedisConnection.script(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, cur = pcall(cjson.decode, v)
if not ok or type(cur) ~= 'table' or cur.node ~= ARGV[1] or cur.session ~= ARGV[2] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// KEYS: lease, node's set. ARGV: node, session, robot. Returns 1 when it ended the lease.
const releaseScript = RedisConnection.script(`
local v = redis.call('GET', KEYS[1])
if not v then redis.call('SREM', KEYS[2], ARGV[3]) return 0 end
local ok, cur = pcall(cjson.decode, v)
if not ok or type(cur) ~= 'table' or cur.node ~= ARGV[1] or cur.session ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[3])
return 1
`)

// KEYS: node's set. ARGV: node, prefix. Returns how many leases it deleted.
const sweepScript = RedisConnection.script(`
local robots = redis.call('SMEMBERS', KEYS[1])
local n = 0
for _, robot in ipairs(robots) do
  local key = ARGV[2] .. ':control:' .. robot
  local v = redis.call('GET', key)
  if v then
    local ok, cur = pcall(cjson.decode, v)
    if ok and type(cur) == 'table' and cur.node == ARGV[1] then
      redis.call('DEL', key)
      n = n + 1
    end
  end
end
redis.call('DEL', KEYS[1])
return n
`)

const decode = (text: string | null): ControlHolder | undefined => {
  if (text === null) return undefined
  try {
    const value = JSON.parse(text) as Partial<ControlHolder>
    return typeof value.node === "string" && typeof value.session === "string" && typeof value.user === "string"
      ? { node: value.node, session: value.session, user: value.user }
      : undefined
  } catch {
    return undefined
  }
}

/** The control leases over `redis`, sweeping departed nodes' leases until the scope closes. */
export const make = (options: Options): Effect.Effect<ControlLeases, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { node, redis } = options
    const prefix = options.prefix ?? "{fleetvisor}"
    const ownSet = nodeControlsKey(prefix, node)
    const counts = { granted: 0, held: 0, renewed: 0, released: 0, swept: 0, rewritten: 0, redisErrors: 0 }
    const failed = <A>(effect: Effect.Effect<A, RedisUnavailable>) =>
      Effect.tapError(effect, () => Effect.sync(() => counts.redisErrors++))

    const acquire: ControlLeases["acquire"] = (robot, holder, ttlMs) =>
      failed(RedisConnection.run(redis, "control acquire", acquireScript, [controlKey(prefix, robot), ownSet], [
        node,
        holder.session,
        JSON.stringify({ node, session: holder.session, user: holder.user }),
        Math.max(1, Math.round(ttlMs)),
        robot
      ])).pipe(Effect.map((answer): Grant => {
        if (typeof answer !== "string") {
          counts.granted++
          return { _tag: "Granted" }
        }
        counts.held++
        const current = decode(answer)
        return { _tag: "Held", node: current?.node ?? "?", user: current?.user ?? "?" }
      }))

    const sweep: ControlLeases["sweep"] = (gone) =>
      failed(RedisConnection.run(redis, "control sweep", sweepScript, [nodeControlsKey(prefix, gone)], [gone, prefix])).pipe(
        Effect.map((n) => Number(n)),
        Effect.tap((n) => Effect.sync(() => counts.swept += n))
      )

    let local: Parameters<ControlLeases["attach"]>[0] | undefined
    let rewriting = false
    const rewrite = async () => {
      if (local === undefined || rewriting) return
      rewriting = true
      try {
        for (const lease of local.all()) {
          if (lease.remainingMs <= 0) continue
          const value = JSON.stringify({ node, session: lease.holder.session, user: lease.holder.user })
          const key = controlKey(prefix, lease.robot)
          const [[, written]] = (await redis.multi().set(key, value, "PX", Math.round(lease.remainingMs), "NX").sadd(ownSet, lease.robot).exec()) as Array<[unknown, unknown]>
          if (written === "OK") {
            counts.rewritten++
            continue
          }
          const current = decode(await redis.get(key))
          if (current !== undefined && (current.node !== node || current.session !== lease.holder.session)) {
            local.lost(lease.robot, lease.holder.session)
          }
        }
      } catch {
        counts.redisErrors++
      } finally {
        rewriting = false
      }
    }
    const onReady = () => void rewrite()
    redis.on("ready", onReady)
    yield* Effect.addFinalizer(() => Effect.sync(() => void redis.off("ready", onReady)))

    if (options.membership !== undefined) {
      const membership = options.membership
      let seen = new Set(membership.unsafeLive().map((member) => member.id))
      yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
        yield* Effect.sleep("250 millis")
        const live = new Set(membership.unsafeLive().map((member) => member.id))
        // An empty view is Redis away, not every node gone.
        if (live.size === 0) return
        for (const gone of seen) if (!live.has(gone) && gone !== node) yield* Effect.ignore(sweep(gone))
        seen = live
      })))
    }

    return {
      node,
      acquire,
      renew: (robot, session, ttlMs) =>
        failed(RedisConnection.run(redis, "control renew", renewScript, [controlKey(prefix, robot)], [
          node,
          session,
          Math.max(1, Math.round(ttlMs))
        ])).pipe(Effect.map((answer) => {
          if (Number(answer) === 1) counts.renewed++
          return Number(answer) === 1
        })),
      release: (robot, session) =>
        RedisConnection.run(redis, "control release", releaseScript, [controlKey(prefix, robot), ownSet], [node, session, robot]).pipe(
          Effect.tap((answer) => Effect.sync(() => Number(answer) === 1 && counts.released++)),
          Effect.catchAll(() => Effect.sync(() => void counts.redisErrors++)),
          Effect.asVoid
        ),
      holderOf: (robot) =>
        failed(RedisConnection.command("control get", () => redis.get(controlKey(prefix, robot)))).pipe(Effect.map(decode)),
      sweep,
      attach: (table) => Effect.sync(() => void (local = table)),
      counts: () => ({ ...counts })
    } satisfies ControlLeases
  })
