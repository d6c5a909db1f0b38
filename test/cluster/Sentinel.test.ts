/**
 * `REDIS_URL` with Sentinel, on real processes: a master, a replica and three Sentinels of the
 * test's own on spare ports. Two nodes join through the Sentinels; the master is killed
 * (SIGKILL); the Sentinels promote the replica and the nodes' connections follow it, with their
 * heartbeats, their leases and their backplane.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Stream } from "effect"
import { Redis } from "ioredis"
import * as Membership from "../../src/cluster/Membership.js"
import * as Ownership from "../../src/cluster/Ownership.js"
import * as RedisBackplane from "../../src/cluster/RedisBackplane.js"
import * as RedisConnection from "../../src/cluster/RedisConnection.js"
import { startRedis, startReplica, startSentinels } from "../support/RedisServer.js"
import { eventually, robotIds } from "./fixtures.js"

/** The service's defaults: a failover must cost no lease. */
const ttl = 5_000
const margin = 500
const robots = robotIds(12)

const acquired = <A extends { readonly stop: () => Promise<void> }>(start: () => Promise<A>) =>
  Effect.acquireRelease(Effect.promise(start), (server) => Effect.promise(server.stop))

const plain = (port: number) =>
  Effect.acquireRelease(
    Effect.sync(() => new Redis(port, "127.0.0.1", { maxRetriesPerRequest: 1 }).on("error", () => {})),
    (redis) => Effect.sync(() => redis.disconnect())
  )

/** Polls an async `check` every 100 ms until it holds; dies with `what` after `timeout` ms. */
const until = (what: string, check: () => Promise<boolean>, timeout: number) =>
  Effect.promise(async () => {
    const deadline = Date.now() + timeout
    while (Date.now() < deadline) {
      if (await check().catch(() => false)) return true
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    return false
  }).pipe(Effect.flatMap((ok) => ok ? Effect.void : Effect.dieMessage(`not within ${timeout} ms: ${what}`)))

/** When a node's heartbeats and polls were answered, sampled every 10 ms. */
const timeline = (membership: Membership.Membership) =>
  Effect.gen(function*() {
    const beats: Array<number> = []
    const polls: Array<number> = []
    let last = membership.counts()
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(
      Effect.sync(() => {
        const now = membership.counts()
        if (now.heartbeats !== last.heartbeats) beats.push(Date.now())
        if (now.polls !== last.polls) polls.push(Date.now())
        last = now
      }),
      Effect.sleep(Duration.millis(10))
    )))
    /** The longest stretch without an answer from the last one before `at` to now, ms. */
    const gapAcross = (times: ReadonlyArray<number>, at: number) => {
      const from = times.filter((t) => t <= at).at(-1) ?? at
      const after = [from, ...times.filter((t) => t > from), Date.now()]
      return Math.max(...after.slice(1).map((t, i) => t - after[i]))
    }
    return {
      beatsAfter: (at: number) => beats.filter((t) => t > at).length,
      heartbeatGap: (at: number) => gapAcross(beats, at),
      pollGap: (at: number) => gapAcross(polls, at)
    }
  })

