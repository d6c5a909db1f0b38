import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope, Stream } from "effect"
import * as Membership from "../../src/cluster/Membership.js"
import { connect, eventually, redisServer } from "./fixtures.js"

const ids = (membership: Membership.Membership) => membership.unsafeLive().map((m) => m.id)

describe("Membership", () => {
  it.scopedLive("nodes see each other, a drain is announced, a graceful leave and a crash both drop out", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const redis = yield* connect(server)
      const a = yield* Membership.make({ redis, node: "a", protocol: 3, ttl: 900, pollInterval: 50 })
      const views: Array<string> = []
      yield* Effect.forkScoped(Stream.runForEach(a.changes, (view) => Effect.sync(() => void views.push(view.map((m) => m.id + (m.draining ? "*" : "")).join()))))
      const bScope = yield* Scope.make()
      yield* Membership.make({ redis: yield* connect(server), node: "b", protocol: 4, ttl: 900, pollInterval: 50 }).pipe(Scope.extend(bScope))
      const cScope = yield* Scope.make()
      const c = yield* Membership.make({ redis: yield* connect(server), node: "c", protocol: 4, ttl: 900, pollInterval: 50, leaveOnClose: false })
        .pipe(Scope.extend(cScope))
      yield* eventually("a sees a, b, c", () => ids(a).join() === "a,b,c")
      expect(a.unsafeLive().map((m) => m.protocol)).toEqual([3, 4, 4])

      yield* c.drain
      expect(c.isDraining()).toBe(true)
      yield* eventually("a sees c draining", () => a.unsafeLive().find((m) => m.id === "c")?.draining === true, 1_000)

      yield* Scope.close(bScope, Exit.void)
      yield* eventually("b left at once", () => ids(a).join() === "a,c", 500)

      const crashed = Date.now()
      yield* Scope.close(cScope, Exit.void)
      yield* eventually("c expired", () => ids(a).join() === "a", 2_000)
      expect(Date.now() - crashed).toBeGreaterThan(200)
      expect(a.counts().changes).toBeGreaterThanOrEqual(4)
      expect(views.slice(views.indexOf("a,b,c"))).toEqual(["a,b,c", "a,b,c*", "a,c*", "a"])
    }))

  it.scopedLive("keeps its last view while Redis is down and joins again when it is back, empty", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const a = yield* Membership.make({ redis: yield* connect(server), node: "a", protocol: 1, ttl: 600, pollInterval: 50 })
      yield* Membership.make({ redis: yield* connect(server), node: "b", protocol: 1, ttl: 600, pollInterval: 50 })
      yield* eventually("both", () => ids(a).join() === "a,b")
      yield* Effect.promise(server.stop)
      yield* Effect.sleep(300)
      expect(ids(a).join()).toBe("a,b")
      expect(a.counts().redisErrors).toBeGreaterThan(0)
      yield* Effect.promise(server.start)
      yield* eventually("both again after Redis came back empty", () => ids(a).join() === "a,b", 3_000)
    }))

  it.scopedLive("announces the public URL a node has, and none for a node without", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const a = yield* Membership.make({ redis: yield* connect(server), node: "a", protocol: 1, ttl: 900, pollInterval: 50 })
      yield* Membership.make({
        redis: yield* connect(server),
        node: "b",
        protocol: 1,
        ttl: 900,
        pollInterval: 50,
        publicUrl: "https://fleet.plant.example/nodes/b"
      })
      yield* eventually("a sees b", () => ids(a).join() === "a,b")
      expect(a.unsafeLive().map((m) => [m.id, m.publicUrl])).toEqual([["a", undefined], ["b", "https://fleet.plant.example/nodes/b"]])
      expect("publicUrl" in a.unsafeLive()[0]).toBe(false)
    }))

  it.effect("refuses an id with a | in it", () =>
    Effect.gen(function*() {
      const failure = yield* Effect.flip(Effect.scoped(Membership.make({ redis: undefined as never, node: "a|b", protocol: 1 })))
      expect(failure._tag).toBe("InvalidNodeId")
    }))
})
