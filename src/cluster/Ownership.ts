/**
 * Robot ownership: exactly one node runs each robot, held by a Redis lease with a fencing token.
 *
 * - **Leases.** A robot's lease is the key `<prefix>:owner:<robot>` = `node|epoch|counter`, set
 *   with a TTL (5 s by default) by one Lua script that increments `<prefix>:counter` and sets the
 *   key only if it does not exist. `(epoch, counter)` is the lease's {@link FencingToken}.
 * - **Renewal in batches.** Every TTL/3 one script renews all of a node's leases, each only
 *   while its value is still the node's; a lease found taken or gone is reported lost.
 * - **The owner's own deadline.** Before each acquire or renewal the node notes its monotonic
 *   clock; the lease is its until that instant + TTL − margin. {@link Ownership.owns} answers from
 *   that deadline alone, so a node that is paused, partitioned or cut from Redis stops claiming
 *   its robots by itself, before Redis can expire the key and grant it to another node. Its end
 *   is reported (`Lost`) at that deadline by a timer, not when Redis answers; a late renewal that
 *   Redis still granted brings the robot back (`Acquired`).
 * - **Placement.** A robot without an owner is acquired only by its rendezvous winner among the
 *   live nodes that do not drain; a robot whose owner is alive stays where it is (sticky), since
 *   a lease is only ever taken when the key is gone. When a node dies its leases expire and the
 *   winners among the others take them at their next poll (every 250 ms by default). A drain
 *   announces itself in the membership, then releases every lease (deleted only where the value
 *   is still the node's), so that the others take the robots at once. A robot its winner leaves
 *   without an owner (it does not manage it) is taken by another node after `fallbackAfter`.
 *   For `settle` after Redis failed a command, a node acquires nothing, so that no robot is
 *   placed on a partial view of the nodes while their heartbeats come back.
 * - **Redis lost its memory.** A new `run_id` (seen at each reconnection) or a missing epoch key
 *   (`<prefix>:epoch`) starts a new epoch: one greater than the greatest known (in Redis, and in
 *   the node's `remember` store), with the grace key `<prefix>:grace` for one TTL. During grace no
 *   lease is granted, except that a node re-writes the leases it still holds by its own deadline,
 *   with a token of the new epoch. A node that held a lease before the restart stops claiming it
 *   by its deadline, within one TTL, so grace covers every lease that is not re-written.
 *
 * All keys share the prefix's hash tag, so the multi-key scripts run on a Redis Cluster too.
 * Redis being down never fails the node: no lease is granted or renewed, existing ones lapse at
 * their deadlines, and the counts say so.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Redis } from "ioredis"
import { InvalidSettings, type RedisUnavailable } from "./ClusterError.js"
import * as FencingToken from "./FencingToken.js"
import * as Membership from "./Membership.js"
import * as RedisConnection from "./RedisConnection.js"
import * as Rendezvous from "./Rendezvous.js"

/** Where a node keeps the greatest epoch it has seen, so that a new epoch is never smaller. */
export interface EpochMemory {
  readonly load: Effect.Effect<number>
  readonly save: (epoch: number) => Effect.Effect<void>
}

/** An {@link EpochMemory} in this process's memory (the default). */
export const inMemory = (): EpochMemory => {
  let epoch = 0
  return {
    load: Effect.sync(() => epoch),
    save: (next) => Effect.sync(() => void (epoch = Math.max(epoch, next)))
  }
}

