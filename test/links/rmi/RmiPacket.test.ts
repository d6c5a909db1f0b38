import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as fc from "fast-check"
import * as ErrorCode from "../../../src/links/rmi/RmiErrorCode.js"
import * as RmiPacket from "../../../src/links/rmi/RmiPacket.js"

const move: RmiPacket.Instruction = {
  Instruction: "FRC_LinearMotion",
  SequenceID: 7,
  Configuration: RmiPacket.DefaultConfiguration,
  Position: { X: 500, Y: 100, Z: 300, W: 180, P: 0, R: 0 },
  SpeedType: "mmSec",
  Speed: 250,
  TermType: "FINE",
  TermValue: 1
}

const failure = (result: Either.Either<unknown, RmiPacket.RmiDecodeError>) =>
  Either.match(result, {
    onLeft: ({ kind, name, reason, sequenceId }) => ({ reason, kind, name, sequenceId }),
    onRight: () => undefined
  })

describe("RmiPacket", () => {
  it("writes one line per packet, its kind key first", () => {
    const line = RmiPacket.encode({ ErrorID: 0, Command: "FRC_Abort" } as unknown as RmiPacket.Packet)
    expect(line).toBe(`{"Command":"FRC_Abort","ErrorID":0}\r\n`)
  })

  it("reads back what it writes", () => {
    expect(RmiPacket.decodeRequest(RmiPacket.encode(move).trimEnd())).toEqual(Either.right(move))
    const status = `{"Command":"FRC_GetStatus","ErrorID":0,"ServoReady":1,"TPMode":0,"RMIMotionStatus":0,"ProgramStatus":0,` +
      `"SingleStepMode":0,"NumberUTool":1,"NextSequenceID":3,"NumberUFrame":0,"Override":100}`
    const next = Either.map(RmiPacket.decodeReply(status), (reply) => "NextSequenceID" in reply && reply.NextSequenceID)
    expect(next).toEqual(Either.right(3))
  })

  it("reads a refusal without the fields of a successful reply", () => {
    const reply = RmiPacket.decodeReply(`{"Instruction":"FRC_LinearMotion","ErrorID":2556957,"SequenceID":9}`)
    expect(Either.map(reply, RmiPacket.isRejected)).toEqual(Either.right(true))
    expect(RmiPacket.decodeReply(`{"Command":"Unknown","ErrorID":2556950}`)).toEqual(
      Either.right({ Command: "Unknown", ErrorID: 2556950 })
    )
  })

  it("ignores fields it does not know, so newer controllers still decode", () => {
    const fault = RmiPacket.decodeReply(`{"Communication":"FRC_SystemFault","SequenceID":4,"Severity":"high"}`)
    expect(fault).toEqual(Either.right({ Communication: "FRC_SystemFault", SequenceID: 4 }))
  })

  it("names what is wrong with a bad line, with as much of the packet as it could read", () => {
    expect(failure(RmiPacket.decodeRequest(`{"Command":`))).toMatchObject({ reason: "NotJson" })
    expect(failure(RmiPacket.decodeRequest(`[1,2]`))).toMatchObject({ reason: "NotJson" })
    expect(failure(RmiPacket.decodeRequest(`{"ErrorID":0,"Command":"FRC_Abort"}`))).toMatchObject({ reason: "BadFirstKey" })
    expect(failure(RmiPacket.decodeRequest(`{"Command":"FRC_SelfDestruct"}`))).toMatchObject({
      reason: "UnknownName",
      kind: "Command"
    })
    expect(failure(RmiPacket.decodeRequest(`{"Instruction":"FRC_LinearMotion","SequenceID":3,"Speed":"fast"}`))).toEqual({
      reason: "InvalidFields",
      kind: "Instruction",
      name: "FRC_LinearMotion",
      sequenceId: 3
    })
    expect(failure(RmiPacket.decodeReply(`{"Command":"FRC_GetStatus","ErrorID":0}`))).toMatchObject({
      reason: "InvalidFields"
    })
  })

  it("never throws, whatever the line", () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.json()), (line) => {
      RmiPacket.decodeRequest(line)
      RmiPacket.decodeReply(line)
    }))
  })

  it("knows the RMIT numbering", () => {
    expect(ErrorCode.code(2556929)).toBe("RMIT-001")
    expect(ErrorCode.code(ErrorCode.ErrorId.InvalidTextString)).toBe("RMIT-022")
    expect(ErrorCode.code(ErrorCode.ErrorId.AlreadyConnected)).toBe("RMIT-026")
    expect(ErrorCode.ErrorId.WaitForInstructionDone).toBe(2556956)
    expect(ErrorCode.ErrorId.InvalidSequenceId).toBe(2556957)
    expect(ErrorCode.describe(2556957)).toBe("RMIT-029 Invalid sequence ID number (2556957)")
  })
})
