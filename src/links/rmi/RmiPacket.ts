/**
 * The packets of FANUC's Remote Motion Interface, as `effect/Schema` models.
 *
 * Every packet is one JSON object on one line ending in `\r\n`; its first key is
 * `Communication`, `Command` or `Instruction` and names the packet. Requests go from the
 * remote device to the controller, replies come back. A reply with `ErrorID` 0 is modelled
 * per packet; a reply with any other `ErrorID` is a {@link Rejected} packet, because the
 * controller leaves out the payload fields when it refuses something.
 *
 * Decoding never throws: {@link decodeRequest} and {@link decodeReply} return an `Either`
 * whose left side is a {@link RmiDecodeError}.
 */
import { Data, Either, ParseResult, Schema } from "effect"

// ---------------------------------------------------------------------------------------
// Shared shapes

/** Robot arm configuration of a cartesian position (tool, frame, and the turn/flip bits). */
export const Configuration = Schema.Struct({
  UToolNumber: Schema.Int,
  UFrameNumber: Schema.Int,
  Front: Schema.Int,
  Up: Schema.Int,
  Left: Schema.Int,
  Flip: Schema.Int,
  Turn4: Schema.Int,
  Turn5: Schema.Int,
  Turn6: Schema.Int
})
/** Robot arm configuration of a cartesian position. */
export type Configuration = typeof Configuration.Type

/** A cartesian position in mm and degrees, with up to three extended axes. */
export const Position = Schema.Struct({
  X: Schema.Number,
  Y: Schema.Number,
  Z: Schema.Number,
  W: Schema.Number,
  P: Schema.Number,
  R: Schema.Number,
  Ext1: Schema.optional(Schema.Number),
  Ext2: Schema.optional(Schema.Number),
  Ext3: Schema.optional(Schema.Number)
})
/** A cartesian position in mm and degrees. */
export type Position = typeof Position.Type

/** Joint angles in degrees; J7–J9 are the extended axes. */
export const JointAngle = Schema.Struct({
  J1: Schema.Number,
  J2: Schema.Number,
  J3: Schema.Number,
  J4: Schema.Number,
  J5: Schema.Number,
  J6: Schema.Number,
  J7: Schema.optional(Schema.Number),
  J8: Schema.optional(Schema.Number),
  J9: Schema.optional(Schema.Number)
})
/** Joint angles in degrees. */
export type JointAngle = typeof JointAngle.Type

/** The configuration a six-axis arm uses by default: tool 1, frame 0, front/up/no-flip. */
export const DefaultConfiguration: Configuration = {
  UToolNumber: 1,
  UFrameNumber: 0,
  Front: 1,
  Up: 1,
  Left: 0,
  Flip: 0,
  Turn4: 0,
  Turn5: 0,
  Turn6: 0
}

/**
 * How `Speed` is read: mm/s, inch/min, total time in 0.1 s units, total time in ms, or
 * percent of the maximum joint speed. Linear motion accepts the first four, joint motion
 * the last three; the controller refuses the others with RMIT-030.
 */
export const SpeedType = Schema.Literal("mmSec", "InchMin", "Time", "mSec", "Percent")
/** How `Speed` is read. */
export type SpeedType = typeof SpeedType.Type

/** How a motion ends: stop exactly (FINE) or blend into the next one (CNT, CR). */
export const TermType = Schema.Literal("FINE", "CNT", "CR")
/** How a motion ends. */
export type TermType = typeof TermType.Type

/** The first key of a packet, which says what kind of packet it is. */
export type PacketKind = "Communication" | "Command" | "Instruction"

const Ok = Schema.Literal(0)

// ---------------------------------------------------------------------------------------
// Communication packets

/** Opens a session on the connect port (16001); the reply names the session port. */
export const Connect = Schema.Struct({ Communication: Schema.Literal("FRC_Connect") })
/** Ends the session. */
export const Disconnect = Schema.Struct({ Communication: Schema.Literal("FRC_Disconnect") })

