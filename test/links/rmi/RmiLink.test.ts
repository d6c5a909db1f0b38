import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Queue, Stream } from "effect"
import { ExitReason, PubSub, TestKit } from "../../../src/actors/index.js"
import * as LinkEvent from "../../../src/links/LinkEvent.js"
import * as SampleColumns from "../../../src/links/SampleColumns.js"
import { ErrorId } from "../../../src/links/rmi/RmiErrorCode.js"
import * as ArmSample from "../../../src/links/rmi/ArmSample.js"
import * as RmiLink from "../../../src/links/rmi/RmiLink.js"
import * as RmiPacket from "../../../src/links/rmi/RmiPacket.js"
import * as RmiSimulator from "../../../src/links/rmi/RmiSimulator.js"
import { Backoff, ChildSpec, DynamicSupervisor } from "../../../src/supervisors/index.js"
import { next } from "../support/nextEvent.js"

/** A straight move of `X` mm along X at `Speed` mm/s. */
const nudge = (X: number, Speed = 2000): RmiPacket.InstructionBody => ({
  Instruction: "FRC_LinearRelative",
  Configuration: RmiPacket.DefaultConfiguration,
  Position: { X, Y: 0, Z: 0, W: 0, P: 0, R: 0 },
  SpeedType: "mmSec",
  Speed,
  TermType: "FINE",
  TermValue: 1
})

/** A simulator, a hub, a queue of the robot's link events, and an actor system. */
const setup = (simulatorOptions?: RmiSimulator.RmiSimulatorOptions) =>
  Effect.gen(function*() {
    const sim = yield* RmiSimulator.make({ port: 0, timeScale: 5, ...simulatorOptions })
    const hub = yield* PubSub.make()
    const events = yield* PubSub.subscribeQueue<LinkEvent.LinkEvent>(hub, LinkEvent.robotTopic("arm-1"), {
      bufferSize: 100_000
    })
    const system = yield* TestKit.system()
    const options: RmiLink.RmiLinkOptions = { id: "arm-1", host: "127.0.0.1", port: sim.port, hub, pollHz: 50 }
    return { sim, hub, events, system, options }
  })

