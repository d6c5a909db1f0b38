/**
 * The RMI side of a FANUC controller as a state machine, without sockets or clocks: it
 * receives commands and instructions, is told how much time has passed, and answers with
 * reply packets. {@link RmiSimulator} puts it behind TCP.
 *
 * What it keeps from the real controller:
 * - the RMI program is aborted until FRC_Initialize, which also makes SequenceID 1 the next one;
 * - at most {@link MaxOutstanding} instructions are accepted and unfinished; one more is refused
 *   with RMIT-028 and not queued;
 * - a SequenceID other than the next one is refused with RMIT-029 and puts RMI in HOLD: the
 *   queued instructions keep running, new ones are refused with RMIT-024, until FRC_Reset;
 * - instructions run one after the other, and each is answered when it finishes;
 * - FRC_Pause freezes motion, FRC_Continue resumes it, FRC_SetOverRide scales its speed;
 * - FRC_Abort stops the motion where it is and drops the queue without answering it; the
 *   instruction it interrupted is still answered (`ErrorID` 0), right after FRC_Abort's own
 *   reply: {@link RmiController.takeReplies}.
 *
 * It also records, as a strict controller would, what a careful remote device never does:
 * instructions accepted after FRC_Abort and before FRC_Reset (`motionsAfterAbort`). The
 * abort is remembered across sessions, and FRC_Initialize alone does not clear it, so a
 * device that reconnects and re-initialises after an emergency stop is caught.
 */
import { Either } from "effect"
import * as ErrorCode from "./RmiErrorCode.js"
import * as RmiPacket from "./RmiPacket.js"
import * as RobotModel from "./RobotModel.js"

/** How many instructions the controller holds unfinished at most (the manual's number). */
export const MaxOutstanding = 8

/** The state of the RMI program, as FRC_GetStatus reports it in `ProgramStatus`. */
export type ProgramStatus = "running" | "paused" | "aborted"

/** Counters for tests and dashboards. */
export interface ControllerStats {
  /** The most instructions that were ever accepted and unfinished at once. */
  readonly maxOutstanding: number
  readonly instructionsAccepted: number
  readonly instructionsCompleted: number
  readonly abortsReceived: number
  /** Instructions accepted after FRC_Abort without FRC_Reset since, in this session or a later one. */
  readonly motionsAfterAbort: number
  /** How many packets were refused, by `ErrorID`. */
  readonly refusals: ReadonlyMap<number, number>
}

/** Where the robot is and what its RMI program is doing. */
export interface ControllerSnapshot {
  readonly position: RmiPacket.Position
  readonly joints: RmiPacket.JointAngle
  readonly program: ProgramStatus
  readonly hold: boolean
  readonly nextSequenceId: number
  /** Instructions accepted and not finished, the running one included. */
  readonly outstanding: number
  readonly override: number
}

interface Running {
  readonly instruction: RmiPacket.Instruction
  readonly motion: RobotModel.Motion
  elapsedMs: number
}

/** A controller's RMI state machine; see the module documentation. */
export class RmiController {
  private position: RmiPacket.Position
  private readonly configuration: RmiPacket.Configuration
  private override = 100
  private clockMs = 0
  private program: ProgramStatus = "aborted"
  private hold = false
  private expected = 1
  private queue: Array<RmiPacket.Instruction> = []
  private running: Running | undefined
  /** Replies owed now, outside of motion: that of the instruction FRC_Abort interrupted. */
  private owed: Array<RmiPacket.InstructionReply> = []
  /** FRC_Abort came and FRC_Reset has not, whatever sessions came and went. */
  private abortedSinceReset = false
  private errors: Array<string> = []
  private readonly counters = {
    maxOutstanding: 0,
    instructionsAccepted: 0,
    instructionsCompleted: 0,
    abortsReceived: 0,
    motionsAfterAbort: 0,
    refusals: new Map<number, number>()
  }

  constructor(options?: { readonly position?: RmiPacket.Position; readonly configuration?: RmiPacket.Configuration }) {
    this.position = options?.position ?? RobotModel.HomePosition
    this.configuration = options?.configuration ?? RmiPacket.DefaultConfiguration
  }

  /**
   * Handles a command or an instruction; returns the reply to send now, if any. An accepted
   * instruction is answered by {@link advance}, when it finishes, or by {@link takeReplies}
   * when FRC_Abort interrupts it.
   */
  receive(request: RmiPacket.Command | RmiPacket.Instruction): RmiPacket.Reply | undefined {
    return "Command" in request ? this.command(request) : this.instruction(request)
  }