/** The controller's answer to FRC_Connect: reconnect on `PortNumber`. */
export const ConnectReply = Schema.Struct({
  Communication: Schema.Literal("FRC_Connect"),
  ErrorID: Ok,
  PortNumber: Schema.Int,
  MajorVersion: Schema.Int,
  MinorVersion: Schema.Int
})
/** The controller's answer to FRC_Connect. */
export type ConnectReply = typeof ConnectReply.Type

/** The controller's answer to FRC_Disconnect. */
export const DisconnectReply = Schema.Struct({ Communication: Schema.Literal("FRC_Disconnect"), ErrorID: Ok })

/** Unsolicited: the controller ends the session because it was idle too long. */
export const Terminate = Schema.Struct({ Communication: Schema.Literal("FRC_Terminate") })
/** Unsolicited: the controller ends the session because it was idle too long. */
export type Terminate = typeof Terminate.Type

/** Unsolicited: the RMI program paused on an error caused by instruction `SequenceID`. */
export const SystemFault = Schema.Struct({ Communication: Schema.Literal("FRC_SystemFault"), SequenceID: Schema.Int })
/** Unsolicited: the RMI program paused on an error caused by instruction `SequenceID`. */
export type SystemFault = typeof SystemFault.Type

// ---------------------------------------------------------------------------------------
// Commands: take effect at once, one outstanding at a time

const OptionalGroup = { Group: Schema.optional(Schema.Int) }

/** Starts the RMI program; SequenceIDs start again at 1. */
export const Initialize = Schema.Struct({
  Command: Schema.Literal("FRC_Initialize"),
  GroupMask: Schema.optional(Schema.Int)
})
/** Aborts the RMI program and drops the queued instructions. */
export const Abort = Schema.Struct({ Command: Schema.Literal("FRC_Abort") })
/** Pauses the RMI program; motion stops where it is. */
export const Pause = Schema.Struct({ Command: Schema.Literal("FRC_Pause") })
/** Resumes a paused RMI program. */
export const Continue = Schema.Struct({ Command: Schema.Literal("FRC_Continue") })
/** Clears controller errors and the HOLD state. */
export const Reset = Schema.Struct({ Command: Schema.Literal("FRC_Reset") })
/** Sets the speed override, 1–100 percent. */
export const SetOverRide = Schema.Struct({ Command: Schema.Literal("FRC_SetOverRide"), Value: Schema.Int })
/** Reads the last `Count` (1–5) controller errors. */
export const ReadError = Schema.Struct({ Command: Schema.Literal("FRC_ReadError"), Count: Schema.optional(Schema.Int) })
/** Reads the controller status, including the next SequenceID it expects. */
export const GetStatus = Schema.Struct({ Command: Schema.Literal("FRC_GetStatus") })
/** Reads the current cartesian position. */
export const ReadCartesianPosition = Schema.Struct({
  Command: Schema.Literal("FRC_ReadCartesianPosition"),
  ...OptionalGroup
})
/** Reads the current joint angles. */
export const ReadJointAngles = Schema.Struct({ Command: Schema.Literal("FRC_ReadJointAngles"), ...OptionalGroup })

/** Every command this link speaks. */
export const Command = Schema.Union(
  Initialize,
  Abort,
  Pause,
  Continue,
  Reset,
  SetOverRide,
  ReadError,
  GetStatus,
  ReadCartesianPosition,
  ReadJointAngles
)
/** Every command this link speaks. */
export type Command = typeof Command.Type
/** The name of a command, e.g. `"FRC_GetStatus"`. */
export type CommandName = Command["Command"]

const done = <const Name extends CommandName>(name: Name) =>
  Schema.Struct({ Command: Schema.Literal(name), ErrorID: Ok })

/** The successful reply of FRC_GetStatus. `ProgramStatus`: 0 running, 1 paused, 2 aborted. */
export const StatusReply = Schema.Struct({
  Command: Schema.Literal("FRC_GetStatus"),
  ErrorID: Ok,
  ServoReady: Schema.Int,
  TPMode: Schema.Int,
  RMIMotionStatus: Schema.Int,
  ProgramStatus: Schema.Int,
  SingleStepMode: Schema.Int,
  NumberUTool: Schema.Int,
  NextSequenceID: Schema.Int,
  NumberUFrame: Schema.Int,
  Override: Schema.Int
})
/** The successful reply of FRC_GetStatus. */
export type StatusReply = typeof StatusReply.Type

