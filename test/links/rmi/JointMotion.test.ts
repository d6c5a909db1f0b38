import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { PubSub, TestKit } from "../../../src/actors/index.js"
import * as LinkEvent from "../../../src/links/LinkEvent.js"
import { ErrorId } from "../../../src/links/rmi/RmiErrorCode.js"
import * as RmiLink from "../../../src/links/rmi/RmiLink.js"
import type * as RmiPacket from "../../../src/links/rmi/RmiPacket.js"
import * as RmiSimulator from "../../../src/links/rmi/RmiSimulator.js"
import * as RobotModel from "../../../src/links/rmi/RobotModel.js"
import { next } from "../support/nextEvent.js"
import { eventually } from "./eventually.js"

const target: RmiPacket.JointAngle = { J1: 30, J2: 20, J3: -30, J4: 10, J5: -20, J6: 15 }

/** FRC_JointMotionJRep to `JointAngle` at `Speed` percent. */
const jointMove = (JointAngle: RmiPacket.JointAngle, Speed = 50, SpeedType: RmiPacket.SpeedType = "Percent"): RmiPacket.InstructionBody => ({
  Instruction: "FRC_JointMotionJRep",
  JointAngle,
  SpeedType,
  Speed,
  TermType: "FINE",
  TermValue: 1
})

const near = (a: RmiPacket.JointAngle, b: RmiPacket.JointAngle, tolerance = 0.01) =>
  (["J1", "J2", "J3", "J4", "J5", "J6"] as const).every((j) => Math.abs(a[j] - b[j]) <= tolerance)

/** A simulator and a link to it, connected. */
const linked = (timeScale: number) =>
  Effect.gen(function*() {
    const sim = yield* RmiSimulator.make({ port: 0, timeScale })
    const hub = yield* PubSub.make()
    const events = yield* PubSub.subscribeQueue<LinkEvent.LinkEvent>(hub, LinkEvent.robotTopic("arm-1"), { bufferSize: 10_000 })
    const system = yield* TestKit.system()
    const arm = yield* system.spawn(RmiLink.make({ id: "arm-1", host: "127.0.0.1", port: sim.port, hub, pollHz: 50 }), {
      name: "robot:arm-1"
    })
    yield* next(events, "LinkUp")
    return { sim, events, arm }
  })

describe("RobotModel joint targets", () => {
  it("positionOf is the inverse of jointsOf for the joints the arm can take", () => {
    for (
      const joints of [
        target,
        { J1: -45, J2: 0, J3: 0, J4: 0, J5: 0, J6: 0 },
        { J1: 90, J2: 60, J3: -10, J4: -90, J5: 45, J6: 180, J7: 12 },
        RobotModel.jointsOf(RobotModel.HomePosition)
      ]
    ) {
      expect(RobotModel.reachable(joints)).toBe(true)
      expect(near(RobotModel.jointsOf(RobotModel.positionOf(joints)), joints)).toBe(true)
    }
    // Joints are rounded to 0.001°, which is a few µm at the tool.
    const home = RobotModel.positionOf(RobotModel.jointsOf(RobotModel.HomePosition))
    for (const axis of ["X", "Y", "Z", "W", "P", "R"] as const) {
      expect(home[axis]).toBeCloseTo(RobotModel.HomePosition[axis], 1)
    }
  })

  it("refuses joints the arm cannot take: elbow bent backwards, wrist behind the base axis, not finite", () => {
    expect(RobotModel.reachable({ ...target, J2: 60, J3: 40 })).toBe(false)
    expect(RobotModel.reachable({ ...target, J2: -80, J3: -60 })).toBe(false)
    expect(RobotModel.reachable({ ...target, J2: 0, J3: 180 })).toBe(false)
    expect(RobotModel.reachable({ ...target, J4: Number.NaN })).toBe(false)
  })
})

describe("FRC_JointMotionJRep over TCP", () => {
  it.scopedLive("moves the joints over time to the target and answers when the arm is there", () =>
    Effect.gen(function*() {
      const { arm, sim } = yield* linked(1)
      const start = (yield* sim.snapshot).joints
      const done = yield* Effect.fork(arm.ask(RmiLink.instruct(jointMove(target, 50)), { timeout: "10 seconds" }))
      // On the way: every joint strictly between where it started and where it goes.
      const midway = yield* eventually(sim.snapshot, (s) => s.outstanding === 1 && s.joints.J1 > 5 && s.joints.J1 < 25)
      expect(midway.joints.J5).toBeLessThan(start.J5)
      expect(midway.joints.J5).toBeGreaterThan(target.J5)
      const reply = yield* done.await.pipe(Effect.flatten)
      expect(reply).toMatchObject({ Instruction: "FRC_JointMotionJRep", ErrorID: 0 })
      const after = yield* sim.snapshot
      expect(near(after.joints, target)).toBe(true)
      expect(after.position).toEqual(RobotModel.positionOf(target))
    }))

  it.scopedLive("the controller refuses an unreachable target (RMIT-021) and a linear speed type (RMIT-030)", () =>
    Effect.gen(function*() {
      const { arm, sim } = yield* linked(5)
      const unreachable = yield* Effect.flip(arm.ask(RmiLink.instruct(jointMove({ ...target, J2: 60, J3: 40 }))))
      expect(unreachable).toMatchObject({ _tag: "RmiRejected", code: "RMIT-021", packet: "FRC_JointMotionJRep" })
      expect(unreachable.message).toBe("FRC_JointMotionJRep refused: RMIT-021 Invalid Value (2556949)")
      const wrongSpeed = yield* Effect.flip(arm.ask(RmiLink.instruct(jointMove(target, 100, "mmSec"))))
      expect(wrongSpeed).toMatchObject({ _tag: "RmiRejected", code: "RMIT-030" })
      expect((yield* sim.stats).refusals.get(ErrorId.InvalidValue)).toBe(1)
      expect(near((yield* sim.snapshot).joints, RobotModel.jointsOf(RobotModel.HomePosition))).toBe(true)
      // The refused instructions did not take SequenceID 1: the next one uses it, no gap.
      expect(yield* arm.ask(RmiLink.instruct(jointMove(target, 100)), { timeout: "10 seconds" })).toMatchObject({ SequenceID: 1 })
      expect((yield* sim.stats).refusals.get(ErrorId.InvalidSequenceId)).toBeUndefined()
    }))

  it.scopedLive("a refused motion that nobody waits for (tell) raises a warning alarm with its code", () =>
    Effect.gen(function*() {
      const { arm, events } = yield* linked(5)
      yield* arm.tell({ _tag: "Instruct", instruction: jointMove({ ...target, J2: 60, J3: 40 }) })
      const alarm = yield* next(events, "Alarm")
      expect(alarm).toMatchObject({ code: "RMIT-021", level: "warning", message: "FRC_JointMotionJRep refused: RMIT-021 Invalid Value (2556949)" })
    }))
})