describe("RmiLink", () => {
  it.scopedLive("does the handshake, initializes, and polls status, position and joints", () =>
    Effect.gen(function*() {
      const { events, options, sim, system } = yield* setup()
      const arm = yield* system.spawn(RmiLink.make(options), { name: "robot:arm-1" })
      yield* next(events, "LinkUp")
      const first = yield* next(events, "ArmTelemetry")
      expect(first).toMatchObject({ robot: "arm-1", programStatus: "running", servoReady: true, moving: false })
      expect(first.position).toMatchObject({ X: 500, Y: 0, Z: 300 })
      expect(Object.keys(first.joints)).toContain("J6")
      for (let i = 0; i < 5; i++) yield* next(events, "ArmTelemetry")
      expect(yield* sim.stats).toMatchObject({ connectionsAccepted: 2, sessionsOpened: 1 })
      const info = yield* arm.ask(RmiLink.getInfo)
      expect(info).toMatchObject({ connected: true, stopped: false, pending: { sent: 0, queued: 0 } })
    }))

  it.scopedLive("with a slot in the sample columns, polls are written there and only status changes are events", () =>
    Effect.gen(function*() {
      const { events, options, system } = yield* setup()
      const samples = SampleColumns.makeDirectory(2)
      const slot = samples.assign("arm-1")!
      const arm = yield* system.spawn(RmiLink.make({ ...options, samples: { columns: samples.columns, slot } }), {
        name: "robot:arm-1"
      })
      yield* next(events, "LinkUp")
      const first = yield* next(events, "ArmTelemetry")
      const before = SampleColumns.version(samples.columns, slot)
      yield* Effect.sleep("500 millis") // ~25 polls at 50 Hz
      expect((SampleColumns.version(samples.columns, slot) - before) / 2).toBeGreaterThanOrEqual(10)
      const sample = new Float64Array(SampleColumns.fieldCount)
      SampleColumns.read(samples.columns, slot, sample)
      expect(ArmSample.positionOf(sample)).toMatchObject({ X: 500, Y: 0, Z: 300 })
      expect(sample[SampleColumns.Field.kind]).toBe(0)
      // The arm stood still: no second event, though it was polled all along.
      expect([...(yield* Queue.takeAll(events))].filter((e) => e._tag === "ArmTelemetry")).toEqual([])

      // A motion is a status change (moving): an event, carrying the position of that poll.
      yield* arm.ask(RmiLink.instruct(nudge(50, 200)))
      const moved = [...(yield* Queue.takeAll(events))]
      expect(moved.some((e) => e._tag === "ArmTelemetry" && e.moving)).toBe(true)
      // What the link says of the arm is the latest sample, not its latest event.
      yield* Effect.sleep("100 millis")
      const info = yield* arm.ask(RmiLink.getInfo)
      expect(info.last?.at).toBeGreaterThan(first.at)
      expect(info.last?.position.X).toBeCloseTo(550, 0)
    }))

  it.scopedLive("keeps at most 8 instructions outstanding with consecutive SequenceIDs, queueing the rest", () =>
    Effect.gen(function*() {
      const { events, options, sim, system } = yield* setup({ timeScale: 20 })
      const arm = yield* system.spawn(RmiLink.make(options), { name: "robot:arm-1" })
      yield* next(events, "LinkUp")
      const replies = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        (i) => arm.ask(RmiLink.instruct(nudge(i % 2 === 0 ? 10 : -10)), { timeout: "20 seconds" }),
        { concurrency: "unbounded" }
      )
      expect(replies.map((r) => r.SequenceID)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
      const stats = yield* sim.stats
      expect(stats.maxOutstanding).toBe(8)
      expect(stats.instructionsCompleted).toBe(20)
      expect(stats.refusals.get(ErrorId.WaitForInstructionDone)).toBeUndefined()
      expect(stats.refusals.get(ErrorId.InvalidSequenceId)).toBeUndefined()
    }))

  it.scopedLive("recovers from a sequence gap with a Reset operation", () =>
    Effect.gen(function*() {
      const { events, options, sim, system } = yield* setup()
      const arm = yield* system.spawn(RmiLink.make(options), { name: "robot:arm-1" })
      yield* next(events, "LinkUp")
      yield* arm.ask(RmiLink.instruct(nudge(5)))
      yield* sim.faults.skipSequenceIds(3)
      const gap = yield* Effect.flip(arm.ask(RmiLink.instruct(nudge(5))))
      expect(gap).toMatchObject({ _tag: "RmiSequenceGap", sequenceId: 2 })
      expect((yield* sim.snapshot).hold).toBe(true)
      yield* arm.ask(RmiLink.operate("Reset"))
      const after = yield* arm.ask(RmiLink.instruct(nudge(-5)))
      expect(after.SequenceID).toBe(5)
      expect((yield* sim.snapshot).hold).toBe(false)
    }))

  it.scopedLive("reconnects by itself when the controller drops the link: disconnected, then up again, never restarted", () =>
    Effect.gen(function*() {
      const { events, options, sim, system } = yield* setup()
      const links = yield* system.spawn(
        DynamicSupervisor.make({ maxRestarts: 1, backoff: Backoff.exponential({ min: "300 millis", max: "2 seconds", jitter: 0 }) }),
        { name: "links" }
      )
      const arm = yield* DynamicSupervisor.startChild(links, ChildSpec.make("robot:arm-1", RmiLink.make({
        ...options,
        reconnect: Backoff.exponential({ min: "300 millis", max: "2 seconds", jitter: 0 })
      })))
      yield* next(events, "LinkUp")
      yield* TestKit.awaitTree(system, `
        links (dynamic, 1/∞)
        └─ robot:arm-1 running mailbox=0 restarts=0`)

      yield* sim.faults.dropConnection
      const down = yield* next(events, "LinkDown")
      expect(down).toMatchObject({ status: "disconnected" })
      expect(down.reason).toMatch(/RmiConnectionLost/)
      const between = yield* arm.ask(RmiLink.getInfo)
      expect(between).toMatchObject({ connected: false, sessions: 1, lost: 1 })
      expect(yield* Effect.flip(arm.ask(RmiLink.operate("Pause")))).toMatchObject({ _tag: "RmiNotConnected" })

      yield* next(events, "LinkUp")
      expect(yield* arm.ask(RmiLink.getInfo)).toMatchObject({ connected: true, sessions: 2, lost: 1 })
      yield* next(events, "ArmTelemetry")
      // The same actor all along: the supervisor never restarted it, so nothing counted toward its intensity.
      yield* TestKit.awaitTree(system, `
        links (dynamic, 1/∞)
        └─ robot:arm-1 running mailbox=0 restarts=0`)
      expect(yield* sim.stats).toMatchObject({ sessionsOpened: 2 })
    }))

  it.scopedLive("a bug still crashes the link, and its supervisor restarts it", () =>
    Effect.gen(function*() {
      const { events, options, system } = yield* setup()
      const links = yield* system.spawn(
        DynamicSupervisor.make({ backoff: Backoff.exponential({ min: "50 millis", max: "200 millis", jitter: 0 }) }),
        { name: "links" }
      )
      yield* DynamicSupervisor.startChild(links, ChildSpec.make("robot:arm-1", RmiLink.make(options)))
      yield* next(events, "LinkUp")
      yield* TestKit.crashChild(system, "robot:arm-1", "a bug")
      expect(yield* next(events, "LinkDown")).toMatchObject({ status: "disconnected" })
      yield* next(events, "LinkUp")
      yield* TestKit.awaitTree(system, `
        links (dynamic, 1/∞)
        └─ robot:arm-1 running mailbox=0 restarts=1`)
    }))

  it.scopedLive("an emergency stop on the urgent lane overtakes a full mailbox of motion and aborts the program", () =>
    Effect.gen(function*() {
      const { events, options, sim, system } = yield* setup()
      const arm = yield* system.spawn(RmiLink.make(options), { name: "robot:arm-1", mailbox: { capacity: 50 } })
      yield* next(events, "LinkUp")
      const handled: Array<string> = []
      yield* Effect.forkScoped(
        Stream.runForEach(system.trace(arm), (message) => Effect.sync(() => handled.push((message as { _tag: string })._tag)))
      )
      yield* TestKit.tick
      yield* system.suspend(arm)
      // Telemetry keeps arriving; motion fills the rest of the mailbox until it refuses more.
      let queued = 0
      while (Either.isRight(yield* Effect.either(arm.tell({ _tag: "Instruct", instruction: nudge(5) })))) queued++
      expect(queued).toBeGreaterThan(0)
      const stop = yield* Effect.fork(arm.ask(RmiLink.emergencyStop, { urgent: true }))
      yield* system.resume(arm)
      yield* Effect.flatten(stop.await)
      const info = yield* arm.ask(RmiLink.getInfo)
      expect(info).toMatchObject({ stopped: true, pending: { sent: 0, queued: 0 } })
      yield* next(events, "EmergencyStopped")
      expect(handled.filter((tag) => tag === "EmergencyStop" || tag === "Instruct").slice(0, 2)).toEqual([
        "EmergencyStop",
        "Instruct"
      ])
      expect(yield* sim.stats).toMatchObject({ instructionsAccepted: 0 })
      expect((yield* sim.snapshot).program).toBe("aborted")

      yield* arm.ask(RmiLink.operate("Reset"))
      const done = yield* arm.ask(RmiLink.instruct(nudge(5)))
      expect(done.SequenceID).toBe(1)
    }))

  it.scopedLive("a silent controller trips the watchdog: alarm, disconnected, a new session; the link is not restarted", () =>
    Effect.gen(function*() {
      const { events, options, sim, system } = yield* setup()
      const links = yield* system.spawn(
        DynamicSupervisor.make({ maxRestarts: 1, backoff: Backoff.exponential({ min: "100 millis", max: "1 second" }) }),
        { name: "links" }
      )
      const arm = yield* DynamicSupervisor.startChild(
        links,
        ChildSpec.make("robot:arm-1", RmiLink.make({
          ...options,
          silenceDeadline: "300 millis",
          reconnect: Backoff.exponential({ min: "100 millis", max: "1 second" })
        }))
      )
      yield* next(events, "ArmTelemetry")
      yield* sim.faults.stall("2 seconds")
      const alarm = yield* next(events, "Alarm")
      expect(alarm).toMatchObject({ code: "LINK-SILENT", level: "warning" })
      expect(yield* next(events, "LinkDown")).toMatchObject({ status: "disconnected", reason: expect.stringMatching(/^RmiLinkSilent/) })
      yield* next(events, "LinkUp")
      yield* next(events, "ArmTelemetry")
      expect((yield* arm.ask(RmiLink.getInfo)).sessions).toBeGreaterThanOrEqual(2)
      const [child] = yield* DynamicSupervisor.whichChildren(links)
      expect(child.restarts).toBe(0)
    }))

  it.scopedLive("raises an alarm with the controller's error on FRC_SystemFault", () =>
    Effect.gen(function*() {
      const { events, options, sim, system } = yield* setup()
      yield* system.spawn(RmiLink.make(options), { name: "robot:arm-1" })
      yield* next(events, "LinkUp")
      yield* sim.faults.systemFault(3)
      const alarm = yield* next(events, "Alarm")
      expect(alarm).toMatchObject({ code: "SRVO-050", level: "fatal" })
      expect(alarm.message).toMatch(/instruction 3/)
    }))

  it.scopedLive("refuses commands while not connected, says why, and keeps trying with backoff", () =>
    Effect.gen(function*() {
      const { events, hub, system } = yield* setup()
      const arm = yield* system.spawn(
        RmiLink.make({
          id: "arm-1",
          host: "127.0.0.1",
          port: 1,
          hub,
          connectTimeout: "200 millis",
          reconnect: Backoff.exponential({ min: "100 millis", max: "400 millis", jitter: 0 })
        }),
        { name: "robot:arm-1" }
      )
      const refused = yield* Effect.flip(arm.ask(RmiLink.operate("Pause")))
      expect(refused._tag).toBe("RmiNotConnected")
      const down = yield* next(events, "LinkDown")
      expect(down).toMatchObject({ status: "disconnected", reason: expect.stringMatching(/RmiConnectionLost/) })
      // 100, 200, 400, 400 … ms apart: a handful of attempts in a second and a half, and one LinkDown for them all.
      yield* Effect.sleep("1500 millis")
      const info = yield* arm.ask(RmiLink.getInfo)
      expect(info).toMatchObject({ connected: false, sessions: 0, reason: expect.stringMatching(/RmiConnectionLost/) })
      expect(info.lost).toBeGreaterThanOrEqual(3)
      expect(info.lost).toBeLessThanOrEqual(8)
      expect(arm.isAlive()).toBe(true)
      const more = yield* Queue.takeAll(events)
      expect([...more].filter((e) => e._tag === "LinkDown")).toEqual([])
      yield* system.stop(arm)
      expect(ExitReason.format(yield* system.awaitExit(arm))).toBe("shutdown")
    }))
})