/** The successful reply of FRC_ReadError: `ErrorData` … `ErrorData5` like `"SRVO-002 …"`. */
export const ReadErrorReply = Schema.Struct({
  Command: Schema.Literal("FRC_ReadError"),
  ErrorID: Ok,
  Count: Schema.optional(Schema.Int),
  ErrorData: Schema.String,
  ErrorData2: Schema.optional(Schema.String),
  ErrorData3: Schema.optional(Schema.String),
  ErrorData4: Schema.optional(Schema.String),
  ErrorData5: Schema.optional(Schema.String)
})

/** The successful reply of FRC_ReadCartesianPosition; `TimeTag` is the controller clock in ms. */
export const CartesianPositionReply = Schema.Struct({
  Command: Schema.Literal("FRC_ReadCartesianPosition"),
  ErrorID: Ok,
  TimeTag: Schema.Int,
  Configuration,
  Position,
  ...OptionalGroup
})
/** The successful reply of FRC_ReadCartesianPosition. */
export type CartesianPositionReply = typeof CartesianPositionReply.Type

/** The successful reply of FRC_ReadJointAngles; `TimeTag` is the controller clock in ms. */
export const JointAnglesReply = Schema.Struct({
  Command: Schema.Literal("FRC_ReadJointAngles"),
  ErrorID: Ok,
  TimeTag: Schema.Int,
  JointAngle,
  ...OptionalGroup
})
/** The successful reply of FRC_ReadJointAngles. */
export type JointAnglesReply = typeof JointAnglesReply.Type

/** The successful reply of each command, by command name. */
export const CommandReplies = {
  FRC_Initialize: Schema.Struct({ ...done("FRC_Initialize").fields, GroupMask: Schema.optional(Schema.Int) }),
  FRC_Abort: done("FRC_Abort"),
  FRC_Pause: done("FRC_Pause"),
  FRC_Continue: done("FRC_Continue"),
  FRC_Reset: done("FRC_Reset"),
  FRC_SetOverRide: done("FRC_SetOverRide"),
  FRC_ReadError: ReadErrorReply,
  FRC_GetStatus: StatusReply,
  FRC_ReadCartesianPosition: CartesianPositionReply,
  FRC_ReadJointAngles: JointAnglesReply
} satisfies Record<CommandName, Schema.Schema.AnyNoContext>

/** The successful reply of command `C`. */
export type CommandReplyOf<C extends Command> = (typeof CommandReplies)[C["Command"]]["Type"]

/** The successful reply of any command. */
export const CommandReply = Schema.Union(
  CommandReplies.FRC_Initialize,
  CommandReplies.FRC_Abort,
  CommandReplies.FRC_Pause,
  CommandReplies.FRC_Continue,
  CommandReplies.FRC_Reset,
  CommandReplies.FRC_SetOverRide,
  ReadErrorReply,
  StatusReply,
  CartesianPositionReply,
  JointAnglesReply
)
/** The successful reply of any command. */
export type CommandReply = typeof CommandReply.Type

// ---------------------------------------------------------------------------------------
// Instructions: queued, answered when they finish executing

const motion = <const Name extends string>(name: Name) =>
  Schema.Struct({
    Instruction: Schema.Literal(name),
    SequenceID: Schema.Int,
    Configuration,
    Position,
    SpeedType,
    Speed: Schema.Number,
    TermType,
    TermValue: Schema.Int
  })

