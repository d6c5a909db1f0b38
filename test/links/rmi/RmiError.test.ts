import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration } from "effect"
import {
  RmiAborted,
  RmiConnectionLost,
  RmiProtocolError,
  RmiRejected,
  RmiReplyTimeout,
  RmiSequenceGap
} from "../../../src/links/rmi/RmiError.js"

describe("RmiError", () => {
  it("names its reason in its message, and so in Cause.pretty", () => {
    const errors = [
      new RmiConnectionLost({ reason: "the controller closed the connection" }),
      new RmiProtocolError({ reason: "reply to unknown instruction 7" }),
      new RmiReplyTimeout({ packet: "FRC_GetStatus", timeout: Duration.millis(400) }),
      new RmiSequenceGap({ sequenceId: 4 }),
      new RmiAborted({ instruction: "FRC_LinearMotion" }),
      RmiRejected.of("FRC_Continue", 2556938)
    ]
    expect(errors.map((error) => error.message)).toEqual([
      "connection lost: the controller closed the connection",
      "RMI protocol error: reply to unknown instruction 7",
      "no reply to FRC_GetStatus within 400ms",
      "SequenceID 4 out of sequence (RMIT-029): RMI holds until FRC_Reset",
      "FRC_LinearMotion aborted before it finished",
      "FRC_Continue refused: RMIT-010 TP Program is Not Paused (2556938)"
    ])
    for (const error of errors) expect(Cause.pretty(Cause.fail(error))).toContain(`${error._tag}: ${error.message}`)
  })
})
