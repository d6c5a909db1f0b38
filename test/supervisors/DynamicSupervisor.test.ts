import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, TestClock } from "effect"
import { Registry, TestKit } from "../../src/actors/index.js"
import { Backoff, ChildSpec, DynamicSupervisor } from "../../src/supervisors/index.js"
import { worker, type WorkerMsg } from "../actors/fixtures.js"

describe("DynamicSupervisor", () => {
  it.scoped("starts children on demand and refuses the one past maxChildren with MaxChildren", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const names = yield* Registry.make<string, WorkerMsg>({ keys: "unique" })
      const sessions = yield* system.spawn(DynamicSupervisor.make({ maxChildren: 2 }), { name: "sessions" })
      const session = (id: number) => ChildSpec.make("session", worker(), { via: Registry.via(names, `session:${id}`) })
      const first = yield* DynamicSupervisor.startChild(sessions, session(1))
      yield* DynamicSupervisor.startChild(sessions, session(2))
      const refused = yield* Effect.flip(DynamicSupervisor.startChild(sessions, session(3)))
      expect(refused._tag).toBe("MaxChildren")
      expect(yield* system.render).toBe(TestKit.dedent(`
        sessions (dynamic, 2/2)
        ├─ session:1 running mailbox=0 restarts=0
        └─ session:2 running mailbox=0 restarts=0`))
      // Room again once a child goes: shedding load is temporary.
      yield* DynamicSupervisor.terminateChild(sessions, first)
      yield* DynamicSupervisor.startChild(sessions, session(3))
      expect(yield* DynamicSupervisor.countChildren(sessions)).toEqual({ specs: 2, active: 2, supervisors: 0, workers: 2 })
      expect((yield* DynamicSupervisor.whichChildren(sessions)).map((c) => Option.map(c.ref, (r) => r.name))).toEqual([
        Option.some("session:2"),
        Option.some("session:3")
      ])
      expect(Registry.all(names).map((e) => e.key).sort()).toEqual(["session:2", "session:3"])
    }))

  it.scoped("restarts a crashed permanent child; a temporary one is forgotten; terminateChild is not a crash", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const links = yield* system.spawn(DynamicSupervisor.make(), { name: "links" })
      yield* DynamicSupervisor.startChild(links, ChildSpec.make("robot:1", worker()))
      const temp = yield* DynamicSupervisor.startChild(links, ChildSpec.make("probe", worker(), { restart: "temporary" }))
      const kept = yield* DynamicSupervisor.startChild(links, ChildSpec.make("robot:2", worker()))
      yield* TestKit.crashChild(system, "robot:1")
      yield* system.crash(temp)
      yield* DynamicSupervisor.terminateChild(links, kept)
      yield* TestKit.awaitTree(system, `
        links (dynamic, 1/∞)
        └─ robot:1 running mailbox=0 restarts=1`)
      const missing = yield* Effect.flip(DynamicSupervisor.terminateChild(links, kept))
      expect(missing._tag).toBe("ChildNotFound")
    }))

  it.scoped("a child whose init fails is not kept, and the caller gets InitFailed", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const sup = yield* system.spawn(DynamicSupervisor.make({ maxChildren: 1 }), { name: "sup" })
      const broken = { ...worker(), init: () => Effect.fail("no robot at that address") }
      const error = yield* Effect.flip(DynamicSupervisor.startChild(sup, ChildSpec.make("robot", broken)))
      expect(error._tag).toBe("InitFailed")
      expect(yield* DynamicSupervisor.countChildren(sup)).toMatchObject({ specs: 0, active: 0 })
      yield* DynamicSupervisor.startChild(sup, ChildSpec.make("robot", worker()))
    }))

  it.scoped("a child whose name was taken while it waited to restart is forgotten, not kept as a stopped placeholder", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const names = yield* Registry.make<string, WorkerMsg>({ keys: "unique" })
      const links = yield* system.spawn(
        DynamicSupervisor.make({ backoff: Backoff.exponential({ min: "1 second", max: "1 second", jitter: 0 }) }),
        { name: "links" }
      )
      const first = yield* DynamicSupervisor.startChild(links, ChildSpec.make("agv:7", worker(), { via: Registry.via(names, "agv:7") }))
      yield* system.crash(first)
      yield* TestKit.awaitTree(system, `
        links (dynamic, 1/∞)
        └─ agv:7 restarting restarts=0`)
      // Discovery starts the AGV again before the backoff ends.
      yield* DynamicSupervisor.startChild(links, ChildSpec.make("agv:7", worker(), { via: Registry.via(names, "agv:7") }))
      yield* TestClock.adjust("1 second")
      yield* TestKit.awaitTree(system, `
        links (dynamic, 1/∞)
        └─ agv:7 running mailbox=0 restarts=0`)
      expect(yield* DynamicSupervisor.countChildren(links)).toMatchObject({ specs: 1, active: 1 })
    }))
})