/** Moves the tool in a straight line to `Position`. */
export const LinearMotion = motion("FRC_LinearMotion")
/** Moves the tool in a straight line by `Position` (an offset). */
export const LinearRelative = motion("FRC_LinearRelative")
/** Moves to `Position` with joint interpolation (the fastest path for the axes). */
export const JointMotion = motion("FRC_JointMotion")
/** Moves by `Position` (an offset) with joint interpolation. */
export const JointRelative = motion("FRC_JointRelative")
/**
 * Moves to `JointAngle` (degrees) with joint interpolation: FRC_JointMotion with the target
 * given as joint angles instead of a cartesian position (the manual's "joint representation").
 */
export const JointMotionJRep = Schema.Struct({
  Instruction: Schema.Literal("FRC_JointMotionJRep"),
  SequenceID: Schema.Int,
  JointAngle,
  SpeedType,
  Speed: Schema.Number,
  TermType,
  TermValue: Schema.Int
})
/** Waits `Time` seconds. */
export const WaitTime = Schema.Struct({
  Instruction: Schema.Literal("FRC_WaitTime"),
  SequenceID: Schema.Int,
  Time: Schema.Number
})

/** Every instruction this link speaks. */
export const Instruction = Schema.Union(LinearMotion, LinearRelative, JointMotion, JointRelative, JointMotionJRep, WaitTime)
/** Every instruction this link speaks. */
export type Instruction = typeof Instruction.Type
/** The name of an instruction, e.g. `"FRC_LinearMotion"`. */
export type InstructionName = Instruction["Instruction"]

/** The reply of an instruction that finished executing. */
export const InstructionReply = Schema.Struct({
  Instruction: Schema.Literal(
    "FRC_LinearMotion",
    "FRC_LinearRelative",
    "FRC_JointMotion",
    "FRC_JointRelative",
    "FRC_JointMotionJRep",
    "FRC_WaitTime"
  ),
  ErrorID: Ok,
  SequenceID: Schema.Int
})
/** The reply of an instruction that finished executing. */
export type InstructionReply = typeof InstructionReply.Type

// ---------------------------------------------------------------------------------------
// Refusals

const Failed = Schema.Int.pipe(Schema.greaterThan(0))

/**
 * A reply with a non-zero `ErrorID`: the controller refused the packet. Unparseable input
 * is refused as `{"Command":"Unknown","ErrorID":n}`; a refused instruction keeps its `SequenceID`.
 */
export const Rejected = Schema.Union(
  Schema.Struct({ Communication: Schema.String, ErrorID: Failed }),
  Schema.Struct({ Command: Schema.String, ErrorID: Failed }),
  Schema.Struct({ Instruction: Schema.String, ErrorID: Failed, SequenceID: Schema.Int })
)
/** A reply with a non-zero `ErrorID`. */
export type Rejected = typeof Rejected.Type

// ---------------------------------------------------------------------------------------
// Directions

/** Everything a remote device sends to the controller. */
export const Request = Schema.Union(Connect, Disconnect, Command, Instruction)
/** Everything a remote device sends to the controller. */
export type Request = typeof Request.Type

/** Everything the controller sends: replies, refusals and unsolicited packets. */
export const Reply = Schema.Union(
  ConnectReply,
  DisconnectReply,
  Terminate,
  SystemFault,
  CommandReply,
  InstructionReply,
  Rejected
)
/** Everything the controller sends. */
export type Reply = typeof Reply.Type

/** Any packet, either direction. */
export type Packet = Request | Reply

// ---------------------------------------------------------------------------------------
// Wire format

/** Why a line is not a packet this link understands. */
export type DecodeFailure = "NotJson" | "BadFirstKey" | "UnknownName" | "InvalidFields"

/**
 * A line that is not a packet this link understands. `kind`, `name` and `sequenceId` are
 * filled in as far as the line got, so a controller can echo them in its refusal.
 */
export class RmiDecodeError extends Data.TaggedError("RmiDecodeError")<{
  readonly reason: DecodeFailure
  readonly message: string
  readonly kind?: PacketKind
  readonly name?: string
  readonly sequenceId?: number
}> {}

const kinds: ReadonlyArray<PacketKind> = ["Communication", "Command", "Instruction"]