  /** The instruction replies owed now, to send right after the reply `receive` returned: that of the instruction FRC_Abort interrupted. */
  takeReplies(): ReadonlyArray<RmiPacket.InstructionReply> {
    const owed = this.owed
    this.owed = []
    return owed
  }

  /** Lets `elapsedMs` of robot time pass; returns the replies owed ({@link takeReplies}), then those of the instructions that finished. */
  advance(elapsedMs: number): ReadonlyArray<RmiPacket.InstructionReply> {
    this.clockMs += elapsedMs
    const finished = [...this.takeReplies()]
    if (this.program !== "running") return finished
    let budget = (elapsedMs * this.override) / 100
    for (;;) {
      const running = this.running ?? this.startNext()
      if (running === undefined) break
      const remaining = running.motion.durationMs - running.elapsedMs
      if (budget < remaining) {
        running.elapsedMs += budget
        const { from, to, durationMs } = running.motion
        this.position = RobotModel.interpolate(from, to, running.elapsedMs / durationMs)
        break
      }
      budget -= remaining
      this.position = running.motion.to
      this.running = undefined
      this.counters.instructionsCompleted++
      const { Instruction, SequenceID } = running.instruction
      finished.push({ Instruction, ErrorID: 0, SequenceID })
    }
    return finished
  }

  /**
   * Robot time until {@link advance} has something to do: 0 when replies are owed or an
   * instruction waits to start, the rest of the running motion at the current override, and
   * undefined when nothing moves (nothing to wait for).
   */
  untilNextEvent(): number | undefined {
    if (this.owed.length > 0) return 0
    if (this.program !== "running") return undefined
    if (this.running === undefined) return this.queue.length > 0 ? 0 : undefined
    if (this.override <= 0) return undefined
    return ((this.running.motion.durationMs - this.running.elapsedMs) * 100) / this.override
  }

  /**
   * Raises a system fault: the program pauses, the error is logged for FRC_ReadError, and
   * the unsolicited packet names the instruction at fault (the running one by default).
   */
  systemFault(sequenceId?: number): RmiPacket.SystemFault {
    if (this.program === "running") this.program = "paused"
    this.log("SRVO-050 Collision Detect alarm")
    return {
      Communication: "FRC_SystemFault",
      SequenceID: sequenceId ?? this.running?.instruction.SequenceID ?? this.expected - 1
    }
  }

  /** Makes the controller expect a later SequenceID, as if packets had been lost: the next one is a gap. */
  skipSequenceIds(count: number): void {
    this.expected += count
  }

  /** The remote device is gone: the RMI program is aborted, as the real controller does, and owed replies are dropped. */
  endSession(): void {
    this.abort()
    this.owed = []
    this.hold = false
  }

  /** Where the robot is and what its RMI program is doing. */
  snapshot(): ControllerSnapshot {
    return {
      position: this.position,
      joints: RobotModel.jointsOf(this.position),
      program: this.program,
      hold: this.hold,
      nextSequenceId: this.expected,
      outstanding: this.outstanding(),
      override: this.override
    }
  }

  /** Counters for tests and dashboards. */
  stats(): ControllerStats {
    return { ...this.counters, refusals: new Map(this.counters.refusals) }
  }

  /** Counts a refusal that happened outside the state machine (undecodable packets, a second device). */
  countRefusal(errorId: number): void {
    this.counters.refusals.set(errorId, (this.counters.refusals.get(errorId) ?? 0) + 1)
  }

