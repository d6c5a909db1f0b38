import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Queue } from "effect"
import { Actor, Backplane, Encoded, ExitReason, PubSub, TestKit } from "../../src/actors/index.js"

/** A subscriber that records what it gets; `hold` keeps it busy so its buffer fills. */
const listener = (seen: Array<unknown>) =>
  Actor.make<unknown, null>({
    name: "listener",
    init: () => null,
    receive: (state, message) => {
      seen.push(message)
      return state
    }
  })

describe("PubSub", () => {
  it.scoped("broadcast reaches every subscriber of the topic; broadcastFrom skips the sender", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const hub = yield* PubSub.make()
      const [seenA, seenB] = [[] as Array<unknown>, [] as Array<unknown>]
      const a = yield* system.spawn(listener(seenA), { name: "a" })
      const b = yield* system.spawn(listener(seenB), { name: "b" })
      yield* PubSub.subscribe(hub, "room", a)
      yield* PubSub.subscribe(hub, "room", b)
      expect(yield* PubSub.broadcast(hub, "room", "hello")).toBe(2)
      expect(yield* PubSub.broadcastFrom(hub, a, "room", "from a")).toBe(1)
      expect(yield* PubSub.broadcast(hub, "elsewhere", "nobody")).toBe(0)
      yield* TestKit.awaitUntil(Effect.sync(() => seenB.length === 2))
      expect(seenA).toEqual(["hello"])
      expect(seenB).toEqual(["hello", "from a"])
    }))

  it.scoped("subscriptions vanish when the subscriber crashes", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const hub = yield* PubSub.make()
      const a = yield* system.spawn(listener([]), { name: "a" })
      const subscription = yield* PubSub.subscribe(hub, "fleet", a)
      yield* system.crash(a)
      yield* system.awaitExit(a)
      expect(subscription.isActive()).toBe(false)
      expect(PubSub.subscribers(hub)).toEqual([])
      expect((yield* PubSub.stats(hub)).subscriptions).toBe(0)
    }))

  it.scoped("overflow policies of a suspended subscriber: sliding keeps the newest, dropping the oldest", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const hub = yield* PubSub.make()
      const [slid, dropped] = [[] as Array<unknown>, [] as Array<unknown>]
      const s = yield* system.spawn(listener(slid), { name: "sliding" })
      const d = yield* system.spawn(listener(dropped), { name: "dropping" })
      yield* system.suspend(s)
      yield* system.suspend(d)
      const subS = yield* PubSub.subscribe(hub, "t", s, { bufferSize: 3, overflow: "sliding" })
      const subD = yield* PubSub.subscribe(hub, "t", d, { bufferSize: 3, overflow: "dropping" })
      for (let i = 1; i <= 5; i++) yield* PubSub.broadcast(hub, "t", i)
      expect([subS.pending(), subS.dropped(), subD.pending(), subD.dropped()]).toEqual([3, 2, 3, 2])
      yield* system.resume(s)
      yield* system.resume(d)
      yield* TestKit.awaitUntil(Effect.sync(() => slid.length === 3 && dropped.length === 3))
      expect(slid).toEqual([3, 4, 5])
      expect(dropped).toEqual([1, 2, 3])
      expect((yield* PubSub.stats(hub)).dropped).toBe(4)
    }))

  it.scoped("disconnect stops a slow subscriber with a clear reason", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const hub = yield* PubSub.make()
      const slow = yield* system.spawn(listener([]), { name: "slow" })
      yield* system.suspend(slow)
      yield* PubSub.subscribe(hub, "t", slow, { bufferSize: 2, overflow: "disconnect" })
      for (let i = 0; i < 3; i++) yield* PubSub.broadcast(hub, "t", i)
      const reason = yield* system.awaitExit(slow)
      expect(reason._tag).toBe("Shutdown")
      expect(ExitReason.format(reason)).toContain("slow consumer")
      expect((yield* PubSub.stats(hub)).disconnected).toBe(1)
    }))

  it.scoped("backpressure makes the publisher wait until the subscriber has room; nothing is lost", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const hub = yield* PubSub.make()
      const seen: Array<unknown> = []
      const careful = yield* system.spawn(listener(seen), { name: "careful" })
      yield* system.suspend(careful)
      yield* PubSub.subscribe(hub, "audit", careful, { bufferSize: 2, overflow: "backpressure" })
      const publisher = yield* Effect.fork(Effect.forEach([1, 2, 3, 4], (i) => PubSub.broadcast(hub, "audit", i)))
      yield* TestKit.tick
      expect(publisher.unsafePoll()).toBeNull()
      yield* system.resume(careful)
      yield* TestKit.awaitUntil(Effect.sync(() => seen.length === 4))
      expect(seen).toEqual([1, 2, 3, 4])
    }))

  it.scoped("an Encoded payload is encoded once for every subscriber", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const hub = yield* PubSub.make()
      let encodes = 0
      const frames: Array<string> = []
      const socketLike = Actor.make<Encoded.Encoded<{ x: number }>, null>({
        name: "socket",
        init: () => null,
        receive: (state, message) => {
          frames.push(message.get("json", (v) => (encodes++, JSON.stringify(v))))
          return state
        }
      })
      for (let i = 0; i < 50; i++) yield* PubSub.subscribe(hub, "canvas", yield* system.spawn(socketLike))
      yield* PubSub.broadcast(hub, "canvas", Encoded.make({ x: 1 }))
      yield* TestKit.awaitUntil(Effect.sync(() => frames.length === 50))
      expect(encodes).toBe(1)
      expect(new Set(frames)).toEqual(new Set(['{"x":1}']))
    }))

  it.scoped("a sliding queue subscriber keeps the newest messages, a dropping one the oldest", () =>
    Effect.gen(function*() {
      const hub = yield* PubSub.make()
      const sliding = yield* PubSub.subscribeQueue<number>(hub, "t", { bufferSize: 3, overflow: "sliding" })
      const dropping = yield* PubSub.subscribeQueue<number>(hub, "t", { bufferSize: 3, overflow: "dropping" })
      for (let i = 1; i <= 6; i++) yield* PubSub.broadcast(hub, "t", i)
      expect(yield* Queue.takeAll(sliding)).toEqual(Chunk.make(4, 5, 6))
      expect(yield* Queue.takeAll(dropping)).toEqual(Chunk.make(1, 2, 3))
      expect((yield* PubSub.stats(hub)).dropped).toBe(6)
    }))

  it.scoped("queue subscribers, and a backplane joining two hubs", () =>
    Effect.gen(function*() {
      const backplane = Backplane.memory()
      const east = yield* PubSub.make({ nodeId: "east", backplane })
      const west = yield* PubSub.make({ nodeId: "west", backplane })
      const atEast = yield* PubSub.subscribeQueue<string>(east, "alarms")
      const atWest = yield* PubSub.subscribeQueue<string>(west, "alarms")
      yield* PubSub.broadcast(east, "alarms", "robot 7 silent")
      expect(yield* Queue.take(atEast)).toBe("robot 7 silent")
      expect(yield* Queue.take(atWest)).toBe("robot 7 silent")
      yield* TestKit.tick
      expect(yield* Queue.size(atEast)).toBe(0)
    }))

  it.scoped("a hub watches a topic on the backplane while it has local subscribers, and only then hears it", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const backplane = Backplane.memory()
      const east = yield* PubSub.make({ nodeId: "east", backplane })
      const west = yield* PubSub.make({ nodeId: "west", backplane })
      expect(backplane.watchers("fleet")).toBe(0)
      const seen: Array<unknown> = []
      const a = yield* system.spawn(listener(seen), { name: "a" })
      const b = yield* system.spawn(listener([]), { name: "b" })
      const subA = yield* PubSub.subscribe(west, "fleet", a)
      yield* PubSub.subscribe(west, "fleet", b)
      expect(backplane.watchers("fleet")).toBe(1)
      yield* PubSub.broadcast(east, "fleet", 1)
      yield* TestKit.awaitUntil(Effect.sync(() => seen.length === 1))
      yield* subA.unsubscribe
      expect(backplane.watchers("fleet")).toBe(1)
      yield* system.stop(b)
      yield* TestKit.awaitUntil(Effect.sync(() => backplane.watchers("fleet") === 0))
      yield* Effect.scoped(Effect.gen(function*() {
        yield* PubSub.subscribeQueue(east, "fleet")
        expect(backplane.watchers("fleet")).toBe(1)
      }))
      expect(backplane.watchers("fleet")).toBe(0)
    }))

  it.scoped("a hub that shares some topics keeps the others on its node, and never watches them", () =>
    Effect.gen(function*() {
      const backplane = Backplane.memory()
      const shares = (topic: string) => topic === "views"
      const east = yield* PubSub.make({ nodeId: "east", backplane, shares })
      const west = yield* PubSub.make({ nodeId: "west", backplane, shares })
      const views = yield* PubSub.subscribeQueue<string>(west, "views")
      const samples = yield* PubSub.subscribeQueue<string>(west, "samples")
      const localSamples = yield* PubSub.subscribeQueue<string>(east, "samples")
      expect(backplane.watchers("views")).toBe(1)
      expect(backplane.watchers("samples")).toBe(0)
      yield* PubSub.broadcast(east, "samples", "raw")
      PubSub.unsafeBroadcast(east, "samples", "raw again")
      yield* PubSub.broadcast(east, "views", "view")
      expect(yield* Queue.take(views)).toBe("view")
      expect(yield* Queue.takeAll(localSamples)).toEqual(Chunk.make("raw", "raw again"))
      yield* TestKit.tick
      expect(yield* Queue.size(samples)).toBe(0)
    }))

  it.scoped("resync signals reach the handlers of their topic on every hub, with their reason", () =>
    Effect.gen(function*() {
      const backplane = Backplane.memory()
      const east = yield* PubSub.make({ nodeId: "east", backplane })
      const west = yield* PubSub.make({ nodeId: "west", backplane })
      const signals: Array<string> = []
      yield* PubSub.onResync(east, "fleet", (s) => Effect.sync(() => signals.push(`east ${s.topic} ${s.reason}`)))
      yield* PubSub.onResync(west, "fleet", (s) => Effect.sync(() => signals.push(`west ${s.topic} ${s.reason}`)))
      yield* Effect.scoped(PubSub.onResync(west, "canvas", () => Effect.sync(() => signals.push("canvas, gone"))))
      backplane.signal(Backplane.resyncSignal("fleet", "gap"))
      backplane.signal(Backplane.resyncSignal("canvas", "gap"))
      yield* PubSub.resync(west, "fleet")
      yield* TestKit.awaitUntil(Effect.sync(() => signals.length === 4))
      expect(signals.sort()).toEqual(["east fleet gap", "east fleet requested", "west fleet gap", "west fleet requested"])
      const alone = yield* PubSub.make()
      let asked = 0
      yield* PubSub.onResync(alone, "fleet", () => Effect.sync(() => asked++))
      yield* PubSub.resync(alone, "fleet")
      yield* TestKit.awaitUntil(Effect.sync(() => asked === 1))
    }))
})