const requestNames: Record<PacketKind, ReadonlySet<string>> = {
  Communication: new Set(["FRC_Connect", "FRC_Disconnect"]),
  Command: new Set(Object.keys(CommandReplies)),
  Instruction: new Set(InstructionReply.fields.Instruction.literals)
}

/** The first key of a packet, which is also where its name is. */
export const kindOf = (packet: Packet): PacketKind =>
  "Communication" in packet ? "Communication" : "Command" in packet ? "Command" : "Instruction"

/** The name of a packet, e.g. `"FRC_GetStatus"`. */
export const nameOf = (packet: Packet): string => (packet as Record<PacketKind, string>)[kindOf(packet)]

/** One line of the wire format: the packet as JSON, its kind key first, then `\r\n`. */
export const encode = (packet: Packet): string => {
  const kind = kindOf(packet)
  const { [kind]: name, ...fields } = packet as Record<string, unknown>
  return JSON.stringify({ [kind]: name, ...fields }) + "\r\n"
}

const decoder = <A, I>(schema: Schema.Schema<A, I>, names?: Record<PacketKind, ReadonlySet<string>>) => {
  const decodeFields = Schema.decodeUnknownEither(schema)
  return (line: string): Either.Either<A, RmiDecodeError> => {
    let json: unknown
    try {
      json = JSON.parse(line)
    } catch {
      return Either.left(new RmiDecodeError({ reason: "NotJson", message: `not JSON: ${excerpt(line)}` }))
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      return Either.left(new RmiDecodeError({ reason: "NotJson", message: `not a JSON object: ${excerpt(line)}` }))
    }
    const record = json as Record<string, unknown>
    const kind = kinds.find((k) => k === Object.keys(record)[0])
    if (kind === undefined) {
      return Either.left(
        new RmiDecodeError({
          reason: "BadFirstKey",
          message: `first key is not Communication, Command or Instruction: ${excerpt(line)}`
        })
      )
    }
    const name = typeof record[kind] === "string" ? (record[kind] as string) : undefined
    const sequenceId = Number.isInteger(record.SequenceID) ? (record.SequenceID as number) : undefined
    if (name === undefined || (names !== undefined && !names[kind].has(name))) {
      return Either.left(
        new RmiDecodeError({
          reason: "UnknownName",
          message: `unknown ${kind} ${excerpt(String(record[kind]))}`,
          kind,
          sequenceId
        })
      )
    }
    return Either.mapLeft(
      decodeFields(record),
      (error) =>
        new RmiDecodeError({
          reason: "InvalidFields",
          message: `${name}: ${ParseResult.TreeFormatter.formatErrorSync(error)}`,
          kind,
          name,
          sequenceId
        })
    )
  }
}

const excerpt = (text: string): string =>
  text.length > 80 ? `${JSON.stringify(text.slice(0, 80))}…` : JSON.stringify(text)

/** Decodes one line (without `\r\n`) sent by a remote device; what a controller does. */
export const decodeRequest: (line: string) => Either.Either<Request, RmiDecodeError> = decoder(Request, requestNames)

/** Decodes one line (without `\r\n`) sent by a controller; what a remote device does. */
export const decodeReply: (line: string) => Either.Either<Reply, RmiDecodeError> = decoder(Reply)

/** True when a reply is a refusal (non-zero `ErrorID`). */
export const isRejected = (reply: Reply): reply is Rejected => "ErrorID" in reply && reply.ErrorID !== 0

/** The refusal of a packet: its kind and name echoed with a non-zero `ErrorID`, and an instruction's `SequenceID`. */
export const rejected = (kind: PacketKind, name: string, errorId: number, sequenceId?: number): Rejected =>
  kind === "Instruction"
    ? { Instruction: name, ErrorID: errorId, SequenceID: sequenceId ?? 0 }
    : kind === "Command"
    ? { Command: name, ErrorID: errorId }
    : { Communication: name, ErrorID: errorId }

/** An instruction without its `SequenceID`, which the client assigns. */
export type InstructionBody = WithoutSequenceId<Instruction>
type WithoutSequenceId<I> = I extends unknown ? Omit<I, "SequenceID"> : never
