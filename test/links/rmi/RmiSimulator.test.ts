import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { ErrorId } from "../../../src/links/rmi/RmiErrorCode.js"
import * as RmiPacket from "../../../src/links/rmi/RmiPacket.js"
import * as RmiSimulator from "../../../src/links/rmi/RmiSimulator.js"
import { eventually } from "./eventually.js"
import { connectRaw, openSession, waitTime } from "./rawDevice.js"

const simulator = (options?: RmiSimulator.RmiSimulatorOptions) => RmiSimulator.make({ port: 0, ...options })

describe("RmiSimulator", () => {
  it.scopedLive("answers FRC_Connect with the session port, then drops the connection", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const device = yield* connectRaw(sim.port)
      device.send({ Communication: "FRC_Connect" })
      expect(yield* device.next).toEqual({
        Communication: "FRC_Connect",
        ErrorID: 0,
        PortNumber: sim.sessionPort,
        MajorVersion: 7,
        MinorVersion: 0
      })
      yield* device.closed
      expect(sim.sessionPort).not.toBe(sim.port)
    }))

  it.scopedLive("serves one remote device at a time: others get RMIT-026", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      yield* openSession(sim.port)
      yield* eventually(sim.snapshot, (s) => s.connected)

      const late = yield* connectRaw(sim.port)
      late.send({ Communication: "FRC_Connect" })
      expect(yield* late.next).toEqual({ Communication: "FRC_Connect", ErrorID: ErrorId.AlreadyConnected })

      const intruder = yield* connectRaw(sim.sessionPort)
      intruder.send({ Command: "FRC_Initialize" })
      expect(yield* intruder.next).toEqual({ Command: "FRC_Initialize", ErrorID: ErrorId.AlreadyConnected })
      yield* intruder.closed
    }))

  it.scopedLive("accepts 8 outstanding instructions and refuses a 9th with RMIT-028", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const device = yield* openSession(sim.port)
      device.send({ Command: "FRC_Initialize" })
      yield* device.next
      for (let id = 1; id <= 9; id++) device.send(waitTime(id, 60))
      expect(yield* device.next).toEqual({
        Instruction: "FRC_WaitTime",
        ErrorID: ErrorId.WaitForInstructionDone,
        SequenceID: 9
      })
      expect((yield* sim.stats).maxOutstanding).toBe(8)
      device.send({ Command: "FRC_GetStatus" })
      expect(yield* device.next).toMatchObject({ NextSequenceID: 9 })
    }))

  it.scopedLive("holds after a sequence gap until FRC_Reset, and keeps running what it had", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({ timeScale: 10 })
      const device = yield* openSession(sim.port)
      device.send({ Command: "FRC_Initialize" })
      yield* device.next

      device.send(waitTime(1, 2))
      device.send(waitTime(3, 0))
      expect(yield* device.next).toEqual({ Instruction: "FRC_WaitTime", ErrorID: ErrorId.InvalidSequenceId, SequenceID: 3 })
      device.send(waitTime(2, 0))
      expect(yield* device.next).toEqual({ Instruction: "FRC_WaitTime", ErrorID: ErrorId.Hold, SequenceID: 2 })
      expect(yield* device.next).toEqual({ Instruction: "FRC_WaitTime", ErrorID: 0, SequenceID: 1 })

      device.send({ Command: "FRC_GetStatus" })
      expect(yield* device.next).toMatchObject({ NextSequenceID: 2 })
      device.send({ Command: "FRC_Reset" })
      expect(yield* device.next).toEqual({ Command: "FRC_Reset", ErrorID: 0 })
      device.send(waitTime(2, 0))
      expect(yield* device.next).toEqual({ Instruction: "FRC_WaitTime", ErrorID: 0, SequenceID: 2 })
    }))

  it.scopedLive("answers FRC_Abort, then at once the instruction it interrupted, never the queued ones", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const device = yield* openSession(sim.port)
      device.send({ Command: "FRC_Initialize" })
      yield* device.next
      device.send(waitTime(1, 60))
      device.send(waitTime(2, 60))
      const status = Effect.zipRight(Effect.sync(() => device.send({ Command: "FRC_GetStatus" })), device.next)
      yield* eventually(status, (reply) => "RMIMotionStatus" in reply && reply.RMIMotionStatus === 1)
      device.send(RmiPacket.encode({ Command: "FRC_Abort" }) + RmiPacket.encode({ Command: "FRC_GetStatus" }))
      expect(yield* device.next).toEqual({ Command: "FRC_Abort", ErrorID: 0 })
      expect(yield* device.next).toEqual({ Instruction: "FRC_WaitTime", ErrorID: 0, SequenceID: 1 })
      expect(yield* device.next).toMatchObject({ Command: "FRC_GetStatus", ProgramStatus: 2 })
      device.send({ Command: "FRC_GetStatus" })
      expect(yield* device.next).toMatchObject({ Command: "FRC_GetStatus" })
      expect(yield* sim.stats).toMatchObject({ abortsReceived: 1, instructionsCompleted: 0 })
    }))

  it.scopedLive("refuses what it cannot read as {\"Command\":\"Unknown\"} and carries on", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const device = yield* openSession(sim.port)
      device.send("not json\r\n")
      expect(yield* device.next).toEqual({ Command: "Unknown", ErrorID: ErrorId.InvalidTextString })
      device.send(`{"ErrorID":0,"Command":"FRC_GetStatus"}\r\n`)
      expect(yield* device.next).toEqual({ Command: "Unknown", ErrorID: ErrorId.InvalidTextString })
      device.send(`{"Command":"FRC_SelfDestruct"}\r\n`)
      expect(yield* device.next).toEqual({ Command: "Unknown", ErrorID: ErrorId.InvalidCommand })
      device.send({ Command: "FRC_GetStatus" })
      expect(yield* device.next).toMatchObject({ Command: "FRC_GetStatus", ErrorID: 0, ProgramStatus: 2 })
    }))

  it.scopedLive("drops a device that sends a line over the limit, and stays up for the next one", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({ maxLineLength: 1024 })
      const flooder = yield* openSession(sim.port)
      flooder.send("x".repeat(1024 * 1024))
      yield* flooder.closed
      yield* eventually(sim.snapshot, (s) => !s.connected)

      const next = yield* openSession(sim.port)
      next.send({ Command: "FRC_GetStatus" })
      expect(yield* next.next).toMatchObject({ Command: "FRC_GetStatus", ErrorID: 0 })
      expect((yield* sim.stats).sessionsOpened).toBe(2)
    }))

  it.scopedLive("fails with SimulatorListenError when its port is taken", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const taken = yield* Effect.flip(simulator({ port: sim.port }))
      expect(taken).toMatchObject({ _tag: "SimulatorListenError", port: sim.port })
    }))
})
