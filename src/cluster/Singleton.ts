/**
 * A singleton of the cluster (the canvas's board): one thing held by exactly one live node at a
 * time, exactly as a robot is ({@link Ownership}): a Redis lease with a fencing token, placed by
 * rendezvous over the live nodes that do not drain, sticky, renewed every third of the TTL, and
 * claimed only until the holder's own monotonic deadline (request time + TTL − margin).
 *
 * Each singleton is an ownership of its own over one name, under the key prefix
 * `<prefix>:singleton` (the same `{fleetvisor}` hash tag), so its epoch, counter and leases never
 * mix with the robots': the robots' placement, counts and changes do not list it.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Redis } from "ioredis"
import type { InvalidSettings, RedisUnavailable } from "./ClusterError.js"
import type * as FencingToken from "./FencingToken.js"
import * as Membership from "./Membership.js"
import * as Ownership from "./Ownership.js"

/** How a node takes part in holding a singleton. */
export interface Options {
  readonly redis: Redis
  readonly membership: Membership.Membership
  /** The singleton's name, its lease's key `<prefix>:singleton:owner:<name>`. */
  readonly name: string
  /** The lease's TTL, ms (default 5,000). */
  readonly ttl?: number
  /** How long before TTL after a request the holder stops claiming, ms (default 500). */
  readonly margin?: number
  /** The cluster's key prefix with its hash tag (default `{fleetvisor}`). */
  readonly prefix?: string
}

/** This node's part in a singleton. */
export interface Singleton {
  readonly name: string
  /** Whether this node holds it now, by its own deadline. */
  readonly owns: () => boolean
  /** The lease's fencing token while this node holds it. */
  readonly token: () => FencingToken.FencingToken | undefined
  /** Calls `listener` with `true` when this node is given it and `false` when it loses or releases it; returns what stops the calls. */
  readonly watch: (listener: (owned: boolean) => void) => () => void
  /** Gives it up (a drain): stops claiming at once and deletes the lease while it is still this node's. */
  readonly release: Effect.Effect<void, RedisUnavailable>
  /** Who holds it now, read from Redis. */
  readonly holder: Effect.Effect<FencingToken.LeaseValue | undefined, RedisUnavailable>
  /** The ownership's counters (acquisitions, handovers, renewals, losses). */
  readonly counts: () => Ownership.Counts
}

/** Takes part in holding the singleton `name` until the scope closes (then releases it if held). */
export const make = (options: Options): Effect.Effect<Singleton, InvalidSettings, Scope.Scope> =>
  Effect.gen(function*() {
    const { name } = options
    const ownership = yield* Ownership.make({
      redis: options.redis,
      membership: options.membership,
      robots: [name],
      ttl: options.ttl,
      margin: options.margin,
      prefix: `${options.prefix ?? Membership.defaultPrefix}:singleton`
    })
    const listeners = new Set<(owned: boolean) => void>()
    yield* Effect.forkScoped(Stream.runForEach(ownership.changes, (change) =>
      Effect.sync(() => {
        if (change._tag === "Rewritten") return
        for (const listener of listeners) listener(change._tag === "Acquired")
      })))
    yield* Effect.yieldNow()
    return {
      name,
      owns: () => ownership.owns(name),
      token: () => ownership.tokenOf(name),
      watch: (listener) => {
        listeners.add(listener)
        return () => void listeners.delete(listener)
      },
      release: Effect.zipRight(ownership.unmanage([name]), ownership.manage([name])),
      holder: Effect.map(ownership.owners([name]), (owners) => owners.get(name)),
      counts: ownership.counts
    } satisfies Singleton
  })
