/**
 * The controller's `ErrorID` values (FANUC B-84184EN/03, appendix A.1).
 *
 * `RMIT-nnn` is encoded as `2556928 + nnn`, so RMIT-001 is 2556929. Only the codes this
 * link or its simulator act on are named; `describe` renders any id for logs.
 */

/** Base of the RMIT codes: `RMIT-nnn` is `RmitBase + nnn`. */
export const RmitBase = 2556928

/** The `ErrorID` values fleetvisor's RMI link and simulator act on, by meaning. */
export const ErrorId = {
  /** RMIT-009: instructions arrive while the RMI program is not running (not initialized, or aborted). */
  RmiNotRunning: RmitBase + 9,
  /** RMIT-010: FRC_Continue while the program is not paused. */
  NotPaused: RmitBase + 10,
  /** RMIT-013: a command name the controller does not know. */
  InvalidCommand: RmitBase + 13,
  /** RMIT-020: an instruction name the controller does not know. */
  InvalidInstruction: RmitBase + 20,
  /** RMIT-021: a value out of range (e.g. FRC_ReadError `Count`). */
  InvalidValue: RmitBase + 21,
  /** RMIT-022: text that is not a packet (not JSON, or a first key other than Communication/Command/Instruction). */
  InvalidTextString: RmitBase + 22,
  /** RMIT-024: RMI is in HOLD (after a sequence gap) and refuses new instructions until FRC_Reset. */
  Hold: RmitBase + 24,
  /** RMIT-026: another remote device is already connected. */
  AlreadyConnected: RmitBase + 26,
  /** RMIT-028: 8 instructions are already outstanding. */
  WaitForInstructionDone: RmitBase + 28,
  /** RMIT-029: the SequenceID is not the next one expected; RMI goes into HOLD. */
  InvalidSequenceId: RmitBase + 29,
  /** RMIT-030: a SpeedType the motion type does not accept. */
  InvalidSpeedType: RmitBase + 30,
  /** RMIT-031: a Speed that is not positive. */
  InvalidSpeedValue: RmitBase + 31,
  /** RMIT-005: FRC_SetOverRide outside 1–100. */
  InvalidSpeedOverride: RmitBase + 5,
  /** RMIT-049: an instruction packet whose fields do not fit its instruction. */
  InvalidInstructionPacket: RmitBase + 49,
  /** RMIT-051: a line longer than the controller accepts. */
  InvalidStringSize: RmitBase + 51
} as const

/** `"RMIT-028"` for 2556956; `"ErrorID 42"` for ids outside the RMIT range. */
export const code = (errorId: number): string => {
  const n = errorId - RmitBase
  return n >= 1 && n <= 999 ? `RMIT-${String(n).padStart(3, "0")}` : `ErrorID ${errorId}`
}

const messages: Record<number, string> = {
  [ErrorId.RmiNotRunning]: "RMI is Not Running",
  [ErrorId.NotPaused]: "TP Program is Not Paused",
  [ErrorId.InvalidCommand]: "Invalid RMI Command",
  [ErrorId.InvalidInstruction]: "Invalid RMI Instruction",
  [ErrorId.InvalidValue]: "Invalid Value",
  [ErrorId.InvalidTextString]: "Invalid Text String",
  [ErrorId.Hold]: "RMI is In HOLD State",
  [ErrorId.AlreadyConnected]: "Robot is Already Connected",
  [ErrorId.WaitForInstructionDone]: "Wait for Instruction Done",
  [ErrorId.InvalidSequenceId]: "Invalid sequence ID number",
  [ErrorId.InvalidSpeedType]: "Invalid Speed Type",
  [ErrorId.InvalidSpeedValue]: "Invalid Speed Value",
  [ErrorId.InvalidSpeedOverride]: "Invalid Speed Override",
  [ErrorId.InvalidInstructionPacket]: "Invalid Instruction packet",
  [ErrorId.InvalidStringSize]: "Invalid ASCII string size"
}

/** A human-readable rendering, e.g. `"RMIT-029 Invalid sequence ID number (2556957)"`. */
export const describe = (errorId: number): string => {
  const message = messages[errorId]
  return message === undefined ? `${code(errorId)}` : `${code(errorId)} ${message} (${errorId})`
}
