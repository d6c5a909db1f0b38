import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import { ExitReason, PubSub, TestKit } from "../../../src/actors/index.js"
import * as ControlLoop from "../../../src/apps/fleet/ControlLoop.js"
import * as SpeedGuard from "../../../src/apps/fleet/SpeedGuard.js"
import * as LinkEvent from "../../../src/links/LinkEvent.js"
import { eventually } from "../../links/rmi/eventually.js"

const busyWait = (ms: number) => {
  const until = performance.now() + ms
  while (performance.now() < until) {
    // a phase that takes too long
  }
}

const arm = (x: number, timeTag: number): LinkEvent.ArmTelemetry => ({
  _tag: "ArmTelemetry",
  robot: "arm-1",
  at: Date.now(),
  programStatus: "running",
  servoReady: true,
  override: 100,
  moving: true,
  position: { X: x, Y: 0, Z: 300, W: 180, P: 0, R: 0 },
  joints: { J1: 0, J2: 0, J3: 0, J4: 0, J5: 0, J6: 0 },
  timeTag
})

describe("ControlLoop", () => {
  it.scopedLive("runs its phases in order on a fixed 100 Hz grid and measures its jitter", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const ran: Array<string> = []
      const indexes: Array<number> = []
      const phase = (name: string): ControlLoop.Phase => ({
        name,
        run: (tick) => {
          ran.push(name)
          if (name === "inputs") indexes.push(tick.index)
          expect(tick.dt).toBe(0.01)
        }
      })
      const loop = yield* system.spawn(
        ControlLoop.make({ phases: () => Effect.succeed(["inputs", "process", "control", "outputs"].map(phase)) }),
        { name: "control" }
      )
      const metrics = yield* eventually(loop.ask(ControlLoop.getMetrics), (m) => m.ticks >= 30)
      expect(ran.slice(0, 8)).toEqual(["inputs", "process", "control", "outputs", "inputs", "process", "control", "outputs"])
      expect(indexes.every((index, i) => i === 0 || index > indexes[i - 1])).toBe(true)
      expect(metrics).toMatchObject({ hz: 100 })
      expect(metrics.jitterP50Ms).toBeGreaterThanOrEqual(0)
      expect(metrics.jitterMaxMs).toBeGreaterThanOrEqual(metrics.jitterP99Ms)
    }))

  it.scopedLive("counts overruns and the grid points it had to skip", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const loop = yield* system.spawn(
        ControlLoop.make({
          phases: () =>
            Effect.succeed([{ name: "slow", run: (tick) => (tick.index % 5 === 4 ? busyWait(25) : undefined) }])
        }),
        { name: "control" }
      )
      const metrics = yield* eventually(loop.ask(ControlLoop.getMetrics), (m) => m.overruns >= 2 && m.missed >= 2)
      expect(metrics.durationMaxMs).toBeGreaterThanOrEqual(25)
    }))

  it.scopedLive("a phase that throws crashes the loop actor (its supervisor decides)", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const loop = yield* system.spawn(
        ControlLoop.make({
          phases: () => Effect.succeed([{ name: "broken", run: (tick) => { if (tick.index >= 3) throw new Error("bad math") } }])
        }),
        { name: "control" }
      )
      const reason = yield* system.awaitExit(loop)
      expect(ExitReason.format(reason)).toMatch(/phase broken failed: Error: bad math/)
    }))

  it.scopedLive("the speed guard raises OVERSPEED once for a robot faster than its limit", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const hub = yield* PubSub.make()
      const alarms = yield* PubSub.subscribeQueue<LinkEvent.LinkEvent>(hub, LinkEvent.robotTopic("arm-1"))
      const loop = yield* system.spawn(
        ControlLoop.make({ phases: (self) => SpeedGuard.phases(hub, self, { armMmPerSecond: 1000 }) }),
        { name: "control" }
      )
      // One sample per tick: publish, then wait for the next tick to have read it.
      const publishAndTick = (x: number, t: number) =>
        Effect.gen(function*() {
          const before = (yield* loop.ask(ControlLoop.getMetrics)).ticks
          yield* LinkEvent.publish(hub, arm(x, t))
          yield* eventually(loop.ask(ControlLoop.getMetrics), (m) => m.ticks > before)
        })
      yield* publishAndTick(500, 0)
      yield* publishAndTick(510, 100) // 100 mm/s
      yield* publishAndTick(700, 200) // 1900 mm/s
      yield* publishAndTick(900, 300) // still too fast: no second alarm
      const seen = yield* Queue.takeAll(alarms)
      const overspeed = [...seen].filter((e) => e._tag === "Alarm")
      expect(overspeed).toMatchObject([{ code: "OVERSPEED", level: "fatal", robot: "arm-1" }])
      expect((overspeed[0] as LinkEvent.Alarm).message).toMatch(/^1900\.0 mm\/s/)
    }))
})
