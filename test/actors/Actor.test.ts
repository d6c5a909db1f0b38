import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, Stream, TestClock } from "effect"
import { Actor, type ActorRef, type ActorSystem, ExitReason, TestKit } from "../../src/actors/index.js"
import { get, ping, worker, type WorkerMsg } from "./fixtures.js"

describe("Actor", () => {
  it.scoped("handles mail in order and answers asks", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const counter = yield* system.spawn(worker(), { name: "counter" })
      yield* counter.tell({ _tag: "Add", n: 2 })
      yield* counter.tell({ _tag: "Add", n: 3 })
      expect(yield* counter.ask(get)).toBe(5)
      expect(yield* system.render).toBe("counter running mailbox=0 restarts=0")
    }))

  it.scoped("an ask without a reply fails with AskTimeout when the clock passes the timeout", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const silent = yield* system.spawn(Actor.make({ name: "silent", receive: (s: undefined, _: { reply: unknown }) => s }))
      const fiber = yield* Effect.fork(silent.ask((reply) => ({ reply }), { timeout: "2 seconds" }))
      yield* TestKit.tick
      yield* TestClock.adjust("1999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error._tag).toBe("AskTimeout")
    }))

  it.scoped("a reply to an interrupted asker is no longer pending, and answering it later is harmless", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const replies: Array<ActorRef.Reply<string>> = []
      const holder = Actor.make<ActorRef.Reply<string>, null>({
        name: "holder",
        init: () => null,
        receive: (state, reply) => {
          replies.push(reply)
          return state
        }
      })
      const h = yield* system.spawn(holder, { name: "h" })
      const asking = yield* Effect.fork(h.ask((reply) => reply, { timeout: "1 minute" }))
      yield* TestKit.tick
      expect(replies[0].isPending()).toBe(true)
      yield* Fiber.interrupt(asking)
      expect(replies[0].isPending()).toBe(false)
      replies[0].succeed("too late")
      expect(yield* system.render).toBe("h running mailbox=0 restarts=0")
    }))

  it.scoped("ask to a dead actor fails at once with ActorStopped; its mail goes to dead letters", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const w = yield* system.spawn(worker(), { name: "w" })
      yield* system.stop(w)
      const error = yield* Effect.flip(w.ask(ping))
      expect(error._tag).toBe("ActorStopped")
      yield* w.tell({ _tag: "Add", n: 1 })
      const dead = yield* system.deadLetters
      expect(dead.total).toBe(1)
      expect(dead.recent.map((d) => [d.actor, d.message, d.reason])).toEqual([["w", { _tag: "Add", n: 1 }, "stopped"]])
    }))

  it.scoped("an actor that dies with asks in its mailbox fails them with ActorStopped", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const w = yield* system.spawn(worker(), { name: "w" })
      yield* system.suspend(w)
      const pending = yield* Effect.fork(w.ask(ping))
      yield* TestKit.tick
      yield* system.crash(w)
      const error = yield* Effect.flip(Fiber.join(pending))
      expect(error._tag).toBe("ActorStopped")
    }))

  it.scoped("a full mailbox refuses with MailboxFull, or slides, by policy", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const strict = yield* system.spawn(worker(), { name: "strict", mailbox: { capacity: 2 } })
      yield* system.suspend(strict)
      yield* strict.tell({ _tag: "Add", n: 1 })
      yield* strict.tell({ _tag: "Add", n: 2 })
      const refused = yield* Effect.flip(strict.tell({ _tag: "Add", n: 4 }))
      expect(refused._tag).toBe("MailboxFull")
      yield* system.resume(strict)
      yield* TestKit.tick
      expect(yield* strict.ask(get)).toBe(3)

      const sliding = yield* system.spawn(worker(), {
        name: "sliding",
        mailbox: { capacity: 2, overflow: "dropOldest" }
      })
      yield* system.suspend(sliding)
      for (const n of [1, 2, 4]) yield* sliding.tell({ _tag: "Add", n })
      yield* system.resume(sliding)
      yield* TestKit.tick
      expect(yield* sliding.ask(get)).toBe(6)
    }))

  it.scoped("urgent mail overtakes 10,000 queued normal messages", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const seen: Array<string> = []
      const recorder = yield* system.spawn(
        Actor.make({
          name: "recorder",
          receive: (s: undefined, msg: string) => {
            seen.push(msg)
            return s
          }
        }),
        { name: "recorder", mailbox: { capacity: 20_000 } }
      )
      yield* system.suspend(recorder)
      for (let i = 0; i < 10_000; i++) recorder.unsafeTell(`telemetry ${i}`)
      yield* recorder.tellUrgent("EMERGENCY STOP")
      expect(yield* system.render).toBe("recorder suspended mailbox=10001 restarts=0")
      yield* system.resume(recorder)
      yield* TestKit.awaitUntil(Effect.sync(() => seen.length === 10_001))
      expect(seen[0]).toBe("EMERGENCY STOP")
      expect(seen[1]).toBe("telemetry 0")
      expect(seen[10_000]).toBe("telemetry 9999")
    }))

  it.scoped("an actor given urgent mail runs before a thousand busy actors ahead of it", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const log: Array<string> = []
      const recorder = (name: string) =>
        system.spawn(
          Actor.make({
            name,
            receive: (s: undefined, msg: string) => {
              log.push(`${name}: ${msg}`)
              return s
            }
          }),
          { name }
        )
      const busy: Array<ActorRef.ActorRef<string>> = []
      for (let i = 0; i < 1_000; i++) busy.push(yield* recorder(`robot-${i}`))
      const link = yield* recorder("link")
      // One synchronous burst, as a socket's data event delivers it: every actor is ready, in order.
      for (const ref of busy) for (let n = 0; n < 5; n++) ref.unsafeTell(`telemetry ${n}`)
      link.unsafeTell("telemetry 0")
      link.unsafeTellUrgent("EMERGENCY STOP")
      yield* TestKit.awaitUntil(Effect.sync(() => log.length === 5_002))
      expect(log[0]).toBe("link: EMERGENCY STOP")
      expect(log.indexOf("link: telemetry 0")).toBe(1)
      expect(log[2]).toBe("robot-0: telemetry 0")
    }))

  it.scoped("an Effect handler keeps the actor busy; mail waits for it", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const w = yield* system.spawn(worker(), { name: "w" })
      yield* w.tell({ _tag: "Sleep", millis: 1_000 })
      yield* w.tell({ _tag: "Add", n: 7 })
      const answer = yield* Effect.fork(w.ask(get))
      yield* TestKit.tick
      expect(answer.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(answer)).toBe(7)
    }))

  it.scoped("a crash in init fails the spawn with InitFailed", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const broken = Actor.make({
        name: "broken",
        init: () => Effect.fail("no config"),
        receive: (s: undefined, _: never) => s
      })
      const error = yield* Effect.flip(system.spawn(broken))
      expect(error._tag).toBe("InitFailed")
      expect(error._tag === "InitFailed" && ExitReason.format(error.reason)).toContain("no config")
      expect(yield* system.render).toBe("")
    }))

  it.scoped("a crash in terminate makes the exit a failure", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const sloppy = Actor.make({
        name: "sloppy",
        receive: (s: undefined, _: never) => s,
        terminate: () => Effect.die(new Error("cleanup failed"))
      })
      const ref = yield* system.spawn(sloppy)
      const reason = yield* system.stop(ref)
      expect(reason._tag).toBe("Failure")
      expect(ExitReason.format(reason)).toContain("cleanup failed")
    }))

  it.scoped("resources acquired in init are released when the actor stops, whatever the reason", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const events: Array<string> = []
      const owner = Actor.make<WorkerMsg, number>({
        name: "owner",
        init: () =>
          Effect.acquireRelease(
            Effect.sync(() => events.push("socket opened")),
            () => Effect.sync(() => events.push("socket closed"))
          ).pipe(Effect.as(0)),
        receive: worker().receive
      })
      const ref = yield* system.spawn(owner, { name: "owner" })
      yield* ref.tell({ _tag: "Crash" })
      yield* system.awaitExit(ref)
      expect(events).toEqual(["socket opened", "socket closed"])
    }))

  it.scoped("getState, suspend/resume and trace show what an actor is doing", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const w = yield* system.spawn(worker(), { name: "w" })
      const traced = yield* Effect.fork(Stream.runCollect(Stream.take(system.trace(w), 2)))
      yield* TestKit.tick
      yield* w.tell({ _tag: "Add", n: 40 })
      yield* w.tell({ _tag: "Add", n: 2 })
      const messages = yield* Fiber.join(traced)
      expect(Chunk.toArray(messages)).toEqual([{ _tag: "Add", n: 40 }, { _tag: "Add", n: 2 }])
      expect(yield* system.getState(w)).toBe(42)
    }))

  it.scoped("stopping a parent stops its children youngest first, each running terminate", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const log: Array<string> = []
      const parent = Actor.make<string, null>({
        name: "parent",
        init: (ctx) =>
          Effect.gen(function*() {
            yield* ctx.spawn(worker(log), { name: "first" })
            yield* ctx.spawn(worker(log), { name: "second" })
            return null
          }),
        receive: (s) => s,
        terminate: () => void log.push("terminate parent")
      })
      const ref = yield* system.spawn(parent, { name: "parent" })
      expect(yield* system.render).toBe(TestKit.dedent(`
        parent running mailbox=0 restarts=0
        ├─ first running mailbox=0 restarts=0
        └─ second running mailbox=0 restarts=0`))
      yield* system.stop(ref)
      expect(log).toEqual([
        "init first",
        "init second",
        "terminate second shutdown",
        "terminate first shutdown",
        "terminate parent"
      ])
    }))

  it.scoped("a child that does not stop within its shutdown timeout is killed", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const stubborn = Actor.make({
        name: "stubborn",
        receive: (s: undefined, _: never) => s,
        terminate: () => Effect.never
      })
      const ref = yield* system.spawn(stubborn, { name: "stubborn", shutdown: "3 seconds" })
      const stopping = yield* Effect.fork(system.stop(ref))
      yield* TestKit.tick
      expect(yield* system.render).toBe("stubborn stopping mailbox=0 restarts=0")
      yield* TestClock.adjust("3 seconds")
      expect((yield* Fiber.join(stopping))._tag).toBe("Killed")
      expect((yield* system.stats).fibers).toBe(0)
    }))

  it.live("closing the system leaves no fiber behind, killing a busy actor after its shutdown timeout", () =>
    Effect.gen(function*() {
      let system: ActorSystem.ActorSystem | undefined
      yield* Effect.scoped(Effect.gen(function*() {
        system = yield* TestKit.system()
        const w = yield* system.spawn(worker(), { name: "w", shutdown: "50 millis" })
        yield* w.tell({ _tag: "Sleep", millis: 60_000 })
        yield* Effect.fork(w.ask(ping, { timeout: "1 minute" }))
        yield* TestKit.tick
        expect((yield* system.stats).fibers).toBeGreaterThan(0)
      }))
      const fibers = (yield* system!.stats).fibers
      expect(fibers).toBe(0)
    }))

  it.scoped("a crash is an exit value: Failure with its cause", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const w = yield* system.spawn(worker(), { name: "w" })
      yield* w.tell({ _tag: "Crash" })
      const reason = yield* system.awaitExit(w)
      expect(reason._tag).toBe("Failure")
      expect(ExitReason.format(reason)).toContain("crash requested")
      expect(Exit.isFailure(yield* Effect.exit(w.ask(ping)))).toBe(true)
    }))
})