/** How a node takes part in ownership. */
export interface Options {
  /** The cluster's connection (see `RedisConnection.connect`). */
  readonly redis: Redis
  /** This node's membership: its id, and the live nodes placement ranks. */
  readonly membership: Membership.Membership
  /** The robots this node may run, to begin with (see {@link Ownership.manage}). */
  readonly robots?: Iterable<string>
  /** A lease's TTL, ms (default 5,000). */
  readonly ttl?: number
  /** How long before TTL after a request the owner stops claiming, ms (default 500, at most TTL/5). */
  readonly margin?: number
  /** How often robots without an owner are looked for, ms (default 250). */
  readonly pollInterval?: number
  /** How often leases are renewed, ms (default TTL/3, at most (TTL − margin)/2). */
  readonly renewInterval?: number
  /**
   * After Redis failed a command (this node's or its membership's), no robot is acquired for this
   * long, ms (default 1,000): the nodes' heartbeats may have expired meanwhile, and a node that
   * placed robots on a partial view of the others would keep them there (leases are sticky).
   */
  readonly settle?: number
  /**
   * A robot that stayed without an owner this long, its rendezvous winner not taking it (the
   * winner does not manage it, say), is taken by any node that manages it, ms (default 3 × TTL;
   * 0: never). Free robots are looked for every third of this.
   */
  readonly fallbackAfter?: number
  /** The keys' prefix with its hash tag (default `{fleetvisor}`; the membership's must be the same). */
  readonly prefix?: string
  /** Where the greatest epoch seen is kept (default {@link inMemory}). */
  readonly remember?: EpochMemory
  /**
   * Whether closing the scope releases the leases (default true). With false they are left to
   * expire, as a crash would, and `owns` keeps answering from the deadlines.
   */
  readonly releaseOnClose?: boolean
  /**
   * Whether `make` runs {@link Ownership.loop} itself until the scope closes (default true). With
   * false the caller runs it (an actor of the `cluster` subtree): the leases, deadlines and counts
   * stay in this object, so a loop that is interrupted and run again goes on from them.
   */
  readonly runLoop?: boolean
}

/** What happened to one of this node's leases. */
export type Change =
  | {
    readonly _tag: "Acquired"
    readonly robot: string
    readonly token: FencingToken.FencingToken
    /** The node that held the robot before, when it was another one (a handover). */
    readonly previous: string | undefined
  }
  | { readonly _tag: "Rewritten"; readonly robot: string; readonly token: FencingToken.FencingToken }
  | { readonly _tag: "Lost"; readonly robot: string }
  | { readonly _tag: "Released"; readonly robot: string }

/** Plain counters, for metrics. */
export interface Counts {
  /** Leases granted to this node (adoptions of its own leftover leases included). */
  readonly acquisitions: number
  /** Acquisitions of robots another node held before. */
  readonly handovers: number
  /** Renewal batches Redis answered. */
  readonly renewals: number
  /** Leases renewed, over all batches. */
  readonly renewedLeases: number
  /** Leases re-written with a new epoch's token after Redis lost its memory. */
  readonly rewrites: number
  /** Leases reported `Lost`: their deadline passed, or they were found taken or gone. */
  readonly lost: number
  /** Of `lost`, those reported at their own deadline, before any word from Redis. */
  readonly lapsed: number
  /** Lapsed leases a late renewal restored (`Acquired` again). */
  readonly restored: number
  /** Leases given back (drain, unmanage, close). */
  readonly released: number
  /** Acquisitions Redis refused because an epoch's grace period was running. */
  readonly graceRefusals: number
  /** Epochs this node started. */
  readonly epochsStarted: number
  /** Commands Redis did not answer. */
  readonly redisErrors: number
}

