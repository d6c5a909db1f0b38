/**
 * Chaos at the kernel level: while a publisher broadcasts, random subscribers and the publisher
 * itself are crashed and killed. Afterwards the tree has its shape again, the registry and the
 * hub hold nothing of dead actors, every subscriber still receives, and closing the system
 * leaves no fiber behind.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { Actor, PubSub, Registry, TestKit } from "../../src/actors/index.js"
import { ChildSpec, DynamicSupervisor, Supervisor } from "../../src/supervisors/index.js"

const subscribers = 40
const chaosMillis = 1_500

/** Broadcasts a counter every millisecond from a timer in its scope. */
const Publisher = (hub: PubSub.PubSub) =>
  Actor.make<"tick", number>({
    name: "publisher",
    init: (ctx) =>
      Effect.gen(function*() {
        const timer = setInterval(() => ctx.self.unsafeTell("tick"), 1)
        yield* Scope.addFinalizer(ctx.scope, Effect.sync(() => clearInterval(timer)))
        return 0
      }),
    receive: (n) => Effect.as(PubSub.broadcast(hub, "news", n + 1), n + 1)
  })

/** Counts what it receives; registers and subscribes itself in `init`, as a session does. */
const Subscriber = (hub: PubSub.PubSub, names: Registry.Registry<string>, key: string, received: Map<string, number>) =>
  Actor.make<number, null>({
    name: "subscriber",
    init: (ctx) =>
      Effect.gen(function*() {
        yield* Effect.orDie(Registry.register(names, key, ctx.self))
        yield* PubSub.subscribe(hub, "news", ctx.self, { bufferSize: 64, overflow: "sliding" })
        return null
      }),
    receive: (state) => {
      received.set(key, (received.get(key) ?? 0) + 1)
      return state
    }
  })

const shape = (tree: string) => tree.replace(/ restarts=\d+/g, "")

describe("kernel chaos", () => {
  it.live("random crashes and kills of subscribers and the publisher: the tree heals and everyone still receives", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const system = yield* Scope.extend(TestKit.system(), scope)
      const hub = yield* Scope.extend(PubSub.make(), scope)
      const names = yield* Registry.make<string>({ keys: "unique" })
      const received = new Map<string, number>()
      yield* system.spawn(
        Supervisor.make({
          strategy: "one_for_one",
          maxRestarts: 100_000,
          period: "1 second",
          children: [
            ChildSpec.make("publisher", Publisher(hub)),
            ChildSpec.make("subscribers", DynamicSupervisor.make({ maxRestarts: 100_000, period: "1 second" }))
          ]
        }),
        { name: "root" }
      )
      const pool = yield* TestKit.findActor<DynamicSupervisor.DynamicSupervisorMessage>(system, "subscribers")
      for (let i = 0; i < subscribers; i++) {
        const key = `sub:${i}`
        yield* DynamicSupervisor.startChild(pool, ChildSpec.make(key, Subscriber(hub, names, key, received)))
      }
      const before = shape(yield* system.render)

      let crashes = 0
      const deadline = Date.now() + chaosMillis
      while (Date.now() < deadline) {
        const victim = Math.random() < 0.1 ? "publisher" : `sub:${Math.floor(Math.random() * subscribers)}`
        const found = yield* Effect.either(TestKit.findActor(system, victim))
        if (found._tag === "Right") {
          yield* Math.random() < 0.7 ? system.crash(found.right, "chaos") : system.kill(found.right)
          crashes++
        }
        yield* Effect.sleep("3 millis")
      }
      expect(crashes).toBeGreaterThan(50)

      yield* TestKit.awaitUntil(Effect.map(system.render, (tree) => shape(tree) === before), {
        describe: system.render,
        waitedFor: "the tree to heal"
      })
      for (const entry of Registry.all(names)) expect(entry.ref.isAlive()).toBe(true)
      for (const ref of PubSub.subscribers(hub)) expect(ref.isAlive()).toBe(true)
      expect(Registry.count(names)).toBe(subscribers)
      expect(PubSub.subscribers(hub, "news").length).toBe(subscribers)

      const snapshot = new Map(received)
      yield* TestKit.awaitUntil(
        Effect.sync(() => [...Array(subscribers).keys()].every((i) => (received.get(`sub:${i}`) ?? 0) > (snapshot.get(`sub:${i}`) ?? 0))),
        { waitedFor: "every subscriber to receive again" }
      )

      yield* Scope.close(scope, Exit.void)
      expect((yield* system.stats).fibers).toBe(0)
      expect(Registry.count(names)).toBe(0)
    }))
})
