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
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { RedisUnavailable } from "./ClusterError.js"

/** How a cluster connection behaves. */
export interface ConnectOptions {
  /** A command not answered within this fails with `RedisUnavailable`, ms (default 1,000). */
  readonly commandTimeout?: number
  /** How long `connect` waits for the first connection before going on without it, ms (default 2,000). */
  readonly connectWait?: number
  /** The longest pause between reconnection attempts, ms (default 500). */
  readonly maxReconnectDelay?: number
}

/**
 * A connection to `url`, closed with its scope. It does not fail when Redis is down: it keeps
 * reconnecting, and each command fails with `RedisUnavailable` until Redis answers.
 */
export const connect = (url: string, options: ConnectOptions = {}): Effect.Effect<Redis, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const maxDelay = options.maxReconnectDelay ?? 500
      const redis = new Redis(url, {
        lazyConnect: true,
        enableOfflineQueue: false,
        autoResendUnfulfilledCommands: false,
        maxRetriesPerRequest: 0,
        commandTimeout: options.commandTimeout ?? 1_000,
        connectTimeout: 2_000,
        retryStrategy: (times) => Math.min(50 * times, maxDelay)
      })
      redis.on("error", () => {})
      const ready = redis.connect().catch(() => {})
      await Promise.race([ready, new Promise((resolve) => setTimeout(resolve, options.connectWait ?? 2_000))])
      return redis
    }),
    (redis) => Effect.sync(() => redis.disconnect())
  )

/** The cluster's Redis connection as a service. */
export const ClusterRedis: Context.Tag<ClusterRedis, Redis> = Context.GenericTag<ClusterRedis, Redis>("fleetvisor/cluster/ClusterRedis")

/** The key of {@link ClusterRedis}. */
export interface ClusterRedis {
  readonly _: unique symbol
}

/** A layer connecting to `url` (see {@link connect}) for the lifetime of the layer. */
export const layer = (url: string, options?: ConnectOptions): Layer.Layer<ClusterRedis> =>
  Layer.scoped(ClusterRedis, connect(url, options))

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
