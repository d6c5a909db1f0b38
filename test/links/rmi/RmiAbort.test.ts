/**
 * FRC_Abort end to end, client and simulator over TCP: the late reply of the interrupted
 * instruction, the simulator's record of motion after an abort, and a client that connects
 * without re-initialising an aborted program.
 */
import { describe, expect, it } from "@effect/vitest"
import { Array, Cause, Effect, Fiber, Option } from "effect"
import * as RmiClient from "../../../src/links/rmi/RmiClient.js"
import { ErrorId } from "../../../src/links/rmi/RmiErrorCode.js"
import * as RmiPacket from "../../../src/links/rmi/RmiPacket.js"
import * as RmiSimulator from "../../../src/links/rmi/RmiSimulator.js"
import { HomePosition } from "../../../src/links/rmi/RobotModel.js"
import { eventually } from "./eventually.js"

/** A straight move of `X` mm along X at `Speed` mm/s. */
const nudge = (X: number, Speed: number): RmiPacket.InstructionBody => ({
  Instruction: "FRC_LinearRelative",
  Configuration: RmiPacket.DefaultConfiguration,
  Position: { X, Y: 0, Z: 0, W: 0, P: 0, R: 0 },
  SpeedType: "mmSec",
  Speed,
  TermType: "FINE",
  TermValue: 1
})

const connect = (sim: RmiSimulator.RmiSimulator, options?: Partial<RmiClient.RmiClientOptions>) =>
  RmiClient.connect({ host: "127.0.0.1", port: sim.port, ...options })

/** The client's `failure`, if it fired within `millis`. */
const failedWithin = (client: RmiClient.RmiClient, millis: number) =>
  Effect.map(Effect.timeoutOption(Effect.flip(client.failure), millis), Option.getOrUndefined)

/** A session that aborts a motion under way, then ends. */
const abortedSession = (sim: RmiSimulator.RmiSimulator) =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* connect(sim)
    const move = yield* Effect.fork(client.instruction(nudge(100, 20)))
    yield* eventually(sim.snapshot, (s) => s.position.X > HomePosition.X)
    yield* client.abort
    yield* Effect.flip(Fiber.join(move))
    yield* eventually(client.cancelledReplies, (n) => n === 1)
  }))

