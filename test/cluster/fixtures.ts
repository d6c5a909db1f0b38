/**
 * What the cluster's tests share: a Redis of the test's own for the length of its scope, a
 * connection to it, and waiting for a condition in real time.
 */
import { Duration, Effect } from "effect"
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
