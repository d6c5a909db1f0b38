import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import { Actor, type ActorSystem, ExitReason, TestKit } from "../../src/actors/index.js"
import { Backoff, ChildSpec, Supervisor } from "../../src/supervisors/index.js"
import { worker } from "../actors/fixtures.js"

const abc = (strategy: Supervisor.Strategy, log?: Array<string>) =>
  Supervisor.make({
    strategy,
    children: ["a", "b", "c"].map((id) => ChildSpec.make(id, worker(log)))
  })

const idOf = (system: ActorSystem.ActorSystem, name: string) => Effect.map(TestKit.findActor(system, name), (ref) => ref.id)
const idsOf = (system: ActorSystem.ActorSystem, ...names: Array<string>) => Effect.forEach(names, (n) => idOf(system, n))

describe("Supervisor", () => {
  it.scoped("starts children in order and stops them in reverse order", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const system = yield* TestKit.system()
      const sup = yield* system.spawn(abc("one_for_one", log), { name: "sup" })
      expect(yield* system.render).toBe(TestKit.dedent(`
        sup (one_for_one)
        ├─ a running mailbox=0 restarts=0
        ├─ b running mailbox=0 restarts=0
        └─ c running mailbox=0 restarts=0`))
      yield* system.stop(sup)
      expect(log).toEqual([
        "init a", "init b", "init c",
        "terminate c shutdown", "terminate b shutdown", "terminate a shutdown"
      ])
    }))

  it.scoped("one_for_one restarts only the child that crashed", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      yield* system.spawn(abc("one_for_one"), { name: "sup" })
      const [a, b, c] = yield* idsOf(system, "a", "b", "c")
      yield* TestKit.crashChild(system, "b")
      yield* TestKit.awaitTree(system, `
        sup (one_for_one)
        ├─ a running mailbox=0 restarts=0
        ├─ b running mailbox=0 restarts=1
        └─ c running mailbox=0 restarts=0`)
      const after = yield* idsOf(system, "a", "b", "c")
      expect(after[0]).toBe(a)
      expect(after[1]).not.toBe(b)
      expect(after[2]).toBe(c)
    }))

  it.scoped("one_for_all restarts every sibling, stopping them youngest first and starting them in order", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const system = yield* TestKit.system()
      yield* system.spawn(abc("one_for_all", log), { name: "sup" })
      const before = yield* idsOf(system, "a", "b", "c")
      log.length = 0
      yield* TestKit.crashChild(system, "b")
      yield* TestKit.awaitTree(system, `
        sup (one_for_all)
        ├─ a running mailbox=0 restarts=1
        ├─ b running mailbox=0 restarts=1
        └─ c running mailbox=0 restarts=1`)
      const after = yield* idsOf(system, "a", "b", "c")
      after.forEach((id, i) => expect(id).not.toBe(before[i]))
      expect(log).toEqual([
        "terminate b failure(InjectedCrash: injected crash: chaos)",
        "terminate c shutdown", "terminate a shutdown",
        "init a", "init b", "init c"
      ])
    }))

  it.scoped("rest_for_one restarts the crashed child and the younger siblings only", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      yield* system.spawn(abc("rest_for_one"), { name: "sup" })
      const before = yield* idsOf(system, "a", "b", "c")
      yield* TestKit.crashChild(system, "b")
      yield* TestKit.awaitTree(system, `
        sup (rest_for_one)
        ├─ a running mailbox=0 restarts=0
        ├─ b running mailbox=0 restarts=1
        └─ c running mailbox=0 restarts=1`)
      const after = yield* idsOf(system, "a", "b", "c")
      expect(after[0]).toBe(before[0])
      expect(after[1]).not.toBe(before[1])
      expect(after[2]).not.toBe(before[2])
    }))

  it.scoped("restart types: a transient child that finishes normally stays down, a temporary one is never restarted", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      yield* system.spawn(
        Supervisor.make({
          children: [
            ChildSpec.make("transient", worker(), { restart: "transient" }),
            ChildSpec.make("temporary", worker(), { restart: "temporary" }),
            ChildSpec.make("permanent", worker())
          ]
        }),
        { name: "sup" }
      )
      const transient = yield* TestKit.findActor(system, "transient")
      yield* transient.tell({ _tag: "Finish" })
      yield* TestKit.crashChild(system, "temporary")
      const permanent = yield* TestKit.findActor(system, "permanent")
      yield* permanent.tell({ _tag: "Finish" })
      yield* TestKit.awaitTree(system, `
        sup (one_for_one)
        ├─ transient stopped restarts=0
        └─ permanent running mailbox=0 restarts=1`)
      yield* TestKit.crashChild(system, "permanent")
      yield* TestKit.awaitTree(system, `
        sup (one_for_one)
        ├─ transient stopped restarts=0
        └─ permanent running mailbox=0 restarts=2`)
    }))

  it.scoped("a transient child that crashes is restarted", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      yield* system.spawn(
        Supervisor.make({ children: [ChildSpec.make("t", worker(), { restart: "transient" })] }),
        { name: "sup" }
      )
      yield* TestKit.crashChild(system, "t")
      yield* TestKit.awaitTree(system, `
        sup (one_for_one)
        └─ t running mailbox=0 restarts=1`)
    }))

  it.scoped("exceeding the restart intensity escalates: the supervisor fails and its own supervisor decides, two levels up", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const mid = Supervisor.make({
        maxRestarts: 2,
        period: "5 seconds",
        children: [ChildSpec.make("flaky", worker()), ChildSpec.make("steady", worker())]
      })
      const root = yield* system.spawn(
        Supervisor.make({ maxRestarts: 1, period: "5 seconds", children: [ChildSpec.make("mid", mid)] }),
        { name: "root" }
      )
      for (let i = 1; i <= 2; i++) {
        yield* TestKit.crashChild(system, "flaky")
        yield* TestKit.awaitTree(system, `
          root (one_for_one)
          └─ mid (one_for_one)
             ├─ flaky running mailbox=0 restarts=${i}
             └─ steady running mailbox=0 restarts=0`)
      }
      // A third crash within the period: `mid` gives up, and `root` restarts it with fresh children.
      yield* TestKit.crashChild(system, "flaky")
      yield* TestKit.awaitTree(system, `
        root (one_for_one)
        └─ mid (one_for_one) restarts=1
           ├─ flaky running mailbox=0 restarts=0
           └─ steady running mailbox=0 restarts=0`)
      const rootChildren = yield* Supervisor.whichChildren(root as Supervisor.SupervisorRef)
      expect(rootChildren.map((c) => [c.id, c.restarts])).toEqual([["mid", 1]])
      // The same again: now `root` exceeds its own intensity and fails; it is top-level, so the system sees it go.
      for (let i = 0; i < 3; i++) yield* TestKit.crashChild(system, "flaky")
      const reason = yield* system.awaitExit(root)
      expect(reason._tag).toBe("Failure")
      expect(ExitReason.format(reason)).toContain("MaxRestartsExceeded")
      expect(yield* system.render).toBe("")
    }))

  it.scoped("a crash in init during a restart counts like any other crash", () =>
    Effect.gen(function*() {
      let starts = 0
      const fragile = Actor.make({
        name: "fragile",
        init: () => {
          if (++starts > 1) throw new Error("cannot start again")
          return 0
        },
        receive: (s: number, _: unknown) => s
      })
      const system = yield* TestKit.system()
      const sup = yield* system.spawn(
        Supervisor.make({ maxRestarts: 3, children: [ChildSpec.make("fragile", fragile)] }),
        { name: "sup" }
      )
      yield* TestKit.crashChild(system, "fragile")
      const reason = yield* system.awaitExit(sup)
      expect(ExitReason.format(reason)).toContain("MaxRestartsExceeded")
      expect(starts).toBe(4)
    }))

  it.scoped("backoff: restarts wait 100, 200, 400 ms under TestClock, and the delay resets after a stable period", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      yield* system.spawn(
        Supervisor.make({
          maxRestarts: 100,
          backoff: Backoff.exponential({ min: "100 millis", max: "1 second", jitter: 0, resetAfter: "2 seconds" }),
          children: [ChildSpec.make("w", worker())]
        }),
        { name: "sup" }
      )
      const waitsFor = (millis: number, restarts: number) =>
        Effect.gen(function*() {
          yield* TestKit.crashChild(system, "w")
          yield* TestKit.awaitTree(system, `
            sup (one_for_one)
            └─ w restarting restarts=${restarts - 1}`)
          yield* TestClock.adjust(millis - 1)
          yield* TestKit.tick
          expect(yield* system.render).toContain("restarting")
          yield* TestClock.adjust(1)
          yield* TestKit.awaitTree(system, `
            sup (one_for_one)
            └─ w running mailbox=0 restarts=${restarts}`)
        })
      yield* waitsFor(100, 1)
      yield* waitsFor(200, 2)
      yield* waitsFor(400, 3)
      yield* TestClock.adjust("3 seconds")
      yield* waitsFor(100, 4)
    }))

  it.scoped("children are stopped in reverse order when the supervisor stops, a stubborn one killed after its shutdown timeout", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const system = yield* TestKit.system()
      const sup = yield* system.spawn(
        Supervisor.make({
          children: [
            ChildSpec.make("a", worker(log)),
            ChildSpec.make("stubborn", worker(log), { shutdown: "1 second" })
          ]
        }),
        { name: "sup" }
      )
      const stubborn = yield* TestKit.findActor(system, "stubborn")
      yield* stubborn.tell({ _tag: "Sleep", millis: 60_000 })
      yield* TestKit.tick
      const stopping = yield* Effect.fork(system.stop(sup))
      yield* TestKit.tick
      expect(log).toEqual(["init a", "init stubborn"])
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(stopping)
      expect(log).toEqual(["init a", "init stubborn", "terminate a shutdown"])
    }))
})
