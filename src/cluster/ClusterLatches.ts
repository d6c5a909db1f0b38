/**
 * The emergency-stop latches shared by every node of a cluster: a latch set on any node reaches
 * every node, and so does the Reset that clears it. Each node keeps its own latch table and its
 * own copy on disk (SQLite); this module carries the changes between them.
 *
 * - **Keys**: the hash `{fleetvisor}:latches` (robot → `{"robot","kind","since","by"}`), and the
 *   pub/sub channel `{fleetvisor}:latches` on which each change is announced as it is written
 *   (`{"node","robot","row"}`, `row` null for a clear). The first latch of a robot is kept
 *   (`HSETNX`), as each node's table keeps it.
 * - **Never in the way**: telling a change ({@link ClusterLatches.latched},
 *   {@link ClusterLatches.cleared}) returns at once; the stop has gone out already. A change
 *   Redis did not take is kept (the latest per robot) and written again every second and when
 *   the connection is back.
 * - **Catching up**: whenever the command connection becomes ready (at start, after an outage,
 *   after Redis restarted empty), the node writes what it kept, writes every latch it holds
 *   again (`HSETNX`: Redis may have lost them), then reads the whole hash and adopts what it
 *   lacks. A Reset made while Redis was away can thus come back as a latch from a node that
 *   did not hear it: a latch is never lost, at worst it needs a second Reset.
 * - **Before commanding**: {@link ClusterLatches.refresh} reads one robot's latch; the node runs
 *   it when it acquires a robot, before the robot's link may start.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Redis } from "ioredis"
import type { InvalidSettings } from "./ClusterError.js"
import * as RedisConnection from "./RedisConnection.js"

/** One latched robot, as the cluster keeps it. */
export interface LatchRecord {
  readonly robot: string
  readonly kind: "arm" | "agv"
  /** When the stop latched it, epoch ms. */
  readonly since: number
  readonly by: string
}

/** This node's latch table, as this module sees it. */
export interface LocalLatches {
  /** Every latch of this node. */
  readonly all: () => ReadonlyArray<LatchRecord>
  /** A latch set (`row`) or cleared (`undefined`) on another node. */
  readonly remote: (robot: string, row: LatchRecord | undefined) => void
}

/** What {@link make} needs. */
export interface ClusterLatchesOptions {
  /** The node's command connection (its `ready` events start a catch-up). */
  readonly redis: Redis
  /** Where a subscribing connection of this module's own connects (as `RedisConnection.connect`). */
  readonly url: RedisConnection.Target
  readonly node: string
  /** The key prefix, a Redis Cluster hash tag; default `{fleetvisor}`. */
  readonly prefix?: string | undefined
}

/** Plain counts, for metrics and tests. */
export interface Counts {
  /** Changes of this node written to Redis. */
  readonly published: number
  /** Changes of other nodes heard and applied here. */
  readonly applied: number
  /** Catch-ups done (reads of the whole hash). */
  readonly catchUps: number
  /** Changes waiting for Redis. */
  readonly pending: number
  readonly redisErrors: number
}

/** The cluster-wide latches; see the module documentation. */
export interface ClusterLatches {
  /** A latch set on this node (told at once; written when Redis takes it). */
  readonly latched: (row: LatchRecord) => void
  /** A latch cleared on this node by a Reset. */
  readonly cleared: (robot: string) => void
  /** Tells `local` the other nodes' latches from now on; resolves after a first catch-up (at most a second). */
  readonly attach: (local: LocalLatches) => Effect.Effect<void>
  /** Reads `robot`'s latch from Redis and tells the local table (at most a second; nothing on failure). */
  readonly refresh: (robot: string) => Effect.Effect<void>
  readonly counts: () => Counts
}

const decode = (text: string | null | undefined): LatchRecord | undefined => {
  if (text === null || text === undefined) return undefined
  try {
    const row = JSON.parse(text) as Partial<LatchRecord>
    return typeof row.robot === "string" && (row.kind === "arm" || row.kind === "agv") && typeof row.since === "number" &&
        typeof row.by === "string"
      ? { robot: row.robot, kind: row.kind, since: row.since, by: row.by }
      : undefined
  } catch {
    return undefined
  }
}