describe("Redis with Sentinel", () => {
  it.scopedLive("nodes join through three Sentinels and follow a failover: heartbeats, every lease and the backplane continue on the promoted replica", () =>
    Effect.gen(function*() {
      const master = yield* acquired(startRedis)
      const replica = yield* acquired(() => startReplica(master.port))
      const onReplica = yield* plain(replica.port)
      yield* until("the replica in sync", async () => (await onReplica.info("replication")).includes("master_link_status:up"), 10_000)
      const sentinels = yield* Effect.acquireRelease(
        Effect.promise(() => startSentinels(master.port, 3, { downAfterMs: 500, failoverTimeoutMs: 2_000 })),
        (all) => Effect.promise(() => Promise.all(all.map((sentinel) => sentinel.stop())).then(() => {}))
      )
      // A failover needs a majority of the Sentinels, which find each other through the master (hello every 2 s).
      const watchers = yield* Effect.forEach(sentinels, (sentinel) => plain(sentinel.port))
      yield* until("each Sentinel knows the other two and the replica", () =>
        Promise.all(watchers.map(async (client) => {
          const peers = (await client.call("SENTINEL", "SENTINELS", "mymaster")) as Array<unknown>
          const replicas = (await client.call("SENTINEL", "REPLICAS", "mymaster")) as Array<unknown>
          return peers.length === 2 && replicas.length === 1
        })).then((all) => all.every(Boolean)), 20_000)

      // The first Sentinel listed does not run: the nodes ask the next ones.
      const url = `redis+sentinel://127.0.0.1:1,${sentinels.map((sentinel) => `127.0.0.1:${sentinel.port}`).join(",")}/mymaster`
      const nodes = yield* Effect.forEach(["n1", "n2"], (node) =>
        Effect.gen(function*() {
          const redis = yield* RedisConnection.connect(url, { commandTimeout: 300, maxReconnectDelay: 100 })
          const membership = yield* Membership.make({ redis, node, protocol: 1, ttl, pollInterval: 50 })
          const ownership = yield* Ownership.make({ redis, membership, robots, ttl, margin, pollInterval: 100, settle: 500 })
          const lost: Array<string> = []
          yield* Effect.forkScoped(Stream.runForEach(ownership.changes, (change) =>
            Effect.sync(() => void (change._tag === "Lost" && lost.push(change.robot)))))
          const backplane = yield* RedisBackplane.make({ url, nodeId: node, maxReconnectDelayMs: 100 })
          return { node, redis, membership, ownership, lost, backplane, timeline: yield* timeline(membership) }
        }))
      const [n1, n2] = nodes
      // The first epoch's grace is one TTL: the first grants come after it.
      yield* eventually("every robot owned by one node", () =>
        robots.every((robot) => nodes.filter((node) => node.ownership.owns(robot)).length === 1), ttl + 5_000)
      expect(n1.ownership.owned().length).toBeGreaterThan(0)
      expect(n2.ownership.owned().length).toBeGreaterThan(0)
      expect(yield* Effect.promise(() => onReplica.get("{fleetvisor}:owner:robot-0"))).toMatch(/^n[12]\|1\|/)

      // The backplane's frames from n1 reach n2 through the master.
      const heard: Array<unknown> = []
      const attachment = yield* n2.backplane.subscribe({ onMessage: (message) => void heard.push(message.message), onResync: () => {} })
      attachment.watch("t")
      /** A frame n1 publishes reaches n2. */
      const frameCrosses = (when: string) =>
        until(`a frame from n1 at n2 ${when}`, async () => {
          const sent = Math.random()
          await Effect.runPromise(n1.backplane.publish({ origin: "n1", topic: "t", message: sent }))
          await new Promise((resolve) => setTimeout(resolve, 50))
          return heard.includes(sent)
        }, 10_000)
      yield* frameCrosses("through the first master")
      const owners = new Map(robots.map((robot) => [robot, nodes.find((node) => node.ownership.owns(robot))!.node]))

      /** Runs `fault`, waits for the Sentinels to name `port` the master and for the nodes to work there; prints the figures. */
      const failover = (what: string, fault: Effect.Effect<void>, port: number, onNew: Redis) =>
        Effect.gen(function*() {
          const at = Date.now()
          yield* fault
          yield* until("the Sentinels name the new master", async () => {
            const [, named] = (await watchers[1].call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")) as [string, string]
            return Number(named) === port
          }, 20_000)
          const promoted = Date.now() - at
          yield* eventually("both nodes' heartbeats after the failover", () =>
            nodes.every((node) => node.timeline.beatsAfter(at + promoted) > 0), 10_000).pipe(
              Effect.tapDefect(() => Effect.sync(() => console.log("the nodes' connections (status, port, membership counts):", nodes.map((node) => [node.redis.status, node.redis.stream?.remotePort, node.membership.counts()]))))
            )
          yield* until("both nodes live on the new master", async () =>
            (await onNew.zrange("{fleetvisor}:nodes", 0, -1)).join(",") === "n1,n2", 10_000)
          // Renewed there: each node's leases back near the full TTL on the new master.
          const firsts = nodes.map((node) => node.ownership.owned()[0])
          yield* until("each node's leases renewed on the new master", async () => {
            const left = await Promise.all(firsts.map((robot) => onNew.pttl(`{fleetvisor}:owner:${robot}`)))
            return left.every((ms) => ms > ttl - 1_000)
          }, 2 * ttl)
          const figures = nodes.map((node) =>
            `${node.node}: no heartbeat for ${node.timeline.heartbeatGap(at)} ms (every ${Math.floor(ttl / 3)} ms otherwise), no answer for ${node.timeline.pollGap(at)} ms (a poll every 50 ms otherwise)`)
          console.log(`Sentinel, ${what}: the new master named ${promoted} ms after; ${figures.join("; ")}`)
          // Every robot kept by its owner, no Lost: the failover cost no lease (TTL 5 s).
          for (const robot of robots) {
            expect(nodes.filter((node) => node.ownership.owns(robot)).map((node) => node.node), robot).toEqual([owners.get(robot)])
          }
          expect(nodes.flatMap((node) => node.lost)).toEqual([])
        })

      yield* failover("the master killed (SIGKILL, down-after 500 ms)", Effect.promise(master.stop), replica.port, onReplica)
      // The promoted replica is a new Redis run: a new epoch, whose grace the owners ride out.
      expect(n1.ownership.epoch()).toBe(2)
      expect(nodes.reduce((sum, node) => sum + node.ownership.counts().epochsStarted, 0)).toBe(2)

      // The old master comes back (empty); the Sentinels make it a replica; a planned failover moves the master back to it.
      yield* Effect.promise(master.start)
      const onOld = yield* plain(master.port)
      yield* until("the old master a replica in sync", async () => (await onOld.info("replication")).includes("master_link_status:up"), 20_000)
      yield* until("the Sentinels see it as a healthy replica", () =>
        Promise.all(watchers.map(async (client) => {
          const replicas = ((await client.call("SENTINEL", "REPLICAS", "mymaster")) as Array<Array<string>>)
            .map((fields) => Object.fromEntries(fields.flatMap((_, i) => i % 2 === 0 ? [[fields[i], fields[i + 1]]] : [])))
          return replicas.some((r) => Number(r.port) === master.port && !/s_down|disconnected/.test(r.flags))
        })).then((all) => all.every(Boolean)), 20_000)
      yield* failover(
        "a planned SENTINEL FAILOVER (the old master stays up as a replica)",
        Effect.promise(() => watchers[0].call("SENTINEL", "FAILOVER", "mymaster").then(() => {})),
        master.port,
        onOld
      )
      expect(n1.ownership.epoch()).toBe(3)

      yield* frameCrosses("after both failovers")
    }), { timeout: 90_000 })
})