/** This node's robots. */
export interface Ownership {
  /** This node's id. */
  readonly node: string
  /** Whether this node owns `robot` now, by its own deadline: may it command the robot. */
  readonly owns: (robot: string) => boolean
  /** Who holds each of `robots` now, read from Redis (robots without a lease are left out). */
  readonly owners: (robots: Iterable<string>) => Effect.Effect<ReadonlyMap<string, FencingToken.LeaseValue>, RedisUnavailable>
  /** How many ms this node still owns `robot` by its own deadline without another renewal; 0 when it does not. */
  readonly remaining: (robot: string) => number
  /** The fencing token of `robot`'s lease while this node owns it. */
  readonly tokenOf: (robot: string) => FencingToken.FencingToken | undefined
  /** The robots this node owns now. */
  readonly owned: () => ReadonlyArray<string>
  /** The newest epoch this node knows. */
  readonly epoch: () => number
  /** Adds robots this node may run. */
  readonly manage: (robots: Iterable<string>) => Effect.Effect<void>
  /** Removes robots this node may run, releasing their leases. */
  readonly unmanage: (robots: Iterable<string>) => Effect.Effect<void, RedisUnavailable>
  /** Drains: announces it, takes no more robots, and releases every lease at once. */
  readonly drain: Effect.Effect<void, RedisUnavailable>
  /** Runs one round (renewals when due, then acquisitions) now. */
  readonly poll: Effect.Effect<void>
  /**
   * The rounds (every poll interval, or sooner when a renewal is due) and the deadline timer,
   * forever. Interrupting it releases nothing; running it again goes on from this object's leases.
   */
  readonly loop: Effect.Effect<never>
  /** What happens to this node's leases, from now on. */
  readonly changes: Stream.Stream<Change>
  /** The counters so far. */
  readonly counts: () => Counts
}

/** This node's ownership as a service. */
export const Ownership: Context.Tag<Ownership, Ownership> = Context.GenericTag<Ownership>("fleetvisor/cluster/Ownership")

/** The lease key of `robot`. */
export const ownerKey = (prefix: string, robot: string) => `${prefix}:owner:${robot}`

/** The keys every lease script reads: epoch, grace, counter, placements. */
export const clusterKeys = (prefix: string) =>
  [`${prefix}:epoch`, `${prefix}:grace`, `${prefix}:counter`, `${prefix}:placed`] as const

/**
 * Acquires free leases. KEYS: epoch, grace, counter, placed, then one lease key per robot;
 * ARGV: node, ttl, then the robots. Answers `{'noepoch'}`, or the epoch followed by one entry
 * per robot: `{'ok', value, previous node}`, `{'ours', value}` (a lease of this node's that it
 * had not heard of, renewed), `{'held', value, pttl}`, `{'grace', '', pttl}`.
 */
