/**
 * The Redis backplane between hubs of one process, each with a backplane of its own, as nodes
 * would have, on a Redis of each test's own (test/support/RedisServer.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Queue } from "effect"
import { Redis } from "ioredis"
import { pack } from "msgpackr"
import { Backplane, Encoded, PubSub, TestKit } from "../../src/actors/index.js"
import * as BackplaneFrame from "../../src/cluster/BackplaneFrame.js"
import * as RedisBackplane from "../../src/cluster/RedisBackplane.js"
import { type RedisServer, startRedis } from "../support/RedisServer.js"

const redisServer = Effect.acquireRelease(Effect.promise(startRedis), (server) => Effect.promise(server.stop))

/** A plain connection to look at Redis and to publish frames by hand. */
const rawConnection = (server: RedisServer) =>
  Effect.acquireRelease(
    Effect.sync(() => new Redis(server.url, { maxRetriesPerRequest: 1 }).on("error", () => {})),
    (redis) => Effect.sync(() => redis.disconnect())
  )

/** A node: a hub on a backplane of its own. */
const node = (server: RedisServer, nodeId: string, options?: Partial<RedisBackplane.Options>) =>
  Effect.gen(function*() {
    const backplane = yield* RedisBackplane.make({ url: server.url, nodeId, maxReconnectDelayMs: 100, ...options })
    const hub = yield* PubSub.make({ nodeId, backplane })
    return { backplane, hub }
  })

/** A Redis of the test's own, a plain connection to it, and two nodes on it, `a` and `b`. */
const twoNodes = (optionsOfA?: Partial<RedisBackplane.Options>) =>
  Effect.gen(function*() {
    const server = yield* redisServer
    const raw = yield* rawConnection(server)
    const a = yield* node(server, "a", optionsOfA)
    const b = yield* node(server, "b")
    return { server, raw, a, b }
  })

const subscribersOf = (raw: Redis, channel: string) =>
  Effect.promise(async () => Number(((await raw.pubsub("NUMSUB", channel)) as Array<unknown>)[1]))

const awaitSubscribers = (raw: Redis, channel: string, count: number) =>
  TestKit.awaitUntil(Effect.map(subscribersOf(raw, channel), (n) => n === count), { timeoutMillis: 10_000 })

const resyncs = (hub: PubSub.PubSub, topic: string) =>
  Effect.gen(function*() {
    const seen: Array<Backplane.Resync> = []
    yield* PubSub.onResync(hub, topic, (signal) => Effect.sync(() => seen.push(signal)))
    return seen
  })

const sleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

