/**
 * Control leases in Redis (issue #16): sessions on two nodes ask for the same robot and only one
 * gets it; the same session renews and releases it, another cannot; a node that dies has its
 * leases swept by the live ones; and a Redis restarted empty gets each node's leases again.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as ControlLeases from "../../src/cluster/ControlLeases.js"
import * as Membership from "../../src/cluster/Membership.js"
import { connect, eventually, redisServer } from "./fixtures.js"

const alice = { session: "s1", user: "alice" }
const bob = { session: "s1", user: "bob" }

describe("ControlLeases", () => {
  it.scopedLive("one session of one node holds a robot; it renews and releases it, nobody else can", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const a = yield* ControlLeases.make({ redis: yield* connect(server), node: "a" })
      const b = yield* ControlLeases.make({ redis: yield* connect(server), node: "b" })

      expect(yield* a.acquire("arm-1", alice, 5_000)).toEqual({ _tag: "Granted" })
      // Bob's session has the same id on another node: it is another session.
      expect(yield* b.acquire("arm-1", bob, 5_000)).toEqual({ _tag: "Held", node: "a", user: "alice" })
      expect(yield* a.acquire("arm-1", alice, 5_000)).toEqual({ _tag: "Granted" })
      expect(yield* a.acquire("arm-1", { session: "s2", user: "carol" }, 5_000)).toMatchObject({ _tag: "Held", user: "alice" })

      expect(yield* b.renew("arm-1", "s1", 5_000)).toBe(false)
      expect(yield* a.renew("arm-1", "s1", 5_000)).toBe(true)
      yield* b.release("arm-1", "s1")
      expect(yield* a.holderOf("arm-1")).toEqual({ node: "a", session: "s1", user: "alice" })
      yield* a.release("arm-1", "s1")
      expect(yield* a.holderOf("arm-1")).toBeUndefined()
      expect(yield* b.acquire("arm-1", bob, 5_000)).toEqual({ _tag: "Granted" })

      // A lease nobody renews ends by itself.
      expect(yield* a.acquire("agv/1", alice, 200)).toEqual({ _tag: "Granted" })
      yield* Effect.sleep("300 millis")
      expect(yield* b.acquire("agv/1", bob, 5_000)).toEqual({ _tag: "Granted" })
      expect(a.counts()).toMatchObject({ granted: 3, held: 1, renewed: 1, released: 1 })
    }))

  it.scopedLive("a node that dies has its leases swept by a live node, not the ones it lost already", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const membershipA = yield* Membership.make({ redis: yield* connect(server), node: "a", protocol: 1, ttl: 600, pollInterval: 50 })
      const a = yield* ControlLeases.make({ redis: yield* connect(server), node: "a", membership: membershipA })
      const bScope = yield* Scope.make()
      const b = yield* Effect.gen(function*() {
        const redis = yield* connect(server)
        yield* Membership.make({ redis, node: "b", protocol: 1, ttl: 600, pollInterval: 50, leaveOnClose: false })
        return yield* ControlLeases.make({ redis, node: "b" })
      }).pipe(Scope.extend(bScope))
      yield* eventually("a sees b", () => membershipA.unsafeLive().length === 2)

      expect(yield* b.acquire("arm-1", bob, 60_000)).toEqual({ _tag: "Granted" })
      expect(yield* b.acquire("arm-2", bob, 60_000)).toEqual({ _tag: "Granted" })
      yield* b.release("arm-2", "s1")
      expect(yield* a.acquire("arm-2", alice, 60_000)).toEqual({ _tag: "Granted" })

      // b dies (its heartbeat left to expire): a sweeps what b held, and keeps its own.
      yield* Scope.close(bScope, Exit.void)
      yield* eventually("b's lease swept", () => a.counts().swept === 1, 3_000)
      expect(yield* a.holderOf("arm-1")).toBeUndefined()
      expect(yield* a.holderOf("arm-2")).toMatchObject({ node: "a", user: "alice" })
    }))

  it.scopedLive("a Redis restarted empty gets each node's leases again, with what is left of them", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const a = yield* ControlLeases.make({ redis: yield* connect(server), node: "a" })
      const b = yield* ControlLeases.make({ redis: yield* connect(server), node: "b" })
      const until = Date.now() + 60_000
      yield* a.attach({
        all: () => [
          { robot: "arm-1", holder: alice, remainingMs: until - Date.now() },
          { robot: "arm-2", holder: alice, remainingMs: 0 }
        ],
        lost: () => {}
      })
      expect(yield* a.acquire("arm-1", alice, 60_000)).toEqual({ _tag: "Granted" })

      yield* Effect.promise(() => server.restart())
      yield* eventually("a's lease written again", () => a.counts().rewritten === 1, 5_000)
      expect(yield* a.holderOf("arm-1")).toEqual({ node: "a", session: "s1", user: "alice" })
      // One that had ended is not written again.
      expect(yield* a.holderOf("arm-2")).toBeUndefined()
      expect(yield* b.acquire("arm-1", bob, 5_000)).toMatchObject({ _tag: "Held", user: "alice" })
    }))
})