/** The cluster's latches over `redis`, until the scope closes. */
export const make = (options: ClusterLatchesOptions): Effect.Effect<ClusterLatches, InvalidSettings, Scope.Scope> =>
  Effect.gen(function*() {
    const prefix = options.prefix ?? "{fleetvisor}"
    const key = `${prefix}:latches`
    const channel = `${prefix}:latches`
    const { node, redis } = options
    const counts = { published: 0, applied: 0, catchUps: 0, redisErrors: 0 }
    /** Changes Redis has not taken yet: the latest per robot (`undefined`: a clear). */
    const pending = new Map<string, LatchRecord | undefined>()
    let local: LocalLatches | undefined

    const write = async (robot: string, row: LatchRecord | undefined) => {
      const announce = JSON.stringify({ node, robot, row: row ?? null })
      const multi = redis.multi()
      if (row === undefined) multi.hdel(key, robot)
      else multi.hsetnx(key, robot, JSON.stringify(row))
      await multi.publish(channel, announce).exec()
      counts.published++
    }

    const tell = (robot: string, row: LatchRecord | undefined) => {
      pending.delete(robot)
      write(robot, row).catch(() => {
        counts.redisErrors++
        if (!pending.has(robot)) pending.set(robot, row)
      })
    }

    const apply = (robot: string, row: LatchRecord | undefined) => {
      if (local === undefined) return
      counts.applied++
      local.remote(robot, row)
    }

    let catchingUp: Promise<void> | undefined
    const catchUp = (): Promise<void> => {
      catchingUp ??= (async () => {
        try {
          for (const [robot, row] of [...pending]) {
            await write(robot, row)
            if (pending.get(robot) === row) pending.delete(robot)
          }
          const mine = local?.all() ?? []
          if (mine.length > 0) {
            const multi = redis.multi()
            for (const row of mine) multi.hsetnx(key, row.robot, JSON.stringify(row))
            await multi.exec()
          }
          const all = await redis.hgetall(key)
          counts.catchUps++
          for (const [robot, text] of Object.entries(all)) {
            const row = decode(text)
            if (row !== undefined) apply(robot, row)
          }
        } catch {
          counts.redisErrors++
        } finally {
          catchingUp = undefined
        }
      })()
      return catchingUp
    }

    const subscriber = yield* RedisConnection.connect(options.url, { connectWait: 0 })
    subscriber.on("message", (_: string, text: string) => {
      try {
        const message = JSON.parse(text) as { node?: string; robot?: string; row?: unknown }
        if (message.node === node || typeof message.robot !== "string") return
        const row = message.row === null ? undefined : decode(JSON.stringify(message.row))
        if (message.row !== null && row === undefined) return
        apply(message.robot, row)
      } catch {
        // Not ours: ignored.
      }
    })
    const subscribe = () => void subscriber.subscribe(channel).catch(() => counts.redisErrors++)
    subscriber.on("ready", subscribe)
    if (subscriber.status === "ready") subscribe()
    const onReady = () => void catchUp()
    redis.on("ready", onReady)
    const retry = setInterval(() => {
      if (pending.size > 0 && redis.status === "ready") void catchUp()
    }, 1_000)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        clearInterval(retry)
        redis.off("ready", onReady)
        local = undefined
      })
    )

    return {
      latched: (row) => tell(row.robot, row),
      cleared: (robot) => tell(robot, undefined),
      attach: (table) =>
        Effect.suspend(() => {
          local = table
          return Effect.promise(catchUp).pipe(Effect.timeout("1 second"), Effect.ignore)
        }),
      refresh: (robot) =>
        RedisConnection.command("hget", () => redis.hget(key, robot)).pipe(
          Effect.tap((text) =>
            Effect.sync(() => {
              const row = decode(text)
              if (row !== undefined) apply(robot, row)
            })
          ),
          Effect.timeout("1 second"),
          Effect.ignore
        ),
      counts: () => ({ ...counts, pending: pending.size })
    } satisfies ClusterLatches
  })
