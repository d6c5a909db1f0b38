/**
 * A claim's end is reported at its own deadline: `Lost` comes when the owner's monotonic deadline
 * passes, not when Redis answers (a renewal's `lost`, or the stale-lease sweep long after), so
 * that a robot's link stops when its claim ends. A renewal Redis still grants late brings the
 * robot back (`Acquired` again); one that finds the lease gone reports nothing more.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as Membership from "../../src/cluster/Membership.js"
import * as Ownership from "../../src/cluster/Ownership.js"
import * as RedisConnection from "../../src/cluster/RedisConnection.js"
import { connect, eventually, margin, redisServer, robotIds, ttl } from "./fixtures.js"

const robots = robotIds(6)

/** Every change of `ownership`, with whether Redis was paused and what `remaining` said when it came. */
const record = (ownership: Ownership.Ownership, redisPaused: () => boolean) =>
  Effect.gen(function*() {
    const seen: Array<{ readonly tag: Ownership.Change["_tag"]; readonly robot: string; readonly paused: boolean; readonly remaining: number }> = []
    yield* Effect.forkScoped(Stream.runForEach(ownership.changes, (change) =>
      Effect.sync(() =>
        void seen.push({ tag: change._tag, robot: change.robot, paused: redisPaused(), remaining: ownership.remaining(change.robot) })
      )))
    yield* Effect.yieldNow()
    return seen
  })

describe("a claim's end is reported at its deadline", () => {
  it.scopedLive("Redis paused: `Lost` for every robot at its deadline, while Redis is still silent; once back, no second `Lost`, then `Acquired`", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const redis = yield* connect(server)
      const membership = yield* Membership.make({ redis, node: "n1", protocol: 1, ttl, pollInterval: 50 })
      const ownership = yield* Ownership.make({ redis, membership, robots, ttl, margin, pollInterval: 100, settle: 500 })
      let paused = false
      const seen = yield* record(ownership, () => paused)
      yield* eventually("every robot owned", () => ownership.owned().length === robots.length, ttl + 4_000)

      paused = true
      server.pause()
      yield* eventually("a Lost for every robot", () => seen.filter((change) => change.tag === "Lost").length === robots.length, ttl)
      const lost = seen.filter((change) => change.tag === "Lost")
      // Reported when the claim had ended (not before), and while Redis was silent: no answer of
      // its (a renewal's `lost`) nor the sweep of stale leases (TTL + margin after the deadline) told it.
      expect(lost.every((change) => change.paused && change.remaining === 0)).toBe(true)
      expect(ownership.counts().lapsed).toBe(robots.length)
      expect(ownership.owned()).toEqual([])

      server.resume()
      paused = false
      yield* eventually("every robot owned again", () => ownership.owned().length === robots.length, ttl + 3_000)
      for (const robot of robots) {
        expect(seen.filter((change) => change.robot === robot).map((change) => change.tag), robot).toEqual(["Acquired", "Lost", "Acquired"])
      }
      expect(ownership.counts().lost).toBe(robots.length)
    }))

  it.scopedLive("a renewal answered after the deadline but granted by Redis in time: `Lost` at the deadline, then `Acquired` with the same token", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      // A command timeout longer than the stall, so that the late answer is heard.
      const redis = yield* RedisConnection.connect(server.url, { commandTimeout: 2_000, maxReconnectDelay: 100 })
      const admin = yield* connect(server)
      const membership = yield* Membership.make({ redis, node: "n1", protocol: 1, ttl, pollInterval: 50 })
      const ownership = yield* Ownership.make({ redis, membership, robots, ttl, margin, pollInterval: 20, settle: 500 })
      const seen = yield* record(ownership, () => false)
      yield* eventually("every robot owned", () => ownership.owned().length === robots.length, ttl + 4_000)
      const tokens = robots.map((robot) => ownership.tokenOf(robot))

      // Right after a renewal, Redis holds every client for most of a TTL (`CLIENT PAUSE … ALL`):
      // the claims end (TTL − margin after that renewal was sent), the next renewal waits in
      // Redis's queue and is granted when the pause ends, before the keys' own expiry.
      const renewals = ownership.counts().renewals
      yield* eventually("a renewal", () => ownership.counts().renewals > renewals, ttl)
      yield* Effect.promise(() => admin.call("CLIENT", "PAUSE", String(ttl - margin / 2 - 50), "ALL"))
      yield* eventually("a Lost for every robot", () => seen.filter((change) => change.tag === "Lost").length === robots.length, ttl)
      yield* eventually("every robot owned again", () => ownership.owned().length === robots.length, ttl)
      for (const robot of robots) {
        expect(seen.filter((change) => change.robot === robot).map((change) => change.tag), robot).toEqual(["Acquired", "Lost", "Acquired"])
      }
      expect(robots.map((robot) => ownership.tokenOf(robot))).toEqual(tokens)
      expect(ownership.counts().restored).toBe(robots.length)
      expect(ownership.counts().acquisitions).toBe(robots.length)
    }))
})
