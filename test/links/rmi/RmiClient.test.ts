import { describe, expect, it } from "@effect/vitest"
import { Array, Chunk, Effect, Fiber, Queue } from "effect"
import * as RmiClient from "../../../src/links/rmi/RmiClient.js"
import { ErrorId } from "../../../src/links/rmi/RmiErrorCode.js"
import { RmiSequenceGap } from "../../../src/links/rmi/RmiError.js"
import * as RmiPacket from "../../../src/links/rmi/RmiPacket.js"
import * as RmiSimulator from "../../../src/links/rmi/RmiSimulator.js"
import { HomePosition } from "../../../src/links/rmi/RobotModel.js"
import { eventually } from "./eventually.js"

const connected = (
  simulatorOptions?: RmiSimulator.RmiSimulatorOptions,
  clientOptions?: Partial<RmiClient.RmiClientOptions>
) =>
  Effect.gen(function*() {
    const sim = yield* RmiSimulator.make({ port: 0, ...simulatorOptions })
    const client = yield* RmiClient.connect({ host: "127.0.0.1", port: sim.port, ...clientOptions })
    return { sim, client }
  })

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

const systemFault = (SequenceID: number): RmiPacket.SystemFault => ({ Communication: "FRC_SystemFault", SequenceID })

describe("RmiClient", () => {
  describe("session", () => {
    it.scopedLive("connects on the connect port, continues on the session port, and initializes", () =>
      Effect.gen(function*() {
        const { sim, client } = yield* connected()
        expect(client.connectReply.PortNumber).toBe(sim.sessionPort)
        expect(sim.sessionPort).not.toBe(sim.port)
        expect(yield* sim.stats).toMatchObject({ connectionsAccepted: 2, sessionsOpened: 1 })
        expect(yield* client.readStatus).toMatchObject({ ProgramStatus: 0, NextSequenceID: 1 })
      }))

    it.scopedLive("is refused with RMIT-026 while another client holds the controller", () =>
      Effect.gen(function*() {
        const { sim } = yield* connected()
        const refused = yield* Effect.flip(RmiClient.connect({ host: "127.0.0.1", port: sim.port }))
        expect(refused).toMatchObject({ _tag: "RmiRejected", packet: "FRC_Connect", code: "RMIT-026" })
      }))

    it.scopedLive("disconnects when its scope closes, freeing the controller for the next client", () =>
      Effect.gen(function*() {
        const sim = yield* RmiSimulator.make({ port: 0 })
        yield* Effect.scoped(RmiClient.connect({ host: "127.0.0.1", port: sim.port }))
        yield* eventually(sim.snapshot, (s) => !s.connected)
        const next = yield* RmiClient.connect({ host: "127.0.0.1", port: sim.port })
        expect(yield* next.readStatus).toMatchObject({ ErrorID: 0 })
      }))

    it.scopedLive("matches every reply to its command when callers overlap", () =>
      Effect.gen(function*() {
        const { client } = yield* connected()
        const reads = [client.readStatus, client.readCartesianPosition, client.readJointAngles]
        const replies = yield* Effect.all(Array.flatten(Array.replicate(reads, 10)), { concurrency: "unbounded" })
        expect(replies.map((reply) => reply.Command)).toEqual(Array.flatten(Array.replicate(reads, 10)).map((_, i) =>
          ["FRC_GetStatus", "FRC_ReadCartesianPosition", "FRC_ReadJointAngles"][i % 3]
        ))
      }))
  })

  describe("motion", () => {
    it.scopedLive("sees the robot move when polling during a motion", () =>
      Effect.gen(function*() {
        const { client } = yield* connected({ timeScale: 4 })
        const start = yield* client.readJointAngles
        const move = yield* Effect.fork(client.instruction(nudge(200, 100)))
        const xs: Array<number> = []
        yield* eventually(
          Effect.map(client.readCartesianPosition, ({ Position }) => xs.push(Position.X) && Position.X),
          (x) => x === HomePosition.X + 200
        )
        expect((yield* Fiber.join(move)).SequenceID).toBe(1)
        const along = new Set(xs.filter((x) => x > HomePosition.X && x < HomePosition.X + 200))
        expect(along.size).toBeGreaterThanOrEqual(3)
        expect(xs).toEqual([...xs].sort((a, b) => a - b))
        const end = yield* client.readJointAngles
        expect(end.JointAngle.J2).not.toBe(start.JointAngle.J2)
      }))

    it.scopedLive("runs 30 instructions in order with never more than 8 at the controller", () =>
      Effect.gen(function*() {
        const { client, sim } = yield* connected({ timeScale: 5 })
        const finished: Array<number> = []
        yield* Effect.forEach(
          Array.range(1, 30),
          () => Effect.tap(client.instruction(nudge(10, 100)), (reply) => finished.push(reply.SequenceID)),
          { concurrency: "unbounded" }
        )
        expect(finished).toEqual(Array.range(1, 30))
        const stats = yield* sim.stats
        expect(stats.maxOutstanding).toBe(8)
        expect(stats.instructionsCompleted).toBe(30)
        expect(stats.refusals.get(ErrorId.WaitForInstructionDone)).toBeUndefined()
        expect((yield* client.readCartesianPosition).Position.X).toBe(HomePosition.X + 300)
      }))

    it.scopedLive("reports a sequence gap, refuses instructions in HOLD, and continues after reset", () =>
      Effect.gen(function*() {
        const { client, sim } = yield* connected({ timeScale: 10 })
        yield* client.instruction(nudge(1, 100))
        yield* sim.faults.skipSequenceIds(2)
        expect(yield* Effect.flip(client.instruction(nudge(1, 100)))).toEqual(new RmiSequenceGap({ sequenceId: 2 }))
        expect(yield* Effect.flip(client.instruction(nudge(1, 100)))).toEqual(new RmiSequenceGap({ sequenceId: 2 }))
        expect(yield* sim.snapshot).toMatchObject({ hold: true, nextSequenceId: 4 })

        yield* client.reset
        expect((yield* client.instruction(nudge(1, 100))).SequenceID).toBe(4)
        expect(yield* sim.snapshot).toMatchObject({ hold: false, nextSequenceId: 5 })
      }))

    it.scopedLive("abort stops the robot and fails every queued and running instruction with RmiAborted", () =>
      Effect.gen(function*() {
        const { client, sim } = yield* connected()
        const moves = yield* Effect.forEach(Array.range(1, 12), () => Effect.fork(client.instruction(nudge(100, 100))))
        yield* eventually(client.pending, (pending) => pending.sent === 8 && pending.queued === 4)
        yield* eventually(sim.snapshot, (s) => s.position.X > HomePosition.X)

        yield* client.abort
        for (const move of moves) expect(yield* Effect.flip(Fiber.join(move))).toMatchObject({ _tag: "RmiAborted" })
        const stopped = yield* sim.snapshot
        expect(stopped).toMatchObject({ program: "aborted", outstanding: 0 })
        expect(stopped.position.X).toBeLessThan(HomePosition.X + 100)
        expect(yield* client.pending).toEqual({ sent: 0, queued: 0 })

        yield* client.initialize
        expect((yield* client.instruction(nudge(1, 100))).SequenceID).toBe(1)
      }))
  })

  describe("events", () => {
    it.scopedLive("delivers an unsolicited system fault; reset and continue finish the motion", () =>
      Effect.gen(function*() {
        const { client, sim } = yield* connected({ timeScale: 2 })
        const events = yield* client.subscribe
        const move = yield* Effect.fork(client.instruction(nudge(100, 100)))
        yield* eventually(sim.snapshot, (s) => s.position.X > HomePosition.X)

        yield* sim.faults.systemFault()
        expect(yield* Queue.take(events)).toEqual(systemFault(1))
        expect(yield* client.readStatus).toMatchObject({ ProgramStatus: 1 })
        expect((yield* client.command({ Command: "FRC_ReadError" })).ErrorData).toContain("SRVO-050")

        yield* client.reset
        yield* client.command({ Command: "FRC_Continue" })
        expect((yield* Fiber.join(move)).SequenceID).toBe(1)
      }))

    it.scopedLive("says FRC_Terminate after the idle timeout, then fails with RmiConnectionLost", () =>
      Effect.gen(function*() {
        const { client } = yield* connected({ idleTimeout: "200 millis" })
        const events = yield* client.subscribe
        expect(yield* Queue.take(events)).toEqual({ Communication: "FRC_Terminate" })
        const lost = yield* Effect.flip(client.failure)
        expect(lost).toMatchObject({ _tag: "RmiConnectionLost" })
        expect(lost.reason).toContain("FRC_Terminate")
      }))
  })

  describe("faults", () => {
    it.scopedLive("fails with RmiConnectionLost when the connection drops, and so does everything pending", () =>
      Effect.gen(function*() {
        const { client, sim } = yield* connected()
        const move = yield* Effect.fork(client.instruction(nudge(100, 10)))
        yield* eventually(sim.snapshot, (s) => s.outstanding === 1)
        yield* sim.faults.dropConnection
        expect(yield* Effect.flip(client.failure)).toMatchObject({ _tag: "RmiConnectionLost" })
        expect(yield* Effect.flip(Fiber.join(move))).toMatchObject({ _tag: "RmiConnectionLost" })
        expect(yield* Effect.flip(client.readStatus)).toMatchObject({ _tag: "RmiConnectionLost" })
      }))

    it.scopedLive("times out a command while the controller stalls, and goes on once it answers again", () =>
      Effect.gen(function*() {
        const { client, sim } = yield* connected({}, { replyTimeout: "100 millis" })
        yield* sim.faults.stall("300 millis")
        expect(yield* Effect.flip(client.readStatus)).toMatchObject({ _tag: "RmiReplyTimeout", packet: "FRC_GetStatus" })
        const after = yield* eventually(Effect.either(client.readCartesianPosition), (r) => r._tag === "Right")
        expect(after).toMatchObject({ right: { Command: "FRC_ReadCartesianPosition" } })
      }))

    it.scopedLive("joins packets cut into pieces and splits packets sent together", () =>
      Effect.gen(function*() {
        const { client, sim } = yield* connected()
        const events = yield* client.subscribe
        yield* sim.faults.sendInPieces(systemFault(5), 3)
        yield* sim.faults.sendRaw(RmiPacket.encode(systemFault(6)) + RmiPacket.encode(systemFault(7)))
        expect(Chunk.toReadonlyArray(yield* Queue.takeN(events, 3))).toEqual(Array.map([5, 6, 7], systemFault))
        expect(yield* client.readStatus).toMatchObject({ ErrorID: 0 })
      }))

    it.scopedLive("fails with RmiProtocolError on garbage", () =>
      Effect.gen(function*() {
        const { client, sim } = yield* connected()
        yield* sim.faults.sendGarbage
        expect(yield* Effect.flip(client.failure)).toMatchObject({ _tag: "RmiProtocolError" })
      }))

    it.scopedLive("fails with RmiProtocolError on a line that never ends, before buffering it", () =>
      Effect.gen(function*() {
        const { client, sim } = yield* connected({}, { maxLineLength: 4096 })
        yield* sim.faults.sendUnterminated(200 * 1024)
        expect(yield* Effect.flip(client.failure)).toEqual(
          expect.objectContaining({ _tag: "RmiProtocolError", reason: "a line longer than 4096 bytes" })
        )
      }))

    it.scopedLive("fails with RmiProtocolError on a 1 MB line", () =>
      Effect.gen(function*() {
        const { client, sim } = yield* connected()
        yield* sim.faults.sendHugeLine()
        expect(yield* Effect.flip(client.failure)).toMatchObject({ _tag: "RmiProtocolError" })
      }))
  })
})
