/**
 * A singleton (the canvas's board) on a Redis of the test's own, three nodes (TTL 1 s, margin
 * 300 ms): exactly one node claims it at every sample, under its own key beside a robot of the
 * same name (which the robots' ownership holds apart), its holder is told, and a drain hands it to
 * another node with a newer fencing token.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as FencingToken from "../../src/cluster/FencingToken.js"
import * as Singleton from "../../src/cluster/Singleton.js"
import { connect, eventually, margin, redisServer, startNode, ttl } from "./fixtures.js"

describe("Singleton", () => {
  it.live("one holder at a time, apart from the robots' leases; a drain hands it on with a newer token", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* redisServer
      const nodes = yield* Effect.forEach(["n1", "n2", "n3"], (id) =>
        Effect.gen(function*() {
          // The robots' ownership of this node runs a robot named like the singleton.
          const node = yield* startNode(server, id, ["canvas"])
          const redis = yield* connect(server)
          const singleton = yield* Singleton.make({ redis, membership: node.membership, name: "canvas", ttl, margin })
          const told: Array<boolean> = []
          singleton.watch((owned) => told.push(owned))
          return { id, node, singleton, told }
        }))
      const holders = () => nodes.filter((n) => n.singleton.owns())
      yield* eventually("a holder of the singleton", () => holders().length === 1, 5_000)
      for (let i = 0; i < 50; i++) {
        expect(holders().length).toBe(1)
        yield* Effect.sleep(Duration.millis(20))
      }
      const [first] = holders()
      expect(first.told).toEqual([true])
      const token = first.singleton.token()!
      expect(token).toBeDefined()
      const holder = yield* Effect.orDie(first.singleton.holder)
      expect(holder?.node).toBe(first.id)

      // Its lease is its own key; the robot of the same name is held through the robots' keys.
      const redis = yield* connect(server)
      expect(FencingToken.parseLease((yield* Effect.promise(() => redis.get("{fleetvisor}:singleton:owner:canvas")))!)?.node)
        .toBe(first.id)
      yield* eventually("the robot named canvas held too", () => nodes.some((n) => n.node.ownership.owns("canvas")), 5_000)
      const robotLease = FencingToken.parseLease((yield* Effect.promise(() => redis.get("{fleetvisor}:owner:canvas")))!)
      expect(nodes.find((n) => n.node.ownership.owns("canvas"))?.id).toBe(robotLease?.node)
      expect(yield* Effect.promise(() => redis.exists("{fleetvisor}:singleton:epoch", "{fleetvisor}:epoch"))).toBe(2)

      // A drain (as the service's: the robots', then the singleton's release) hands it to another
      // node, with a newer token.
      yield* Effect.orDie(first.node.ownership.drain)
      yield* Effect.orDie(first.singleton.release)
      expect(first.singleton.owns()).toBe(false)
      expect(first.told).toEqual([true, false])
      yield* eventually("another holder", () => holders().length === 1 && holders()[0] !== first, 5_000)
      const [next] = holders()
      expect(FencingToken.isNewer(next.singleton.token()!, token)).toBe(true)
      expect(next.told).toEqual([true])
    })), 30_000)
})
