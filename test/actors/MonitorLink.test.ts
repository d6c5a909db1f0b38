import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Actor, ActorRef, ExitReason, Signal, TestKit } from "../../src/actors/index.js"
import { worker } from "./fixtures.js"

type PeerMsg =
  | { readonly _tag: "Link"; readonly to: ActorRef.ActorRef<never> }
  | { readonly _tag: "Crash" }

/** An actor that links to whoever it is told to, and records the signals it traps. */
const peer = (signals: Array<string>) =>
  Actor.make<PeerMsg, null>({
    name: "peer",
    init: () => null,
    receive: (state, msg, ctx) => {
      if (msg._tag === "Crash") throw new Error("boom")
      ctx.link(msg.to)
      return state
    },
    onSignal: (state, signal: Signal.Signal) => {
      signals.push(`${signal._tag} ${ExitReason.format(signal.reason)}`)
      return state
    }
  })

describe("monitors and links", () => {
  it.scoped("a monitor delivers exactly one Down with the exit reason", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const probe = yield* TestKit.probe(system)
      const w = yield* system.spawn(worker(), { name: "w" })
      probe.watch(w)
      yield* w.tell({ _tag: "Crash" })
      const down = yield* probe.expectDown()
      expect(down.actor.id).toBe(w.id)
      expect(ExitReason.format(down.reason)).toContain("crash requested")
      yield* probe.expectNoMessage()
    }))

  it.scoped("monitoring an actor that is already dead delivers its Down at once", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const probe = yield* TestKit.probe(system)
      const w = yield* system.spawn(worker(), { name: "w" })
      yield* w.tell({ _tag: "Finish" })
      yield* system.awaitExit(w)
      probe.watch(w)
      const down = yield* probe.expectDown()
      expect(down.reason).toEqual(ExitReason.normal)
    }))

  it.scoped("a graceful stop is reported as shutdown, not as a failure", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const probe = yield* TestKit.probe(system)
      const w = yield* system.spawn(worker(), { name: "w" })
      probe.watch(w)
      yield* system.stop(w)
      const down = yield* probe.expectDown()
      expect(down.reason._tag).toBe("Shutdown")
      expect(ExitReason.isAbnormal(down.reason)).toBe(false)
    }))

  it.scoped("a link propagates an abnormal exit both ways, but not a normal one", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const a = yield* system.spawn(peer([]), { name: "a" })
      const b = yield* system.spawn(peer([]), { name: "b" })
      yield* a.tell({ _tag: "Link", to: b })
      yield* TestKit.tick
      yield* b.tell({ _tag: "Crash" })
      expect((yield* system.awaitExit(a))._tag).toBe("Failure")
      expect(yield* system.render).toBe("")

      const c = yield* system.spawn(peer([]), { name: "c" })
      const d = yield* system.spawn(worker(), { name: "d" })
      yield* c.tell({ _tag: "Link", to: d })
      yield* TestKit.tick
      yield* d.tell({ _tag: "Finish" })
      yield* system.awaitExit(d)
      yield* TestKit.tick
      expect(yield* system.render).toBe("c running mailbox=0 restarts=0")
    }))

  it.scoped("an actor that traps exits receives the linked exit as a signal and lives on", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const signals: Array<string> = []
      const trapper = yield* system.spawn(peer(signals), { name: "trapper", trapExits: true })
      const victim = yield* system.spawn(peer([]), { name: "victim" })
      yield* trapper.tell({ _tag: "Link", to: victim })
      yield* TestKit.tick
      yield* system.crash(victim, "chaos monkey")
      yield* TestKit.awaitUntil(Effect.sync(() => signals.length === 1))
      expect(signals).toEqual(["ExitSignal failure(InjectedCrash: injected crash: chaos monkey)"])
      expect(yield* system.render).toBe("trapper running mailbox=0 restarts=0")
    }))

  it.scoped("a child's crash takes its parent down unless the parent traps exits", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const parent = Actor.make<"spawn", null>({
        name: "parent",
        init: () => null,
        receive: (state, _msg, ctx) => Effect.as(Effect.orDie(ctx.spawn(worker(), { name: "child" })), state)
      })
      const p = yield* system.spawn(parent, { name: "p" })
      yield* p.tell("spawn")
      yield* TestKit.awaitTree(system, `
        p running mailbox=0 restarts=0
        └─ child running mailbox=0 restarts=0`)
      yield* TestKit.crashChild(system, "child")
      expect((yield* system.awaitExit(p))._tag).toBe("Failure")
    }))
})
