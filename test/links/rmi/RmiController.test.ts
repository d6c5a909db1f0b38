import { describe, expect, it } from "@effect/vitest"
import { RmiController } from "../../../src/links/rmi/RmiController.js"
import * as RmiPacket from "../../../src/links/rmi/RmiPacket.js"
import { HomePosition } from "../../../src/links/rmi/RobotModel.js"

/** 100 mm along X at 100 mm/s: one second of robot time at 100 % override. */
const move = (SequenceID: number): typeof RmiPacket.LinearRelative.Type => ({
  Instruction: "FRC_LinearRelative",
  SequenceID,
  Configuration: RmiPacket.DefaultConfiguration,
  Position: { X: 100, Y: 0, Z: 0, W: 0, P: 0, R: 0 },
  SpeedType: "mmSec",
  Speed: 100,
  TermType: "FINE",
  TermValue: 1
})

const initialized = () => {
  const controller = new RmiController()
  controller.receive({ Command: "FRC_Initialize" })
  return controller
}

describe("RmiController", () => {
  it("refuses instructions until FRC_Initialize", () => {
    expect(new RmiController().receive(move(1))).toMatchObject({ ErrorID: 2556937 })
  })

  it("answers an instruction when it finishes, moving the robot on the way", () => {
    const controller = initialized()
    expect(controller.receive(move(1))).toBeUndefined()
    expect(controller.advance(500)).toEqual([])
    expect(controller.snapshot().position.X).toBe(HomePosition.X + 50)
    expect(controller.advance(500)).toEqual([{ Instruction: "FRC_LinearRelative", ErrorID: 0, SequenceID: 1 }])
    expect(controller.snapshot().position.X).toBe(HomePosition.X + 100)
  })

  it("slows motion with the override and freezes it while paused", () => {
    const controller = initialized()
    controller.receive({ Command: "FRC_SetOverRide", Value: 50 })
    controller.receive(move(1))
    controller.advance(1000)
    expect(controller.snapshot().position.X).toBe(HomePosition.X + 50)
    controller.receive({ Command: "FRC_Pause" })
    controller.advance(1000)
    expect(controller.snapshot().position.X).toBe(HomePosition.X + 50)
    controller.receive({ Command: "FRC_Continue" })
    expect(controller.advance(1000)).toHaveLength(1)
  })

  it("stops where it is on FRC_Abort, answers the interrupted instruction after it, and never the dropped ones", () => {
    const controller = initialized()
    controller.receive(move(1))
    controller.receive(move(2))
    controller.advance(250)
    expect(controller.receive({ Command: "FRC_Abort" })).toEqual({ Command: "FRC_Abort", ErrorID: 0 })
    expect(controller.takeReplies()).toEqual([{ Instruction: "FRC_LinearRelative", ErrorID: 0, SequenceID: 1 }])
    expect(controller.takeReplies()).toEqual([])
    expect(controller.advance(5000)).toEqual([])
    expect(controller.snapshot()).toMatchObject({ program: "aborted", outstanding: 0, position: { X: HomePosition.X + 25 } })
    expect(controller.stats()).toMatchObject({ abortsReceived: 1, instructionsCompleted: 0 })
  })

  it("hands an owed reply to the next advance when nobody took it", () => {
    const controller = initialized()
    controller.receive(move(1))
    controller.advance(250)
    controller.receive({ Command: "FRC_Abort" })
    expect(controller.advance(10)).toEqual([{ Instruction: "FRC_LinearRelative", ErrorID: 0, SequenceID: 1 }])
  })

  it("answers nothing after FRC_Abort when no instruction had started", () => {
    const controller = initialized()
    controller.receive(move(1))
    controller.receive({ Command: "FRC_Abort" })
    expect(controller.takeReplies()).toEqual([])
  })

  it("counts instructions accepted after FRC_Abort, across sessions and FRC_Initialize, until FRC_Reset", () => {
    const controller = initialized()
    controller.receive(move(1))
    expect(controller.stats().motionsAfterAbort).toBe(0)
    controller.receive({ Command: "FRC_Abort" })
    expect(controller.receive(move(2))).toMatchObject({ ErrorID: 2556937 })
    controller.endSession()
    controller.receive({ Command: "FRC_Initialize" })
    expect(controller.receive(move(1))).toBeUndefined()
    expect(controller.receive(move(2))).toBeUndefined()
    expect(controller.stats()).toMatchObject({ motionsAfterAbort: 2, abortsReceived: 1, instructionsAccepted: 3 })
    controller.receive({ Command: "FRC_Reset" })
    expect(controller.receive(move(3))).toBeUndefined()
    expect(controller.stats()).toMatchObject({ motionsAfterAbort: 2, instructionsAccepted: 4 })
  })

  it("refuses a speed type the motion type does not take", () => {
    const controller = initialized()
    expect(controller.receive({ ...move(1), SpeedType: "Percent" })).toMatchObject({ ErrorID: 2556958, SequenceID: 1 })
    expect(controller.snapshot().nextSequenceId).toBe(1)
  })
})
