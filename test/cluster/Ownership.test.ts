/**
 * Robot ownership on a Redis of the test's own, three nodes in this process, a 1 s TTL. Every
 * test samples each node's own `owns` every 20 ms: at no sample may two nodes claim one robot.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as FencingToken from "../../src/cluster/FencingToken.js"
import * as Membership from "../../src/cluster/Membership.js"
import * as Ownership from "../../src/cluster/Ownership.js"
import * as RedisConnection from "../../src/cluster/RedisConnection.js"
import * as Rendezvous from "../../src/cluster/Rendezvous.js"
import { claimants, connect, eventually, margin, redisServer, robotIds, startNode, type TestNode, ttl, watchClaims } from "./fixtures.js"

const robots = robotIds(30)

/** Every robot claimed by exactly its rendezvous winner among `nodes`. */
const placedOn = (nodes: ReadonlyArray<TestNode>) => () =>
  robots.every((robot) => {
    const who = claimants(nodes, robot)
    return who.length === 1 && who[0] === Rendezvous.ownerOf(robot, nodes.map((node) => node.id))
  })

const elapsedSince = (start: number) => Date.now() - start

describe("Ownership", () => {
  it.scopedLive("three nodes, 30 robots: each robot has one owner, its rendezvous winner, with a token", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const nodes = yield* Effect.forEach(["n1", "n2", "n3"], (id) => startNode(server, id, robots))
      const claims = yield* watchClaims(nodes, robots)
      yield* eventually("every robot on its rendezvous winner", placedOn(nodes), ttl + 4_000)
      const tokens = robots.map((robot) => nodes.find((node) => node.ownership.owns(robot))!.ownership.tokenOf(robot)!)
      expect(new Set(tokens.map((token) => token.counter)).size).toBe(robots.length)
      expect(tokens.every((token) => token.epoch === 1)).toBe(true)
      const owners = yield* nodes[0].ownership.owners([...robots, "not-a-robot"])
      expect(robots.map((robot) => owners.get(robot)?.node)).toEqual(robots.map((robot) => claimants(nodes, robot)[0]))
      expect(robots.map((robot) => owners.get(robot)?.token)).toEqual(tokens)
      expect(owners.has("not-a-robot")).toBe(false)
      // Renewed many times over, and still where they were.
      yield* Effect.sleep(ttl * 2)
      expect(placedOn(nodes)()).toBe(true)
      for (const node of nodes) {
        const counts = node.ownership.counts()
        expect(counts.acquisitions).toBe(node.ownership.owned().length)
        expect(counts.lost).toBe(0)
        expect(counts.renewals).toBeGreaterThan(3)
      }
      expect(claims.doubles).toEqual([])
      expect(claims.samples()).toBeGreaterThan(50)
    }))

  it.scopedLive("a node that dies without releasing: its robots run on the others within TTL + 2 s, never two owners", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const nodes = yield* Effect.forEach(["n1", "n2", "n3"], (id) => startNode(server, id, robots, { crashOnStop: true }))
      const claims = yield* watchClaims(nodes, robots)
      yield* eventually("placed", placedOn(nodes), ttl + 4_000)
      const [n1, n2, n3] = nodes
      const orphans = n2.ownership.owned()
      expect(orphans.length).toBeGreaterThan(0)
      const others = [n1.ownership.owned(), n3.ownership.owned()]
      const crashed = Date.now()
      yield* n2.stop
      yield* eventually("n2's robots on n1 and n3", placedOn([n1, n3]), ttl + 2_000)
      const failover = elapsedSince(crashed)
      console.log(`fail-over after a crash, TTL ${ttl} ms: ${failover} ms`)
      // Sticky: the robots of the survivors did not move.
      expect([n1.ownership.owned().filter((r) => others[0].includes(r)), n3.ownership.owned().filter((r) => others[1].includes(r))])
        .toEqual(others)
      expect(n1.ownership.counts().handovers + n3.ownership.counts().handovers).toBe(orphans.length)
      expect(claims.doubles).toEqual([])
    }))

  it.scopedLive("a drain hands the node's robots over within 1 s", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const nodes = yield* Effect.forEach(["n1", "n2", "n3"], (id) => startNode(server, id, robots))
      const claims = yield* watchClaims(nodes, robots)
      yield* eventually("placed", placedOn(nodes), ttl + 4_000)
      const [n1, n2, n3] = nodes
      const drained = n3.ownership.owned()
      const started = Date.now()
      yield* n3.ownership.drain
      expect(n3.ownership.owned()).toEqual([])
      expect(n3.ownership.counts().released).toBe(drained.length)
      yield* eventually("n3's robots on n1 and n2", placedOn([n1, n2]), 1_000)
      console.log(`hand-over after a drain of ${drained.length} robots: ${elapsedSince(started)} ms`)
      // A draining node takes nothing back.
      yield* Effect.sleep(ttl)
      expect(n3.ownership.owned()).toEqual([])
      expect(claims.doubles).toEqual([])
    }))

  it.scopedLive("Redis restarts empty: no robot goes to a new owner during grace; the owners re-write their leases with newer tokens", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const nodes = yield* Effect.forEach(["n1", "n2", "n3"], (id) => startNode(server, id, robots, { crashOnStop: true }))
      yield* eventually("placed", placedOn(nodes), ttl + 4_000)
      const [n1, n2, n3] = nodes
      const before = new Map(robots.map((robot) => {
        const owner = nodes.find((node) => node.ownership.owns(robot))!
        return [robot, { owner: owner.id, token: owner.ownership.tokenOf(robot)! }] as const
      }))
      const newest = [...before.values()].map((b) => b.token).reduce((a, b) => (FencingToken.isNewer(a, b) ? a : b))
      // n3 dies just before: its robots are free when Redis comes back, and only grace keeps them so.
      const orphans = n3.ownership.owned()
      yield* n3.stop
      const claims = yield* watchClaims(nodes, robots)
      yield* Effect.promise(server.restart)
      const back = Date.now()
      yield* eventually("every robot on n1 or n2", placedOn([n1, n2]), ttl + 3_000)
      console.log(`after an empty Redis restart, every robot owned again ${elapsedSince(back)} ms after Redis was back`)
      yield* Effect.sleep(60) // the sampler's next round, so that it saw every claim

      for (const robot of robots) {
        if (orphans.includes(robot)) {
          const firstClaims = ["n1", "n2"].flatMap((id) => claims.firstClaim.get(`${id}/${robot}`) ?? [])
          expect(firstClaims.length).toBe(1)
          expect(firstClaims[0] - back).toBeGreaterThanOrEqual(ttl - 100)
          continue
        }
        const owner = nodes.find((node) => node.id === before.get(robot)!.owner)!
        expect(owner.ownership.owns(robot)).toBe(true)
        const token = owner.ownership.tokenOf(robot)!
        expect(token.epoch).toBe(2)
        expect(FencingToken.isNewer(token, newest)).toBe(true)
      }
      const counts = [n1, n2].map((node) => node.ownership.counts())
      expect(counts[0].rewrites + counts[1].rewrites).toBe(robots.length - orphans.length)
      expect(counts[0].graceRefusals + counts[1].graceRefusals).toBeGreaterThan(0)
      expect(counts[0].lost + counts[1].lost).toBe(0)
      expect(nodes.reduce((sum, node) => sum + node.ownership.counts().epochsStarted, 0)).toBe(2)
      expect(claims.doubles).toEqual([])
    }))

  it.scopedLive("Redis paused: every owner stops claiming by its own deadline; when Redis answers again the robots are owned again", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const nodes = yield* Effect.forEach(["n1", "n2", "n3"], (id) => startNode(server, id, robots))
      yield* eventually("placed", placedOn(nodes), ttl + 4_000)
      const claims = yield* watchClaims(nodes, robots)
      server.pause()
      const paused = Date.now()
      yield* eventually("nobody claims anything", () => robots.every((robot) => claimants(nodes, robot).length === 0), ttl)
      const silent = Date.now() - paused
      console.log(`Redis paused: every claim ended ${silent} ms later (TTL ${ttl} ms, margin ${margin} ms)`)
      expect(silent).toBeLessThanOrEqual(ttl - margin + 100)
      yield* Effect.sleep(ttl)
      expect(robots.every((robot) => claimants(nodes, robot).length === 0)).toBe(true)
      expect(nodes.every((node) => node.ownership.counts().redisErrors > 0)).toBe(true)
      server.resume()
      const resumed = Date.now()
      yield* eventually("placed again", placedOn(nodes), ttl + 2_000)
      console.log(`Redis resumed: every robot owned again ${elapsedSince(resumed)} ms later`)
      expect(claims.doubles).toEqual([])
    }))

  it.scopedLive("refuses settings under which an owner could not keep its claim between renewals", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const redis = yield* connect(server)
      const membership = yield* Membership.make({ redis, node: "n1", protocol: 1 })
      for (const settings of [{ ttl: 1_000, margin: 1_000 }, { ttl: 1_000, margin: 300, renewInterval: 700 }]) {
        const refused = yield* Effect.flip(Ownership.make({ redis, membership, ...settings }))
        expect(refused._tag).toBe("InvalidSettings")
      }
    }))

  it.scopedLive("as layers: a node alone takes every robot it manages", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const node = Ownership.layer({ robots: ["a", "b"], ttl, margin, pollInterval: 100 }).pipe(
        Layer.provideMerge(Membership.layer({ node: "solo", protocol: 1, ttl, pollInterval: 50 })),
        Layer.provide(RedisConnection.layer(server.url, { commandTimeout: 300 }))
      )
      const context = yield* Layer.build(node)
      const ownership = Context.get(context, Ownership.Ownership)
      expect(Context.get(context, Membership.Membership).node).toBe("solo")
      yield* eventually("both robots owned", () => ownership.owned().length === 2, ttl + 3_000)
      yield* ownership.unmanage(["a"])
      expect(ownership.owned()).toEqual(["b"])
      expect(ownership.counts().released).toBe(1)
    }))

  it.scopedLive("a robot its winner does not manage is taken by another node after fallbackAfter", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const fallbackAfter = 1_500
      const n1 = yield* startNode(server, "n1", robots, { fallbackAfter })
      const n2 = yield* startNode(server, "n2", [], { fallbackAfter })
      const claims = yield* watchClaims([n1, n2], robots)
      const started = Date.now()
      const leftOver = robots.filter((robot) => Rendezvous.ownerOf(robot, ["n1", "n2"]) === "n2")
      expect(leftOver.length).toBeGreaterThan(5)
      yield* eventually("n1 owns the robots it wins", () => robots.every((robot) => leftOver.includes(robot) || n1.ownership.owns(robot)), ttl + 3_000)
      expect(leftOver.filter((robot) => n1.ownership.owns(robot))).toEqual([])
      yield* eventually("n1 owns every robot", () => robots.every((robot) => n1.ownership.owns(robot)), ttl + fallbackAfter + 2_000)
      yield* Effect.sleep(60)
      for (const robot of leftOver) expect(claims.firstClaim.get(`n1/${robot}`)! - started).toBeGreaterThanOrEqual(fallbackAfter)
      expect(claims.doubles).toEqual([])
    }))
})
