/**
 * The lease scripts alone, against a Redis of the test's own: each refusal path, and the
 * fencing token's order.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as FencingToken from "../../src/cluster/FencingToken.js"
import * as Ownership from "../../src/cluster/Ownership.js"
import * as RedisConnection from "../../src/cluster/RedisConnection.js"
import { connect, redisServer } from "./fixtures.js"

const prefix = "{t}"
const keys = Ownership.clusterKeys(prefix)
const [epochKey, graceKey, counterKey, placedKey] = keys
const owner = (robot: string) => Ownership.ownerKey(prefix, robot)
const acquire = RedisConnection.script(Ownership.acquireLua)
const renew = RedisConnection.script(Ownership.renewLua)
const release = RedisConnection.script(Ownership.releaseLua)
const epoch = RedisConnection.script(Ownership.epochLua)

describe("FencingToken", () => {
  it("orders by epoch, then counter", () => {
    const t = (epoch: number, counter: number) => ({ epoch, counter })
    expect(FencingToken.compare(t(1, 5), t(1, 5))).toBe(0)
    expect(FencingToken.isNewer(t(1, 6), t(1, 5))).toBe(true)
    expect(FencingToken.isNewer(t(2, 1), t(1, 900))).toBe(true)
    expect(FencingToken.isNewer(t(1, 900), t(2, 1))).toBe(false)
    expect(FencingToken.isNewer(t(1, 5), t(1, 5))).toBe(false)
    expect([t(2, 1), t(1, 9), t(1, 10)].sort(FencingToken.compare).map(FencingToken.format)).toEqual(["1.9", "1.10", "2.1"])
  })

  it("reads a lease's value back, and refuses what is not one", () => {
    expect(FencingToken.parseLease("n1|3|42")).toEqual({ node: "n1", token: { epoch: 3, counter: 42 } })
    for (const bad of ["n1|3", "|3|4", "n1|x|4", "a|b|3|4", ""]) expect(FencingToken.parseLease(bad)).toBeUndefined()
  })
})

describe("lease scripts", () => {
  it.scopedLive("acquire: no epoch, grace, held by another, ours again, and a grant with its previous owner", () =>
    Effect.gen(function*() {
      const redis = yield* connect(yield* redisServer)
      const run = (node: string, robots: Array<string>) =>
        RedisConnection.run(redis, "acquire", acquire, [...keys, ...robots.map(owner)], [node, 1_000, ...robots])

      expect(yield* run("a", ["r1"])).toEqual(["noepoch"])
      expect(yield* Effect.promise(() => redis.exists(owner("r1")))).toBe(0)

      expect(yield* RedisConnection.run(redis, "epoch", epoch, [epochKey, graceKey], [4, "run-1", 500])).toEqual([5, 1])
      const [, refused] = (yield* run("a", ["r1"])) as [string, [string, string, number]]
      expect(refused[0]).toBe("grace")
      expect(refused[2]).toBeGreaterThan(0)
      expect(yield* Effect.promise(() => redis.exists(owner("r1")))).toBe(0)

      yield* Effect.promise(() => redis.del(graceKey))
      const granted = (yield* run("a", ["r1", "r2"])) as [string, ...Array<[string, string, string]>]
      expect(granted).toEqual(["5", ["ok", "a|5|1", ""], ["ok", "a|5|2", ""]])
      expect(yield* Effect.promise(() => redis.pttl(owner("r1")))).toBeGreaterThan(900)

      const taken = (yield* run("b", ["r1"])) as [string, [string, string, number]]
      expect(taken[1].slice(0, 2)).toEqual(["held", "a|5|1"])
      expect(yield* Effect.promise(() => redis.get(owner("r1")))).toBe("a|5|1")
      expect(yield* Effect.promise(() => redis.get(counterKey))).toBe("2")

      expect(yield* run("a", ["r1"])).toEqual(["5", ["ours", "a|5|1"]])

      yield* Effect.promise(() => redis.del(owner("r1")))
      expect(yield* run("b", ["r1"])).toEqual(["5", ["ok", "b|5|3", "a"]])
      expect(yield* Effect.promise(() => redis.hget(placedKey, "r1"))).toBe("b")
    }))

  it.scopedLive("renew: only our own value; re-write only in grace, only when allowed, only where the key is gone", () =>
    Effect.gen(function*() {
      const redis = yield* connect(yield* redisServer)
      const run = (node: string, leases: Array<[string, string, "0" | "1"]>) =>
        RedisConnection.run(redis, "renew", renew, [...keys, ...leases.map(([robot]) => owner(robot))], [
          node,
          1_000,
          ...leases.flatMap(([robot, value, rewrite]) => [value, rewrite, robot])
        ])

      expect(yield* run("a", [["r1", "a|1|1", "1"]])).toEqual(["noepoch"])
      yield* Effect.promise(() => redis.hset(epochKey, "epoch", 1, "run", "x"))
      yield* Effect.promise(() => redis.set(owner("r1"), "a|1|1", "PX", 200))
      yield* Effect.promise(() => redis.set(owner("r2"), "b|1|2", "PX", 200))
      // Ours is renewed; another's is lost; a gone key outside grace is lost even when re-writing is allowed.
      expect(yield* run("a", [["r1", "a|1|1", "1"], ["r2", "a|1|2", "1"], ["r3", "a|1|3", "1"]])).toEqual(["1", "ok", "lost", "lost"])
      expect(yield* Effect.promise(() => redis.pttl(owner("r1")))).toBeGreaterThan(900)
      expect(yield* Effect.promise(() => redis.get(owner("r2")))).toBe("b|1|2")
      expect(yield* Effect.promise(() => redis.exists(owner("r3")))).toBe(0)

      // A new epoch with grace: a gone key is re-written when allowed, not when the node's deadline passed.
      expect(yield* RedisConnection.run(redis, "epoch", epoch, [epochKey, graceKey], [0, "run-2", 1_000])).toEqual([2, 1])
      expect(yield* run("a", [["r3", "a|1|3", "1"], ["r4", "a|1|4", "0"], ["r2", "a|1|2", "1"]])).toEqual(["2", "rw:a|2|1", "lost", "lost"])
      expect(yield* Effect.promise(() => redis.get(owner("r3")))).toBe("a|2|1")
      expect(yield* Effect.promise(() => redis.exists(owner("r4")))).toBe(0)
    }))

  it.scopedLive("release deletes only our own value; an epoch starts once per Redis run, above every known epoch", () =>
    Effect.gen(function*() {
      const redis = yield* connect(yield* redisServer)
      yield* Effect.promise(() => redis.set(owner("r1"), "a|1|1"))
      yield* Effect.promise(() => redis.set(owner("r2"), "b|1|2"))
      expect(yield* RedisConnection.run(redis, "release", release, [owner("r1"), owner("r2")], ["a|1|1", "a|1|2"])).toBe(1)
      expect(yield* Effect.promise(() => redis.mget(owner("r1"), owner("r2")))).toEqual([null, "b|1|2"])

      const start = (known: number, run: string) =>
        RedisConnection.run(redis, "epoch", epoch, [epochKey, graceKey], [known, run, 800])
      expect(yield* start(0, "r-1")).toEqual([1, 1])
      expect(yield* Effect.promise(() => redis.pttl(graceKey))).toBeGreaterThan(700)
      yield* Effect.promise(() => redis.del(graceKey))
      // Another node of the same run: the same epoch, no new grace.
      expect(yield* start(0, "r-1")).toEqual([1, 0])
      expect(yield* Effect.promise(() => redis.exists(graceKey))).toBe(0)
      // A new run (a Redis restored from disk, or a promoted replica): one more, with grace.
      expect(yield* start(0, "r-2")).toEqual([2, 1])
      // A node that remembers a greater epoch than Redis has: above it.
      expect(yield* start(7, "r-3")).toEqual([8, 1])
    }))
})
