/**
 * The errors of the RMI client, as tagged classes to `catchTag` by name.
 *
 * Two of them mean the link is dead and must be rebuilt ({@link RmiLinkError}); the others
 * concern one packet and leave the link usable.
 */
import { Data, type Duration } from "effect"
import * as ErrorCode from "./RmiErrorCode.js"

/** The connection is gone: it could not be opened, the controller closed it (after FRC_Terminate, say), or it broke. */
export class RmiConnectionLost extends Data.TaggedError("RmiConnectionLost")<{ readonly reason: string }> {}

/** The controller sent something the link cannot understand or did not expect; nothing after it can be trusted. */
export class RmiProtocolError extends Data.TaggedError("RmiProtocolError")<{ readonly reason: string }> {}

/** The link is dead; the client fails every call with this from now on. */
export type RmiLinkError = RmiConnectionLost | RmiProtocolError

/** No reply to a command within the reply timeout. The reply may still come; it is then dropped. */
export class RmiReplyTimeout extends Data.TaggedError("RmiReplyTimeout")<{
  readonly packet: string
  readonly timeout: Duration.Duration
}> {}

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
export class RmiSequenceGap extends Data.TaggedError("RmiSequenceGap")<{ readonly sequenceId: number }> {}

/** The instruction was dropped, unfinished, by FRC_Abort or FRC_Initialize. */
export class RmiAborted extends Data.TaggedError("RmiAborted")<{ readonly instruction: string }> {}

/** Why a command failed. */
export type RmiCommandError = RmiRejected | RmiReplyTimeout | RmiLinkError

/** Why an instruction failed. */
export type RmiInstructionError = RmiRejected | RmiSequenceGap | RmiAborted | RmiLinkError
