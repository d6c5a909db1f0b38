import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { Registry, TestKit } from "../../src/actors/index.js"
import { ChildSpec, Supervisor } from "../../src/supervisors/index.js"
import { get, worker, type WorkerMsg } from "./fixtures.js"

describe("Registry", () => {
  it.scoped("a unique key holds one actor; a second register is refused with AlreadyRegistered", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const names = yield* Registry.make<string, WorkerMsg>({ keys: "unique" })
      const a = yield* system.spawn(worker(), { name: "a" })
      const b = yield* system.spawn(worker(), { name: "b" })
      yield* Registry.register(names, "robot:7", a)
      const refused = yield* Effect.flip(Registry.register(names, "robot:7", b))
      expect(refused._tag).toBe("AlreadyRegistered")
      expect(Option.map(yield* Registry.whereis(names, "robot:7"), (ref) => ref.id)).toEqual(Option.some(a.id))
      yield* Registry.unregister(names, "robot:7")
      yield* Registry.register(names, "robot:7", b)
      expect(yield* Registry.keysOf(names, b)).toEqual(["robot:7"])
    }))

  it.scoped("an entry disappears when its actor crashes, without the actor unregistering", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const names = yield* Registry.make<string, WorkerMsg>({ keys: "unique" })
      const a = yield* system.spawn(worker(), { name: "a" })
      yield* Registry.register(names, "session:1", a)
      yield* system.crash(a)
      yield* system.awaitExit(a)
      expect(yield* Registry.lookup(names, "session:1")).toEqual([])
      expect(Registry.count(names)).toBe(0)
    }))

  it.scoped("duplicate keys: dispatch reaches every entry, and a dead one drops out", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const rooms = yield* Registry.make<string, WorkerMsg, string>({ keys: "duplicate" })
      const members = yield* Effect.forEach(["a", "b", "c"], (name) => system.spawn(worker(), { name }))
      yield* Effect.forEach(members, (ref) => Registry.register(rooms, "room:lobby", ref, ref.name ?? ""))
      yield* Registry.dispatch(rooms, "room:lobby", (entries) => {
        for (const entry of entries) entry.ref.unsafeTell({ _tag: "Add", n: 5 })
      })
      expect(yield* Effect.forEach(members, (ref) => ref.ask(get))).toEqual([5, 5, 5])
      yield* system.stop(members[1])
      expect((yield* Registry.lookup(rooms, "room:lobby")).map((e) => e.value)).toEqual(["a", "c"])
      expect(yield* Registry.send(rooms, "room:lobby", { _tag: "Add", n: 1 })).toBe(2)
    }))

  it.scoped("via: a supervised child is registered under its name at every restart", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const names = yield* Registry.make<string, WorkerMsg>({ keys: "unique" })
      yield* system.spawn(
        Supervisor.make({ children: [ChildSpec.make("store", worker(), { via: Registry.via(names, "store") })] }),
        { name: "root" }
      )
      const first = Option.getOrThrow(yield* Registry.whereis(names, "store"))
      yield* system.crash(first)
      yield* TestKit.awaitUntil(Effect.map(Registry.whereis(names, "store"), (o) => Option.isSome(o) && o.value.id !== first.id))
      yield* TestKit.awaitTree(system, `
        root (one_for_one)
        └─ store running mailbox=0 restarts=1`)
      expect(Registry.count(names)).toBe(1)
    }))

  it.scoped("spawning under a taken via name fails with AlreadyRegistered", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const names = yield* Registry.make<string, WorkerMsg>({ keys: "unique" })
      yield* system.spawn(worker(), { via: Registry.via(names, "only") })
      const error = yield* Effect.flip(system.spawn(worker(), { via: Registry.via(names, "only") }))
      expect(error._tag).toBe("AlreadyRegistered")
      expect(yield* system.render).toBe("only running mailbox=0 restarts=0")
    }))
})