  private command(command: RmiPacket.Command): RmiPacket.Reply {
    const ok = { Command: command.Command, ErrorID: 0 } as const
    switch (command.Command) {
      case "FRC_Initialize":
        this.abort()
        this.program = "running"
        this.hold = false
        this.expected = 1
        return command.GroupMask === undefined ? ok : { ...ok, GroupMask: command.GroupMask }
      case "FRC_Abort":
        this.counters.abortsReceived++
        this.abortedSinceReset = true
        if (this.running !== undefined) {
          const { Instruction, SequenceID } = this.running.instruction
          this.owed.push({ Instruction, ErrorID: 0, SequenceID })
        }
        this.abort()
        return ok
      case "FRC_Pause":
        if (this.program === "aborted") return this.refuse("Command", command.Command, ErrorCode.ErrorId.RmiNotRunning)
        this.program = "paused"
        return ok
      case "FRC_Continue":
        if (this.program !== "paused") return this.refuse("Command", command.Command, ErrorCode.ErrorId.NotPaused)
        this.program = "running"
        return ok
      case "FRC_Reset":
        this.hold = false
        this.abortedSinceReset = false
        return ok
      case "FRC_SetOverRide":
        if (command.Value < 1 || command.Value > 100) {
          return this.refuse("Command", command.Command, ErrorCode.ErrorId.InvalidSpeedOverride)
        }
        this.override = command.Value
        return ok
      case "FRC_ReadError":
        return this.readError(command.Count ?? 1)
      case "FRC_GetStatus":
        return {
          Command: "FRC_GetStatus",
          ErrorID: 0,
          ServoReady: 1,
          TPMode: 0,
          RMIMotionStatus: this.running === undefined ? 0 : 1,
          ProgramStatus: this.program === "running" ? 0 : this.program === "paused" ? 1 : 2,
          SingleStepMode: 0,
          NumberUTool: this.configuration.UToolNumber,
          NextSequenceID: this.expected,
          NumberUFrame: this.configuration.UFrameNumber,
          Override: this.override
        }
      case "FRC_ReadCartesianPosition":
        return {
          Command: "FRC_ReadCartesianPosition",
          ErrorID: 0,
          TimeTag: Math.round(this.clockMs),
          Configuration: this.configuration,
          Position: this.position,
          ...(command.Group === undefined ? {} : { Group: command.Group })
        }
      case "FRC_ReadJointAngles":
        return {
          Command: "FRC_ReadJointAngles",
          ErrorID: 0,
          TimeTag: Math.round(this.clockMs),
          JointAngle: RobotModel.jointsOf(this.position),
          ...(command.Group === undefined ? {} : { Group: command.Group })
        }
    }
  }

  private instruction(instruction: RmiPacket.Instruction): RmiPacket.Reply | undefined {
    const refuse = (errorId: number) =>
      this.refuse("Instruction", instruction.Instruction, errorId, instruction.SequenceID)
    if (this.program === "aborted") return refuse(ErrorCode.ErrorId.RmiNotRunning)
    if (this.hold) return refuse(ErrorCode.ErrorId.Hold)
    if (this.outstanding() >= MaxOutstanding) return refuse(ErrorCode.ErrorId.WaitForInstructionDone)
    if (instruction.SequenceID !== this.expected) {
      this.hold = true
      return refuse(ErrorCode.ErrorId.InvalidSequenceId)
    }
    const invalid = Either.getLeft(RobotModel.plan(instruction, this.position))
    if (invalid._tag === "Some") return refuse(invalid.value)
    this.expected++
    this.queue.push(instruction)
    this.counters.instructionsAccepted++
    if (this.abortedSinceReset) this.counters.motionsAfterAbort++
    this.counters.maxOutstanding = Math.max(this.counters.maxOutstanding, this.outstanding())
    return undefined
  }

  private startNext(): Running | undefined {
    const instruction = this.queue.shift()
    if (instruction === undefined) return undefined
    // Validated on receipt, so planning from wherever the robot is now succeeds.
    const motion = Either.getOrThrow(RobotModel.plan(instruction, this.position))
    this.running = { instruction, motion, elapsedMs: 0 }
    return this.running
  }

  private abort(): void {
    this.program = "aborted"
    this.queue = []
    this.running = undefined
  }

  private outstanding(): number {
    return this.queue.length + (this.running === undefined ? 0 : 1)
  }

  private readError(count: number): RmiPacket.Reply {
    if (count < 1 || count > 5) return this.refuse("Command", "FRC_ReadError", ErrorCode.ErrorId.InvalidValue)
    const [first = "", ...rest] = this.errors.slice(0, count)
    const more = Object.fromEntries(rest.map((error, i) => [`ErrorData${i + 2}`, error]))
    return { Command: "FRC_ReadError", ErrorID: 0, Count: count, ErrorData: first, ...more }
  }

  private refuse(kind: RmiPacket.PacketKind, name: string, errorId: number, sequenceId?: number): RmiPacket.Rejected {
    this.countRefusal(errorId)
    this.log(ErrorCode.describe(errorId))
    return RmiPacket.rejected(kind, name, errorId, sequenceId)
  }

  private log(error: string): void {
    this.errors = [error, ...this.errors].slice(0, 5)
  }
}