describe("FRC_Abort", () => {
  it.scopedLive("the interrupted instruction's late reply is ignored and counted; the client lives on", () =>
    Effect.gen(function*() {
      const sim = yield* RmiSimulator.make({ port: 0 })
      const client = yield* connect(sim)
      const running = yield* Effect.fork(client.instruction(nudge(100, 10)))
      const queued = yield* Effect.forEach(Array.range(1, 3), () => Effect.fork(client.instruction(nudge(10, 10))))
      yield* eventually(sim.snapshot, (s) => s.outstanding === 4 && s.position.X > HomePosition.X)

      yield* client.abort
      expect(yield* Effect.flip(Fiber.join(running))).toMatchObject({ _tag: "RmiAborted", instruction: "FRC_LinearRelative" })
      for (const move of queued) expect(yield* Effect.flip(Fiber.join(move))).toMatchObject({ _tag: "RmiAborted" })
      expect(yield* eventually(client.cancelledReplies, (n) => n > 0)).toBe(1)

      expect(yield* failedWithin(client, 100)).toBeUndefined()
      expect(yield* client.readStatus).toMatchObject({ ErrorID: 0, ProgramStatus: 2 })
      expect(yield* client.cancelledReplies).toBe(1)
      expect(yield* client.pending).toEqual({ sent: 0, queued: 0 })
      expect(yield* sim.stats).toMatchObject({ abortsReceived: 1, instructionsAccepted: 4, instructionsCompleted: 0 })

      yield* client.reset
      yield* client.initialize
      expect((yield* client.instruction(nudge(1, 100))).SequenceID).toBe(1)
    }))

  it.scopedLive("a reply to an instruction never sent kills the link with the reason in its message", () =>
    Effect.gen(function*() {
      const sim = yield* RmiSimulator.make({ port: 0 })
      const client = yield* connect(sim)
      yield* sim.faults.sendRaw(RmiPacket.encode({ Instruction: "FRC_LinearRelative", ErrorID: 0, SequenceID: 7 }))
      const error = yield* Effect.flip(client.failure)
      expect(error).toMatchObject({ _tag: "RmiProtocolError", reason: "reply to unknown instruction 7" })
      expect(error.message).toBe("RMI protocol error: reply to unknown instruction 7")
      expect(Cause.pretty(Cause.fail(error))).toContain("RmiProtocolError: RMI protocol error: reply to unknown instruction 7")
      expect(yield* Effect.flip(client.readStatus)).toBe(error)
    }))

  it.scopedLive("a second reply to an aborted instruction is unknown", () =>
    Effect.gen(function*() {
      const sim = yield* RmiSimulator.make({ port: 0 })
      const client = yield* connect(sim)
      const move = yield* Effect.fork(client.instruction(nudge(100, 20)))
      yield* eventually(sim.snapshot, (s) => s.position.X > HomePosition.X)
      yield* client.abort
      yield* Effect.flip(Fiber.join(move))
      yield* eventually(client.cancelledReplies, (n) => n === 1)
      yield* sim.faults.sendRaw(RmiPacket.encode({ Instruction: "FRC_LinearRelative", ErrorID: 0, SequenceID: 1 }))
      expect(yield* Effect.flip(client.failure)).toMatchObject({ reason: "reply to unknown instruction 1" })
    }))

  it.scopedLive("the simulator counts motion accepted after an abort, a reconnection and FRC_Initialize without FRC_Reset", () =>
    Effect.gen(function*() {
      const sim = yield* RmiSimulator.make({ port: 0, timeScale: 10 })
      yield* abortedSession(sim)
      yield* eventually(sim.snapshot, (s) => !s.connected)

      const careless = yield* connect(sim)
      yield* careless.instruction(nudge(1, 100))
      expect(yield* sim.stats).toMatchObject({ abortsReceived: 1, motionsAfterAbort: 1, sessionsOpened: 2 })
      yield* careless.reset
      yield* careless.instruction(nudge(1, 100))
      expect((yield* sim.stats).motionsAfterAbort).toBe(1)
    }))

  it.scopedLive("and counts none when FRC_Reset came before the motion", () =>
    Effect.gen(function*() {
      const sim = yield* RmiSimulator.make({ port: 0, timeScale: 10 })
      yield* abortedSession(sim)
      yield* eventually(sim.snapshot, (s) => !s.connected)

      const careful = yield* connect(sim, { initialize: false })
      yield* careful.reset
      yield* careful.initialize
      expect((yield* careful.instruction(nudge(1, 100))).SequenceID).toBe(1)
      expect(yield* sim.stats).toMatchObject({ abortsReceived: 1, motionsAfterAbort: 0, instructionsCompleted: 1 })
    }))

  it.scopedLive("initialize: false leaves the program aborted; instructions are refused until initialize", () =>
    Effect.gen(function*() {
      const sim = yield* RmiSimulator.make({ port: 0, timeScale: 10 })
      const client = yield* connect(sim, { initialize: false })
      expect(yield* sim.snapshot).toMatchObject({ connected: true, program: "aborted" })
      expect(yield* client.readStatus).toMatchObject({ ProgramStatus: 2 })
      const refused = yield* Effect.flip(client.instruction(nudge(1, 100)))
      expect(refused).toMatchObject({ _tag: "RmiRejected", errorId: ErrorId.RmiNotRunning })

      yield* client.initialize
      expect((yield* sim.snapshot).program).toBe("running")
      expect((yield* client.instruction(nudge(1, 100))).SequenceID).toBe(1)
    }))
})
