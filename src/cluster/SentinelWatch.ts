/**
 * Makes a connection found through Sentinel leave its master the moment the Sentinels switch to
 * another one. A killed master closes its connections by itself, but a master that stays up
 * through a failover (a planned `SENTINEL FAILOVER`, a partition that heals) keeps accepting
 * writes until the Sentinels demote it, seconds later, and those writes are lost: a node renewing
 * its leases there would keep claiming robots whose keys expire on the new master. So each
 * connection listens to `+switch-master` on every Sentinel and reconnects (asking the Sentinels
 * for the master again) when its master group switches.
 *
 * ioredis's own `failoverDetector` does the same but leaves its Sentinel connections without an
 * error listener, so a Sentinel that is down would print an error every second.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import type * as RedisAddress from "./RedisAddress.js"

/** The Sentinels' channel announcing a new master: `<name> <old ip> <old port> <new ip> <new port>`. */
export const switchChannel = "+switch-master"

/**
 * Until the scope closes, reconnects `redis` whenever the master group of `address` switches to
 * a master it is not connected to (and calls `onSwitch`, for counting). Never fails; Sentinels
 * that are down are retried every second.
 */
export const follow = (
  address: RedisAddress.Sentinel,
  redis: Redis,
  onSwitch: () => void = () => {}
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    /** The master announced while the connection was not up: checked when it is. */
    let pending: { readonly host: string; readonly port: number } | undefined
    const elsewhere = (master: { readonly host: string; readonly port: number }) =>
      redis.stream?.remoteAddress !== master.host || redis.stream?.remotePort !== master.port
    const leave = () => {
      // Closes the connection and opens it again through the Sentinels: the new master. Only a
      // connection that is up: one being opened would end for good (ioredis), and asks the
      // Sentinels anyway.
      if (redis.status === "ready" || redis.status === "connect") redis.disconnect(true)
    }
    const onReady = () => {
      if (pending === undefined) return
      const master = pending
      pending = undefined
      if (elsewhere(master)) leave()
    }
    redis.on("ready", onReady)
    yield* Effect.addFinalizer(() => Effect.sync(() => redis.off("ready", onReady)))
    const announced = (message: string) => {
      const [name, , , host, port] = message.split(" ")
      if (name !== address.name || host === undefined) return
      onSwitch()
      const master = { host, port: Number(port) }
      if (redis.status === "ready" || redis.status === "connect") {
        if (elsewhere(master)) leave()
      } else if (redis.status !== "end") {
        pending = master
      }
    }
    yield* Effect.forEach(address.sentinels, (sentinel) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const watcher = new Redis({
            host: sentinel.host,
            port: sentinel.port,
            ...(address.sentinelUsername === undefined ? {} : { username: address.sentinelUsername }),
            ...(address.sentinelPassword === undefined ? {} : { password: address.sentinelPassword }),
            ...(address.tls ? { tls: {} } : {}),
            connectionName: "fleetvisor-sentinel-watch",
            enableReadyCheck: false,
            maxRetriesPerRequest: null,
            retryStrategy: (times) => Math.min(100 * times, 1_000)
          })
          watcher.on("error", () => {})
          watcher.on("message", (channel: string, message: string) => {
            if (channel === switchChannel) announced(message)
          })
          void watcher.subscribe(switchChannel).catch(() => {})
          return watcher
        }),
        (watcher) => Effect.sync(() => watcher.disconnect())
      ), { discard: true })
  })
