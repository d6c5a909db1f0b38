/**
 * The errors of the RMI client, as tagged classes to `catchTag` by name.
 *
 * Two of them mean the link is dead and must be rebuilt ({@link RmiLinkError}); the others
 * concern one packet and leave the link usable.
 */
import { Data, Duration } from "effect"
import * as ErrorCode from "./RmiErrorCode.js"

/** The connection is gone: it could not be opened, the controller closed it (after FRC_Terminate, say), or it broke. */
export class RmiConnectionLost extends Data.TaggedError("RmiConnectionLost")<{ readonly reason: string }> {
  /** e.g. `"connection lost: the controller closed the connection"`. */
  override get message() {
    return `connection lost: ${this.reason}`
  }
}

/** The controller sent something the link cannot understand or did not expect; nothing after it can be trusted. */
export class RmiProtocolError extends Data.TaggedError("RmiProtocolError")<{ readonly reason: string }> {
  /** e.g. `"RMI protocol error: reply to unknown instruction 7"`. */
  override get message() {
    return `RMI protocol error: ${this.reason}`
  }
}

/** The link is dead; the client fails every call with this from now on. */
export type RmiLinkError = RmiConnectionLost | RmiProtocolError

/** No reply to a command within the reply timeout. The reply may still come; it is then dropped. */
export class RmiReplyTimeout extends Data.TaggedError("RmiReplyTimeout")<{
  readonly packet: string
  readonly timeout: Duration.Duration
}> {
  /** e.g. `"no reply to FRC_GetStatus within 5s"`. */
  override get message() {
    return `no reply to ${this.packet} within ${Duration.format(this.timeout)}`
  }
}

/** The controller refused a packet with a non-zero `ErrorID`. */
export class RmiRejected extends Data.TaggedError("RmiRejected")<{
  readonly packet: string
  readonly errorId: number
  /** e.g. `"RMIT-026"`. */
  readonly code: string
}> {
  /** The refusal of `packet` with `errorId`. */
  static of(packet: string, errorId: number): RmiRejected {
    return new RmiRejected({ packet, errorId, code: ErrorCode.code(errorId) })
  }

  /** e.g. `"FRC_Continue refused: RMIT-010 TP Program is Not Paused (2556938)"`. */
  override get message() {
    return `${this.packet} refused: ${ErrorCode.describe(this.errorId)}`
  }
}

/**
 * RMIT-029: the controller expected another SequenceID than `sequenceId` and went into
 * HOLD. Instructions already accepted keep running; every other one fails with this error
 * until `reset` brings client and controller back in step.
 */
export class RmiSequenceGap extends Data.TaggedError("RmiSequenceGap")<{ readonly sequenceId: number }> {
  /** e.g. `"SequenceID 4 out of sequence (RMIT-029): RMI holds until FRC_Reset"`. */
  override get message() {
    return `SequenceID ${this.sequenceId} out of sequence (RMIT-029): RMI holds until FRC_Reset`
  }
}

/** The instruction was dropped, unfinished, by FRC_Abort or FRC_Initialize. */
export class RmiAborted extends Data.TaggedError("RmiAborted")<{ readonly instruction: string }> {
  /** e.g. `"FRC_LinearMotion aborted before it finished"`. */
  override get message() {
    return `${this.instruction} aborted before it finished`
  }
}

/** Why a command failed. */
export type RmiCommandError = RmiRejected | RmiReplyTimeout | RmiLinkError

/** Why an instruction failed. */
export type RmiInstructionError = RmiRejected | RmiSequenceGap | RmiAborted | RmiLinkError
