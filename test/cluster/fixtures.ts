/**
 * What the cluster's tests share: a Redis of the test's own for the length of its scope, a
 * connection to it, and waiting for a condition in real time.
 */
import { Duration, Effect, Exit, Scope } from "effect"
import * as Membership from "../../src/cluster/Membership.js"
import * as Ownership from "../../src/cluster/Ownership.js"
import * as RedisConnection from "../../src/cluster/RedisConnection.js"
import { type RedisServer, startRedis } from "../support/RedisServer.js"

/** A private `redis-server`, stopped when the scope closes. */
export const redisServer = Effect.acquireRelease(Effect.promise(startRedis), (server) => Effect.promise(server.stop))

/** A cluster connection to `server`, with a short command timeout. */
export const connect = (server: RedisServer) =>
  RedisConnection.connect(server.url, { commandTimeout: 300, connectWait: 2_000, maxReconnectDelay: 100 })

/** Polls `check` every 20 ms until it holds; dies with `what` after `timeout` ms. */
export const eventually = (what: string, check: () => boolean, timeout = 5_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeout
    while (!check()) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`not within ${timeout} ms: ${what}`)
      yield* Effect.sleep(Duration.millis(20))
    }
  })

/** The settings of the ownership tests: a 1 s TTL, so that every fail-over takes about a second. */
export const ttl = 1_000
export const margin = 300

/** A node of a test: its membership and ownership, in a scope of its own that the test may close. */
export interface TestNode {
  readonly id: string
  readonly membership: Membership.Membership
  readonly ownership: Ownership.Ownership
  readonly scope: Scope.CloseableScope
  /** Closes its scope; with `crash`, without releasing anything (the keys are left to expire). */
  readonly stop: Effect.Effect<void>
}

/** Starts a node on `server` that may run `robots`. */
export const startNode = (
  server: RedisServer,
  id: string,
  robots: ReadonlyArray<string>,
  options: { readonly crashOnStop?: boolean; readonly remember?: Ownership.EpochMemory; readonly fallbackAfter?: number } = {}
) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const leave = !(options.crashOnStop ?? false)
    const { membership, ownership } = yield* Effect.gen(function*() {
      const redis = yield* connect(server)
      const membership = yield* Effect.orDie(
        Membership.make({ redis, node: id, protocol: 1, ttl, pollInterval: 50, leaveOnClose: leave })
      )
      const ownership = yield* Ownership.make({
        redis,
        membership,
        robots,
        ttl,
        margin,
        pollInterval: 100,
        releaseOnClose: leave,
        ...(options.remember ? { remember: options.remember } : {}),
        ...(options.fallbackAfter !== undefined ? { fallbackAfter: options.fallbackAfter } : {})
      })
      return { membership, ownership }
    }).pipe(Scope.extend(scope))
    return { id, membership, ownership, scope, stop: Scope.close(scope, Exit.void) } satisfies TestNode
  })

/** Robot ids `robot-0` … */
export const robotIds = (n: number) => Array.from({ length: n }, (_, i) => `robot-${i}`)

/** Who claims `robot` now, by each node's own `owns`. */
export const claimants = (nodes: ReadonlyArray<TestNode>, robot: string) =>
  nodes.filter((node) => node.ownership.owns(robot)).map((node) => node.id)

/**
 * Samples every node's `owns` for every robot every 20 ms until the scope closes; returns the
 * moments two nodes claimed one robot (there must be none) and when each node first claimed each robot.
 */
export const watchClaims = (nodes: ReadonlyArray<TestNode>, robots: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const doubles: Array<string> = []
    const firstClaim = new Map<string, number>()
    let samples = 0
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(
      Effect.sync(() => {
        samples++
        const now = Date.now()
        for (const robot of robots) {
          const who = claimants(nodes, robot)
          if (who.length > 1) doubles.push(`${robot} by ${who.join(" and ")} at ${now}`)
          for (const id of who) if (!firstClaim.has(`${id}/${robot}`)) firstClaim.set(`${id}/${robot}`, now)
        }
      }),
      Effect.sleep(Duration.millis(20))
    )))
    return { doubles, firstClaim, samples: () => samples }
  })