export const acquireLua = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {'noepoch'} end
local grace = redis.call('PTTL', KEYS[2])
local mine = ARGV[1] .. '|'
local out = {epoch}
for i = 5, #KEYS do
  local robot = ARGV[i - 2]
  local cur = redis.call('GET', KEYS[i])
  if cur then
    if string.sub(cur, 1, #mine) == mine then
      redis.call('PEXPIRE', KEYS[i], ARGV[2])
      out[#out + 1] = {'ours', cur}
    else
      out[#out + 1] = {'held', cur, redis.call('PTTL', KEYS[i])}
    end
  elseif grace ~= -2 then
    out[#out + 1] = {'grace', '', grace}
  else
    local value = ARGV[1] .. '|' .. epoch .. '|' .. redis.call('INCR', KEYS[3])
    redis.call('SET', KEYS[i], value, 'NX', 'PX', ARGV[2])
    local previous = redis.call('HGET', KEYS[4], robot)
    redis.call('HSET', KEYS[4], robot, ARGV[1])
    out[#out + 1] = {'ok', value, previous or ''}
  end
end
return out
`

/**
 * Renews a node's leases. KEYS: epoch, grace, counter, placed, then one lease key per lease;
 * ARGV: node, ttl, then per lease its value, `1` when the node may re-write it, and the robot.
 * Answers `{'noepoch'}`, or the epoch followed by `ok`, `rw:<new value>` or `lost` per lease.
 */
export const renewLua = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {'noepoch'} end
local grace = redis.call('EXISTS', KEYS[2]) == 1
local out = {epoch}
for i = 5, #KEYS do
  local j = 3 + (i - 5) * 3
  local cur = redis.call('GET', KEYS[i])
  if cur == ARGV[j] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[#out + 1] = 'ok'
  elseif (not cur) and grace and ARGV[j + 1] == '1' then
    local value = ARGV[1] .. '|' .. epoch .. '|' .. redis.call('INCR', KEYS[3])
    redis.call('SET', KEYS[i], value, 'PX', ARGV[2])
    redis.call('HSET', KEYS[4], ARGV[j + 2], ARGV[1])
    out[#out + 1] = 'rw:' .. value
  else
    out[#out + 1] = 'lost'
  end
end
return out
`

/** Deletes leases whose value is still the given one. KEYS: lease keys; ARGV: their values. Answers how many. */
export const releaseLua = `
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i] then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
`

/**
 * Starts an epoch unless one was started for this Redis run. KEYS: epoch, grace; ARGV: the
 * greatest epoch the caller knows, the server's run_id, the grace period in ms. Answers
 * `{epoch, 1}` when it started one (with its grace), `{epoch, 0}` when it was there.
 */
export const epochLua = `
local cur = redis.call('HGET', KEYS[1], 'epoch')
if cur and redis.call('HGET', KEYS[1], 'run') == ARGV[2] then return {tonumber(cur), 0} end
local epoch = math.max(tonumber(cur or '0'), tonumber(ARGV[1])) + 1
redis.call('HSET', KEYS[1], 'epoch', epoch, 'run', ARGV[2])
redis.call('SET', KEYS[2], epoch, 'PX', ARGV[3])
return {epoch, 1}
`

const acquireScript = RedisConnection.script(acquireLua)
const renewScript = RedisConnection.script(renewLua)
const releaseScript = RedisConnection.script(releaseLua)
const epochScript = RedisConnection.script(epochLua)

/** Robots per acquire script, so that one call never holds Redis long. */
const batchSize = 500

interface Lease {
  readonly value: string
  readonly token: FencingToken.FencingToken
  /** This node's monotonic deadline (`performance.now()`), past which it no longer claims the robot. */
  until: number
  /** `Lost` was reported when the deadline passed; the lease is kept in case a late renewal restores it. */
  lapsed: boolean
}

/**
 * Takes part in ownership until the scope closes: starts (or finds) the epoch, then every poll
 * renews leases when due and acquires the robots this node wins. It fails only on settings that
 * cannot work; with Redis down it starts anyway and keeps trying.
 */
export const make = (options: Options): Effect.Effect<Ownership, InvalidSettings, Scope.Scope> =>
  Effect.gen(function*() {
    const { redis, membership } = options
    const node = membership.node
    const ttl = options.ttl ?? 5_000
    // Redis expires a key TTL after it received the request, later than it was sent: the margin
    // covers only clock-rate differences, so short TTLs keep most of their claim (TTL 1 s: 800 ms).
    const margin = options.margin ?? Math.min(500, Math.floor(ttl / 5))
    const pollInterval = options.pollInterval ?? 250
    // At most half the claim's length, so that a renewal late by a scheduling hiccup still comes
    // before the deadline (TTL 1 s, margin 500 ms: every 250 ms, not 333).
    const renewInterval = options.renewInterval ?? Math.max(1, Math.floor(Math.min(ttl / 3, (ttl - margin) / 2)))
    const fallbackAfter = options.fallbackAfter ?? 3 * ttl
    const settle = options.settle ?? 1_000
    if (!(margin >= 0 && margin < ttl && renewInterval > 0 && renewInterval < ttl - margin && pollInterval > 0)) {
      return yield* Effect.fail(
        new InvalidSettings({ reason: `need 0 ≤ margin < TTL and 0 < renew interval < TTL − margin (TTL ${ttl}, margin ${margin}, renew ${renewInterval})` })
      )
    }
    const prefix = options.prefix ?? Membership.defaultPrefix
    const remember = options.remember ?? inMemory()
    const keys = clusterKeys(prefix)
    const lock = yield* Effect.makeSemaphore(1)
    const hub = yield* Effect.acquireRelease(PubSub.unbounded<Change>(), PubSub.shutdown)

    const managed = new Set(options.robots ?? [])
    const held = new Map<string, Lease>()
    /** Robots another node held when last asked: whom, and when to ask again (monotonic ms). */
    const known = new Map<string, { readonly owner: string; readonly askAgainAt: number }>()
    let epoch = 0
    let closing = false
    let reconnected = false
    let nextRenewal = 0
    /**
     * Robots this node does not win that every probe found without an owner: since when
     * (monotonic ms). Forgotten when Redis fails, since a probe missed may have seen them owned.
     */
    const freeSince = new Map<string, number>()
    let nextProbe = 0
    /** When Redis last failed a command of this node's (monotonic ms). */
    let troubleAt = -Infinity
    let membershipErrors = membership.counts().redisErrors
    const counts = {
      acquisitions: 0,
      handovers: 0,
      renewals: 0,
      renewedLeases: 0,
      rewrites: 0,
      lost: 0,
      lapsed: 0,
      restored: 0,
      released: 0,
      graceRefusals: 0,
      epochsStarted: 0,
      redisErrors: 0
    }
    const onReady = () => void (reconnected = true)
    redis.on("ready", onReady)
    yield* Effect.addFinalizer(() => Effect.sync(() => redis.off("ready", onReady)))

    const counted = <A, R>(effect: Effect.Effect<A, RedisUnavailable, R>) =>
      Effect.tapError(effect, () =>
        Effect.sync(() => {
          counts.redisErrors++
          troubleAt = performance.now()
          freeSince.clear()
        }))
    const publish = (changes: Array<Change>) => changes.length === 0 ? Effect.void : PubSub.publishAll(hub, changes)
    const leaseOf = (value: string, until: number): Lease | undefined => {
      const parsed = FencingToken.parseLease(value)
      return parsed === undefined ? undefined : { value, token: parsed.token, until, lapsed: false }
    }
    const seeEpoch = (seen: number) =>
      seen > epoch ? Effect.zipRight(Effect.sync(() => void (epoch = seen)), remember.save(seen)) : Effect.void

    const ensureEpoch = counted(Effect.gen(function*() {
      const run = yield* RedisConnection.runId(redis)
      const greatest = Math.max(epoch, yield* remember.load)
      const [current, started] = (yield* RedisConnection.run(redis, "epoch", epochScript, [keys[0], keys[1]], [
        greatest,
        run,
        ttl
      ])) as [number, number]
      if (started === 1) counts.epochsStarted++
      yield* seeEpoch(current)
    }))

    /** Leases whose deadline passed so long ago that their keys have surely expired. */
    const dropStale = Effect.suspend(() => {
      const now = performance.now()
      const changes: Array<Change> = []
      for (const [robot, lease] of held) {
        if (now > lease.until + margin + ttl) {
          held.delete(robot)
          if (lease.lapsed) continue
          counts.lost++
          changes.push({ _tag: "Lost", robot })
        }
      }
      return publish(changes)
    })

    /**
     * Reports `Lost` for each lease whose deadline has passed, at that deadline: its robot's link
     * must stop when the claim ends, not when Redis answers (a paused node's timers fire first
     * thing when it wakes). The lease stays held, so that a renewal Redis still grants restores
     * it (`Acquired` again); a renewal that finds it gone reports nothing more.
     */
    const lapse = Effect.suspend(() => {
      const now = performance.now()
      const changes: Array<Change> = []
      for (const [robot, lease] of held) {
        if (lease.lapsed || now < lease.until) continue
        lease.lapsed = true
        counts.lost++
        counts.lapsed++
        changes.push({ _tag: "Lost", robot })
      }
      return publish(changes)
    })

    /** How long until the next deadline of a lease not yet lapsed, ms (at most `pollInterval`). */
    const untilNextDeadline = () => {
      let next = pollInterval
      const now = performance.now()
      for (const lease of held.values()) if (!lease.lapsed) next = Math.min(next, lease.until - now)
      return Math.max(0, next)
    }

    const renewOnce = Effect.gen(function*() {
      const leases = [...held]
      if (leases.length === 0) return "done" as const
      const sentAt = performance.now()
      const args: Array<string | number> = [node, ttl]
      for (const [robot, lease] of leases) args.push(lease.value, sentAt < lease.until ? "1" : "0", robot)
      const reply = (yield* RedisConnection.run(
        redis,
        "renew",
        renewScript,
        [...keys, ...leases.map(([robot]) => ownerKey(prefix, robot))],
        args
      )) as Array<string>
      if (reply[0] === "noepoch") return "noepoch" as const
      yield* seeEpoch(Number(reply[0]))
      counts.renewals++
      const changes: Array<Change> = []
      leases.forEach(([robot, lease], i) => {
        const status = reply[i + 1]
        if (held.get(robot) !== lease) return
        const until = sentAt + ttl - margin
        if (status === "ok") {
          lease.until = until
          counts.renewedLeases++
          if (lease.lapsed && performance.now() < until) {
            // Its deadline passed before this answer, but Redis renewed it in time: the robot is ours again.
            lease.lapsed = false
            counts.restored++
            changes.push({ _tag: "Acquired", robot, token: lease.token, previous: undefined })
          }
        } else if (status.startsWith("rw:")) {
          const next = leaseOf(status.slice(3), until)
          if (next === undefined) return
          held.set(robot, next)
          counts.rewrites++
          if (!lease.lapsed) changes.push({ _tag: "Rewritten", robot, token: next.token })
          else if (performance.now() < until) {
            counts.restored++
            changes.push({ _tag: "Acquired", robot, token: next.token, previous: undefined })
          } else next.lapsed = true
        } else {
          held.delete(robot)
          if (lease.lapsed) return
          counts.lost++
          changes.push({ _tag: "Lost", robot })
        }
      })
      yield* publish(changes)
      return "done" as const
    })

    const renew = counted(Effect.gen(function*() {
      if ((yield* renewOnce) === "noepoch") {
        yield* ensureEpoch
        yield* renewOnce
      }
    }))

    /** The live nodes that do not drain, when this node is one of them. */
    const placing = (): { readonly candidates: Array<string>; readonly liveOwners: Set<string> } | undefined => {
      if (closing || membership.isDraining() || managed.size === 0) return undefined
      const errors = membership.counts().redisErrors
      if (errors !== membershipErrors) {
        membershipErrors = errors
        troubleAt = performance.now()
        freeSince.clear()
      }
      if (performance.now() - troubleAt < settle) return undefined
      const live = membership.unsafeLive()
      const candidates: Array<string> = []
      const liveOwners = new Set<string>()
      for (const member of live) {
        if (member.draining) continue
        candidates.push(member.id)
        liveOwners.add(member.id)
      }
      return liveOwners.has(node) ? { candidates, liveOwners } : undefined
    }

    /**
     * The robots this node holds not and may find free: those it wins among the live nodes that
     * do not drain, and those the others left without an owner for `fallbackAfter`.
     */
    const due = (): Array<string> => {
      const nodes = placing()
      if (nodes === undefined) return []
      const { candidates, liveOwners } = nodes
      const now = performance.now()
      const found: Array<string> = []
      for (const robot of managed) {
        if (held.has(robot)) continue
        if (Rendezvous.ownerOf(robot, candidates) !== node) {
          const since = freeSince.get(robot)
          if (fallbackAfter > 0 && since !== undefined && now - since >= fallbackAfter) found.push(robot)
          continue
        }
        const other = known.get(robot)
        if (other !== undefined && liveOwners.has(other.owner) && now < other.askAgainAt) continue
        found.push(robot)
      }
      return found
    }

    const acquireOnce = (robots: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        const sentAt = performance.now()
        const reply = (yield* RedisConnection.run(
          redis,
          "acquire",
          acquireScript,
          [...keys, ...robots.map((robot) => ownerKey(prefix, robot))],
          [node, ttl, ...robots]
        )) as Array<string | [string, string, string | number]>
        if (reply[0] === "noepoch") return "noepoch" as const
        yield* seeEpoch(Number(reply[0]))
        const changes: Array<Change> = []
        robots.forEach((robot, i) => {
          const [status, value, extra] = reply[i + 1] as [string, string, string | number]
          if (status === "ok" || status === "ours") {
            const lease = leaseOf(value, sentAt + ttl - margin)
            if (lease === undefined) return
            held.set(robot, lease)
            known.delete(robot)
            freeSince.delete(robot)
            counts.acquisitions++
            const previous = status === "ok" && extra !== "" && extra !== node ? String(extra) : undefined
            if (previous !== undefined) counts.handovers++
            changes.push({ _tag: "Acquired", robot, token: lease.token, previous })
          } else if (status === "held") {
            const owner = FencingToken.parseLease(value)?.node ?? ""
            known.set(robot, { owner, askAgainAt: performance.now() + Math.max(0, Number(extra)) })
            freeSince.delete(robot)
          } else if (status === "grace") {
            counts.graceRefusals++
          }
        })
        yield* publish(changes)
        return "done" as const
      })

    const acquire = counted(Effect.gen(function*() {
      const robots = due()
      for (let i = 0; i < robots.length; i += batchSize) {
        const batch = robots.slice(i, i + batchSize)
        if ((yield* acquireOnce(batch)) === "noepoch") {
          yield* ensureEpoch
          yield* acquireOnce(batch)
        }
      }
    }))

    /** Notes which robots this node does not win are without an owner, and since when. */
    const probe = counted(Effect.gen(function*() {
      const nodes = placing()
      if (nodes === undefined) return
      const robots = [...managed].filter((robot) => !held.has(robot) && Rendezvous.ownerOf(robot, nodes.candidates) !== node)
      const probed = new Set(robots)
      for (const robot of freeSince.keys()) if (!probed.has(robot)) freeSince.delete(robot)
      if (robots.length === 0) return
      const seenAt = performance.now()
      const values = yield* RedisConnection.command("probe", () => redis.mget(robots.map((robot) => ownerKey(prefix, robot))))
      robots.forEach((robot, i) => {
        if (values[i] != null) freeSince.delete(robot)
        else if (!freeSince.has(robot)) freeSince.set(robot, seenAt)
      })
    }))

    const round = lock.withPermits(1)(Effect.gen(function*() {
      // First, whichever timer a woken node runs first: claims whose deadline passed are lost.
      yield* lapse
      if (reconnected) {
        // Until the new connection's run_id is checked, this node acquires nothing there (a
        // promoted replica may lack renewals its old master never passed on): tried every round.
        reconnected = false
        yield* Effect.catchAll(ensureEpoch, () => Effect.sync(() => void (reconnected = true)))
      }
      yield* dropStale
      if (performance.now() >= nextRenewal) {
        nextRenewal = performance.now() + renewInterval
        yield* Effect.catchAll(renew, () => Effect.sync(() => void (nextRenewal = 0)))
      }
      if (!reconnected) yield* Effect.ignore(acquire)
      if (fallbackAfter > 0 && performance.now() >= nextProbe) {
        nextProbe = performance.now() + fallbackAfter / 3
        yield* Effect.ignore(probe)
      }
    }))

    /** Stops claiming `robots` at once, then deletes their leases where they are still this node's. */
    const release = (robots: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        const leases: Array<[string, Lease]> = []
        for (const robot of robots) {
          const lease = held.get(robot)
          if (lease === undefined) continue
          held.delete(robot)
          leases.push([robot, lease])
        }
        if (leases.length === 0) return
        counts.released += leases.length
        yield* publish(leases.filter(([, lease]) => !lease.lapsed).map(([robot]) => ({ _tag: "Released", robot }) as const))
        yield* counted(RedisConnection.run(
          redis,
          "release",
          releaseScript,
          leases.map(([robot]) => ownerKey(prefix, robot)),
          leases.map(([, lease]) => lease.value)
        ))
      })

    reconnected = false
    yield* Effect.ignore(ensureEpoch)
    // Until the next poll, or the next renewal when it is due sooner: a claim must not end for
    // want of a round (a renewal that failed is retried at the next poll).
    const pause = Effect.suspend(() => {
      const now = performance.now()
      return Effect.sleep(nextRenewal > now ? Math.min(pollInterval, nextRenewal - now) : pollInterval)
    })
    const loop: Effect.Effect<never> = Effect.zipRight(
      Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.suspend(() => Effect.sleep(untilNextDeadline())), lapse))),
      Effect.forever(Effect.zipRight(round, pause))
    ).pipe(Effect.scoped)
    if (options.runLoop ?? true) yield* Effect.forkScoped(loop)
    if (options.releaseOnClose ?? true) {
      yield* Effect.addFinalizer(() =>
        lock.withPermits(1)(Effect.suspend(() => {
          closing = true
          return release([...held.keys()])
        })).pipe(Effect.timeout(ttl), Effect.ignore)
      )
    } else {
      yield* Effect.addFinalizer(() => Effect.sync(() => void (closing = true)))
    }

    const current = (robot: string) => {
      const lease = held.get(robot)
      return lease !== undefined && performance.now() < lease.until ? lease : undefined
    }

    return {
      node,
      owns: (robot) => current(robot) !== undefined,
      remaining: (robot) => {
        const lease = current(robot)
        return lease === undefined ? 0 : Math.max(0, lease.until - performance.now())
      },
      tokenOf: (robot) => current(robot)?.token,
      owned: () => [...held.keys()].filter((robot) => current(robot) !== undefined),
      epoch: () => epoch,
      owners: (robots) =>
        Effect.suspend(() => {
          const list = [...robots]
          if (list.length === 0) return Effect.succeed(new Map())
          return RedisConnection.command("owners", () => redis.mget(list.map((robot) => ownerKey(prefix, robot)))).pipe(
            Effect.map((values) => {
              const found = new Map<string, FencingToken.LeaseValue>()
              values.forEach((value, i) => {
                const lease = value == null ? undefined : FencingToken.parseLease(value)
                if (lease !== undefined) found.set(list[i], lease)
              })
              return found
            })
          )
        }),
      manage: (robots) => Effect.sync(() => {
        for (const robot of robots) managed.add(robot)
      }),
      unmanage: (robots) =>
        lock.withPermits(1)(Effect.suspend(() => {
          const list = [...robots]
          for (const robot of list) {
            managed.delete(robot)
            known.delete(robot)
          }
          return release(list)
        })),
      drain: lock.withPermits(1)(Effect.gen(function*() {
        const announced = yield* Effect.either(membership.drain)
        yield* release([...held.keys()])
        if (announced._tag === "Left") return yield* Effect.fail(announced.left)
      })),
      poll: round,
      loop,
      changes: Stream.fromPubSub(hub),
      counts: () => ({ ...counts })
    } satisfies Ownership
  })

/** A layer taking part in ownership over the cluster's connection and this node's membership. */
export const layer = (
  options: Omit<Options, "redis" | "membership">
): Layer.Layer<Ownership, InvalidSettings, RedisConnection.ClusterRedis | Membership.Membership> =>
  Layer.scoped(
    Ownership,
    Effect.gen(function*() {
      const redis = yield* RedisConnection.ClusterRedis
      const membership = yield* Membership.Membership
      return yield* make({ ...options, redis, membership })
    })
  )