describe("RedisBackplane", () => {
  it.scoped("a broadcast reaches the subscribers of every other node once, in order, and the local ones once", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const raw = yield* rawConnection(server)
      const [a, b, c] = [yield* node(server, "a"), yield* node(server, "b"), yield* node(server, "c")]
      const atA = yield* PubSub.subscribeQueue<unknown>(a.hub, "fleet")
      const atB = yield* PubSub.subscribeQueue<unknown>(b.hub, "fleet")
      const atC = yield* PubSub.subscribeQueue<unknown>(c.hub, "fleet")
      yield* awaitSubscribers(raw, a.backplane.channel("fleet"), 3)
      const sent = Array.from({ length: 200 }, (_, i) => ({ robot: `agv-${i % 7}`, i }))
      for (const message of sent) expect(yield* PubSub.broadcast(a.hub, "fleet", message)).toBe(1)
      yield* TestKit.awaitUntil(Effect.map(Effect.zip(Queue.size(atB), Queue.size(atC)), ([x, y]) => x === 200 && y === 200))
      yield* PubSub.broadcast(a.hub, "fleet", Encoded.make({ view: 1 }))
      yield* sleep(100)
      const [fromA, fromB, fromC] = [yield* Queue.takeAll(atA), yield* Queue.takeAll(atB), yield* Queue.takeAll(atC)]
      expect(Chunk.size(fromA)).toBe(201)
      for (const received of [fromB, fromC]) {
        const all = Chunk.toReadonlyArray(received)
        expect(all.length).toBe(201)
        expect(all.slice(0, 200)).toEqual(sent)
        expect(Encoded.isEncoded(all[200])).toBe(true)
        expect((all[200] as Encoded.Encoded<unknown>).value).toEqual({ view: 1 })
      }
      const stats = yield* b.backplane.stats
      expect([stats.received, stats.gaps, stats.decodeFailures, stats.connected]).toEqual([201, 0, 0, true])
      const own = yield* a.backplane.stats
      expect([own.published, own.received]).toEqual([201, 0])
    }))

  it.scoped("a node listens to a topic's channel only while it has local subscribers", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const raw = yield* rawConnection(server)
      const { backplane, hub } = yield* node(server, "a")
      const channel = backplane.channel("robots")
      const channels = Effect.promise(() => raw.pubsub("CHANNELS") as Promise<Array<string>>)
      yield* awaitSubscribers(raw, "fleetvisor:bp-resync", 1)
      expect(yield* channels).toEqual(["fleetvisor:bp-resync"])
      yield* Effect.scoped(Effect.gen(function*() {
        yield* PubSub.subscribeQueue(hub, "robots")
        yield* PubSub.subscribeQueue(hub, "robots")
        yield* awaitSubscribers(raw, channel, 1)
        expect((yield* channels).sort()).toEqual(["fleetvisor:bp-resync", channel])
      }))
      yield* awaitSubscribers(raw, channel, 0)
      expect(yield* channels).toEqual(["fleetvisor:bp-resync"])
    }))

  it.scoped("a gap in an origin's numbering is counted and raises a resync here and on the other nodes", () =>
    Effect.gen(function*() {
      const { a, b, raw } = yield* twoNodes()
      const atB = yield* PubSub.subscribeQueue<string>(b.hub, "fleet")
      const [resyncsA, resyncsB] = [yield* resyncs(a.hub, "fleet"), yield* resyncs(b.hub, "fleet")]
      const channel = b.backplane.channel("fleet")
      yield* awaitSubscribers(raw, channel, 1)
      yield* awaitSubscribers(raw, "fleetvisor:bp-resync", 2)
      const send = (seq: number, message: string) =>
        Effect.promise(() => raw.publish(channel, BackplaneFrame.encodeMessage("ghost", seq, "fleet", message)))
      yield* send(5, "first heard")
      yield* send(6, "next")
      yield* send(8, "after a lost one")
      yield* send(1, "ghost restarted")
      yield* send(2, "and goes on")
      yield* TestKit.awaitUntil(Effect.map(Queue.size(atB), (n) => n === 5))
      expect(Chunk.toReadonlyArray(yield* Queue.takeAll(atB))).toEqual([
        "first heard", "next", "after a lost one", "ghost restarted", "and goes on"
      ])
      yield* TestKit.awaitUntil(Effect.sync(() => resyncsA.length === 1 && resyncsB.length === 1))
      expect(resyncsB).toEqual([Backplane.resyncSignal("fleet", "gap")])
      expect(resyncsA).toEqual([Backplane.resyncSignal("fleet", "gap")])
      const stats = yield* b.backplane.stats
      expect([stats.gaps, stats.resyncs, stats.received]).toEqual([1, 1, 5])
      expect((yield* a.backplane.stats).resyncRequests).toBe(1)
    }))

  it.scoped("a subscriber's own request for a topic's state reaches the handlers of every node", () =>
    Effect.gen(function*() {
      const { a, b, raw } = yield* twoNodes()
      const [resyncsA, resyncsB] = [yield* resyncs(a.hub, "fleet"), yield* resyncs(b.hub, "fleet")]
      yield* awaitSubscribers(raw, "fleetvisor:bp-resync", 2)
      yield* PubSub.resync(b.hub, "fleet")
      yield* PubSub.resync(b.hub, "fleet")
      yield* TestKit.awaitUntil(Effect.sync(() => resyncsA.length === 1 && resyncsB.length === 1))
      yield* sleep(100)
      expect([...resyncsA, ...resyncsB]).toEqual([
        Backplane.resyncSignal("fleet", "requested"),
        Backplane.resyncSignal("fleet", "requested")
      ])
    }))

  it.scoped("Redis restarting empty: local delivery goes on while it is down; then resubscribed, resync, frames flow", () =>
    Effect.gen(function*() {
      const { a, b, raw, server } = yield* twoNodes()
      const atA = yield* PubSub.subscribeQueue<number>(a.hub, "fleet")
      const atB = yield* PubSub.subscribeQueue<number>(b.hub, "fleet")
      const resyncsB = yield* resyncs(b.hub, "fleet")
      const channel = a.backplane.channel("fleet")
      yield* awaitSubscribers(raw, channel, 2)
      yield* PubSub.broadcast(a.hub, "fleet", 1)
      expect(yield* Queue.take(atB)).toBe(1)

      yield* Effect.promise(server.stop)
      yield* TestKit.awaitUntil(Effect.map(a.backplane.stats, (s) => !s.connected))
      for (const i of [2, 3]) expect(yield* PubSub.broadcast(a.hub, "fleet", i)).toBe(1)
      yield* TestKit.awaitUntil(Effect.map(a.backplane.stats, (s) => s.publishDropped === 2 && s.inFlight === 0))

      yield* Effect.promise(server.start)
      yield* awaitSubscribers(raw, channel, 2)
      yield* TestKit.awaitUntil(Effect.sync(() => resyncsB.length > 0), { timeoutMillis: 10_000 })
      expect(resyncsB[0]).toEqual(Backplane.resyncSignal("fleet", "reconnect"))
      yield* TestKit.awaitUntil(Effect.map(a.backplane.stats, (s) => s.connected))
      yield* PubSub.broadcast(a.hub, "fleet", 4)
      expect(yield* Queue.take(atB)).toBe(4)
      expect(Chunk.toReadonlyArray(yield* Queue.takeAll(atA))).toEqual([1, 2, 3, 4])
      const stats = yield* b.backplane.stats
      expect([stats.reconnects, stats.gaps]).toEqual([1, 0])
    }), { timeout: 20_000 })

  it.scoped("a node starts while Redis is down: it neither waits nor fails, and joins when Redis comes", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      yield* Effect.promise(server.stop)
      const a = yield* node(server, "a")
      const b = yield* node(server, "b")
      const atA = yield* PubSub.subscribeQueue<number>(a.hub, "fleet")
      const atB = yield* PubSub.subscribeQueue<number>(b.hub, "fleet")
      expect(yield* PubSub.broadcast(a.hub, "fleet", 1)).toBe(1)
      expect(yield* Queue.take(atA)).toBe(1)
      expect(yield* a.backplane.stats).toMatchObject({ connected: false, publishDropped: 1 })
      yield* Effect.promise(server.start)
      const raw = yield* rawConnection(server)
      yield* awaitSubscribers(raw, a.backplane.channel("fleet"), 2)
      yield* TestKit.awaitUntil(Effect.map(a.backplane.stats, (s) => s.connected))
      yield* PubSub.broadcast(a.hub, "fleet", 2)
      expect(yield* Queue.take(atB)).toBe(2)
      expect((yield* b.backplane.stats).reconnects).toBe(0)
    }))

  it.scoped("a publishing connection that dropped and came back raises a resync of what it could not send", () =>
    Effect.gen(function*() {
      const { a, b, raw } = yield* twoNodes()
      yield* PubSub.subscribeQueue(b.hub, "fleet")
      const resyncsB = yield* resyncs(b.hub, "fleet")
      yield* awaitSubscribers(raw, b.backplane.channel("fleet"), 1)
      yield* awaitSubscribers(raw, "fleetvisor:bp-resync", 2)
      yield* TestKit.awaitUntil(Effect.map(a.backplane.stats, (s) => s.connected))
      const clients = yield* Effect.promise(() => raw.client("LIST") as Promise<string>)
      const id = /id=(\d+) .*name=fleetvisor-bp-pub-a /.exec(clients)?.[1]
      expect(id).toBeDefined()
      yield* Effect.promise(() => raw.client("KILL", "ID", id!))
      yield* PubSub.broadcast(a.hub, "fleet", "lost")
      yield* TestKit.awaitUntil(Effect.sync(() => resyncsB.length === 1), { timeoutMillis: 10_000 })
      expect(resyncsB).toEqual([Backplane.resyncSignal("fleet", "reconnect")])
      expect((yield* a.backplane.stats).publishDropped).toBe(1)
      expect((yield* b.backplane.stats).reconnects).toBe(0)
    }))

  it.scoped("a hung Redis: remote copies beyond maxInFlight are dropped, local delivery is not; receivers see the gap", () =>
    Effect.gen(function*() {
      const { a, b, raw, server } = yield* twoNodes({ maxInFlight: 10 })
      const atA = yield* PubSub.subscribeQueue<number>(a.hub, "fleet", { bufferSize: 100 })
      const atB = yield* PubSub.subscribeQueue<number>(b.hub, "fleet", { bufferSize: 100 })
      const resyncsB = yield* resyncs(b.hub, "fleet")
      yield* awaitSubscribers(raw, a.backplane.channel("fleet"), 2)
      server.pause()
      try {
        for (let i = 1; i <= 50; i++) yield* PubSub.broadcast(a.hub, "fleet", i)
        const stats = yield* a.backplane.stats
        expect([stats.inFlight, stats.publishDropped]).toEqual([10, 40])
        expect(yield* Queue.size(atA)).toBe(50)
      } finally {
        server.resume()
      }
      const describe = Effect.map(
        Effect.all([Queue.size(atB), a.backplane.stats, b.backplane.stats]),
        (seen) => JSON.stringify(seen)
      )
      yield* TestKit.awaitUntil(Effect.map(Queue.size(atB), (n) => n === 10), { describe, waitedFor: "10 at b" })
      yield* TestKit.awaitUntil(Effect.map(a.backplane.stats, (stats) => stats.inFlight === 0))
      yield* PubSub.broadcast(a.hub, "fleet", 51)
      yield* TestKit.awaitUntil(Effect.map(Queue.size(atB), (n) => n === 11), { describe, waitedFor: "11 at b" })
      expect(Chunk.toReadonlyArray(yield* Queue.takeAll(atB))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 51])
      yield* TestKit.awaitUntil(Effect.sync(() => resyncsB.length === 1), { describe, waitedFor: "resync at b" })
      expect(resyncsB[0]).toEqual(Backplane.resyncSignal("fleet", "gap"))
      const own = yield* a.backplane.stats
      expect([own.published, own.publishDropped, own.gaps, own.received]).toEqual([11, 40, 0, 0])
    }))

  it.scoped("garbage and frames of a newer major version are counted and dropped; the node keeps working", () =>
    Effect.gen(function*() {
      const { a, b, raw } = yield* twoNodes()
      const atB = yield* PubSub.subscribeQueue<string>(b.hub, "fleet")
      const channel = b.backplane.channel("fleet")
      yield* awaitSubscribers(raw, channel, 1)
      const publish = (on: string, bytes: Buffer | string) => Effect.promise(() => raw.publish(on, bytes))
      yield* publish(channel, "not a frame at all")
      yield* publish(channel, Buffer.from([0xc1]))
      yield* publish(channel, pack({ v: 1, origin: "x", topic: "fleet" }))
      yield* publish(channel, pack({ v: 2, origin: "future", seq: 1, topic: "fleet", message: "from v2", more: [1] }))
      yield* publish("fleetvisor:bp-resync", pack({ v: 9, origin: "future", topic: "fleet", reason: "new" }))
      yield* publish("fleetvisor:bp-resync", "garbage")
      yield* PubSub.broadcast(a.hub, "fleet", "still here")
      expect(yield* Queue.take(atB)).toBe("still here")
      expect(yield* Queue.size(atB)).toBe(0)
      const stats = yield* b.backplane.stats
      expect([stats.decodeFailures, stats.unknownVersion, stats.received, stats.gaps]).toEqual([4, 2, 1, 0])
    }))
})
