/**
 * A Redis connection for the cluster's own commands, and the Lua scripts they run.
 *
 * The connection fails fast rather than queueing: while Redis is unreachable a command fails at
 * once (no offline queue), a command Redis does not answer fails after `commandTimeout`, and
 * nothing is re-sent after a reconnect. Leases are kept by their owner's own deadline, so a
 * late or lost answer only delays; a command that would run seconds later would be a surprise.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { Redis, RedisOptions } from "ioredis"
import { type InvalidSettings, RedisUnavailable } from "./ClusterError.js"
import * as RedisAddress from "./RedisAddress.js"
import * as SentinelWatch from "./SentinelWatch.js"

/** How a cluster connection behaves. */
export interface ConnectOptions {
  /** A command not answered within this fails with `RedisUnavailable`, ms (default 1,000). */
  readonly commandTimeout?: number
  /** How long `connect` waits for the first connection before going on without it, ms (default 2,000). */
  readonly connectWait?: number
  /** The longest pause between reconnection attempts, ms (default 500). */
  readonly maxReconnectDelay?: number
}

/** Where to connect: a parsed address, or a `REDIS_URL` read with {@link RedisAddress.parse}. */
export type Target = RedisAddress.RedisAddress | string

/** The address of `target`; a URL that cannot work fails with `InvalidSettings`. */
export const address = (target: Target): Effect.Effect<RedisAddress.RedisAddress, InvalidSettings> =>
  typeof target === "string" ? Either.match(RedisAddress.parse(target), { onLeft: Effect.fail, onRight: Effect.succeed }) : Effect.succeed(target)

/**
 * An ioredis client for `address` with the caller's connection `options`, closed with the scope;
 * through Sentinel it also leaves its master as soon as the Sentinels switch to another
 * ({@link SentinelWatch.follow}). Every connection of the cluster is made here.
 */
export const open = (address: RedisAddress.RedisAddress, options: RedisOptions): Effect.Effect<Redis, never, Scope.Scope> =>
  Effect.gen(function*() {
    const redis = yield* Effect.acquireRelease(
      Effect.sync(() => RedisAddress.open(address, options).on("error", () => {})),
      (redis) => Effect.sync(() => redis.disconnect())
    )
    if (address._tag === "Sentinel") yield* SentinelWatch.follow(address, redis)
    return redis
  })

/**
 * A connection to `target` (one Redis, or the master its Sentinels name), closed with its scope.
 * It does not fail when Redis is down: it keeps reconnecting (through Sentinel, to whichever
 * master the Sentinels name then), and each command fails with `RedisUnavailable` until Redis
 * answers.
 */
export const connect = (target: Target, options: ConnectOptions = {}): Effect.Effect<Redis, InvalidSettings, Scope.Scope> =>
  Effect.gen(function*() {
    const maxDelay = options.maxReconnectDelay ?? 500
    const redis = yield* open(yield* address(target), {
      lazyConnect: true,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeout ?? 1_000,
      connectTimeout: 2_000,
      retryStrategy: (times) => Math.min(50 * times, maxDelay)
    })
    yield* Effect.promise(async () => {
      const ready = redis.connect().catch(() => {})
      await Promise.race([ready, new Promise((resolve) => setTimeout(resolve, options.connectWait ?? 2_000))])
    })
    return redis
  })

/** The cluster's Redis connection as a service. */
export const ClusterRedis: Context.Tag<ClusterRedis, Redis> = Context.GenericTag<ClusterRedis, Redis>("fleetvisor/cluster/ClusterRedis")

/** The key of {@link ClusterRedis}. */
export interface ClusterRedis {
  readonly _: unique symbol
}

/** A layer connecting to `target` (see {@link connect}) for the lifetime of the layer. */
export const layer = (target: Target, options?: ConnectOptions): Layer.Layer<ClusterRedis, InvalidSettings> =>
  Layer.scoped(ClusterRedis, connect(target, options))

/** A Lua script, sent by its SHA-1 and loaded again when Redis lost it (`NOSCRIPT`). */
export interface Script {
  readonly lua: string
  readonly sha: string
}

/** A script of this Lua source. */
export const script = (lua: string): Script => ({ lua, sha: createHash("sha1").update(lua).digest("hex") })

/** Runs `script` with `keys` and `args`; any failure is `RedisUnavailable` for `operation`. */
export const run = (
  redis: Redis,
  operation: string,
  script: Script,
  keys: ReadonlyArray<string>,
  args: ReadonlyArray<string | number>
): Effect.Effect<unknown, RedisUnavailable> =>
  Effect.tryPromise({
    try: async () => {
      try {
        return await redis.evalsha(script.sha, keys.length, ...keys, ...args)
      } catch (error) {
        if (error instanceof Error && error.message.startsWith("NOSCRIPT")) {
          return await redis.eval(script.lua, keys.length, ...keys, ...args)
        }
        throw error
      }
    },
    catch: (error) => unavailable(operation, error)
  })

/** Runs a promise of a Redis command; any failure is `RedisUnavailable` for `operation`. */
export const command = <A>(operation: string, send: () => Promise<A>): Effect.Effect<A, RedisUnavailable> =>
  Effect.tryPromise({ try: send, catch: (error) => unavailable(operation, error) })

const unavailable = (operation: string, error: unknown) =>
  new RedisUnavailable({ operation, reason: error instanceof Error ? error.message : String(error) })

/** The `run_id` of the Redis server behind `redis`: a new one after every restart. */
export const runId = (redis: Redis): Effect.Effect<string, RedisUnavailable> =>
  Effect.map(command("info", () => redis.info("server")), (info) => /run_id:(\w+)/.exec(info)?.[1] ?? "")
