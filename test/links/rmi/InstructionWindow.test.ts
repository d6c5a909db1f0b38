import { describe, expect, it } from "@effect/vitest"
import { Array, Deferred, Effect, Option } from "effect"
import { InstructionWindow, MaxCancelled } from "../../../src/links/rmi/InstructionWindow.js"
import type { RmiInstructionError } from "../../../src/links/rmi/RmiError.js"
import type * as RmiPacket from "../../../src/links/rmi/RmiPacket.js"

const wait: RmiPacket.InstructionBody = { Instruction: "FRC_WaitTime", Time: 1 }

const done = (SequenceID: number): RmiPacket.InstructionReply => ({ Instruction: "FRC_WaitTime", ErrorID: 0, SequenceID })

/** A window of `limit` that records the SequenceIDs it sends. */
const windowOf = (limit: number) => {
  const sent: Array<number> = []
  const window = new InstructionWindow(limit, (instruction) => sent.push(instruction.SequenceID))
  const submit = () => {
    const deferred = Effect.runSync(Deferred.make<RmiPacket.InstructionReply, RmiInstructionError>())
    window.submit(wait, deferred)
    return deferred
  }
  return { window, sent, submit }
}

/** How the instruction ended: its reply, the tag of its error, or `undefined` while it has not. */
const outcome = (deferred: Deferred.Deferred<RmiPacket.InstructionReply, RmiInstructionError>) =>
  Option.match(Effect.runSync(Deferred.poll(deferred)), {
    onNone: () => undefined,
    onSome: (result) => Effect.runSync(Effect.match(result, { onFailure: (error) => error._tag, onSuccess: (reply) => reply }))
  })

describe("InstructionWindow", () => {
  it("ignores and counts one late reply per instruction sent before an abort; others are unknown", () => {
    const { window, sent, submit } = windowOf(2)
    const instructions = [submit(), submit(), submit()]
    expect(sent).toEqual([1, 2])
    window.abortAll()
    expect(instructions.map(outcome)).toEqual(["RmiAborted", "RmiAborted", "RmiAborted"])

    expect(window.settle(done(1))).toBe("ignored")
    expect(window.settle(done(1))).toBe("unknown")
    expect(window.settle(done(3))).toBe("unknown")
    expect(window.settle(done(2))).toBe("ignored")
    expect(window.cancelledReplies).toBe(2)
    expect(window.size).toEqual({ sent: 0, queued: 0 })
  })

  it("keeps the cancelled SequenceIDs over FRC_Reset's restart and forgets them on FRC_Initialize", () => {
    const { window, submit } = windowOf(8)
    submit()
    submit()
    window.abortAll()
    window.restart(3)
    expect(window.settle(done(1))).toBe("ignored")
    window.initialize()
    expect(window.settle(done(2))).toBe("unknown")
    expect(window.cancelledReplies).toBe(1)
  })

  it("sends nothing while FRC_Initialize is out, and takes a late answer to what it cancelled as late", () => {
    const { sent, submit, window } = windowOf(8)
    submit()
    window.holdForInitialize()
    const during = submit()
    expect(sent).toEqual([1])
    // The controller refuses SequenceID 1 after it re-initialised (RMIT-029): a late answer, not an unknown one.
    window.initialize()
    expect(outcome(during)).toBe("RmiAborted")
    expect(window.settle({ Instruction: "FRC_WaitTime", ErrorID: 2556957, SequenceID: 1 })).toBe("ignored")
    submit()
    expect(sent).toEqual([1, 1])
  })

  it("sends what waited once a refused FRC_Initialize lets go", () => {
    const { sent, submit, window } = windowOf(8)
    window.holdForInitialize()
    submit()
    expect(sent).toEqual([])
    window.resume()
    expect(sent).toEqual([1])
  })

  it("fails what was sent on initialize and numbers from 1 again", () => {
    const { window, sent, submit } = windowOf(8)
    const before = submit()
    window.initialize()
    expect(outcome(before)).toBe("RmiAborted")
    const after = submit()
    expect(sent).toEqual([1, 1])
    expect(window.settle(done(1))).toBe("settled")
    expect(outcome(after)).toEqual(done(1))
  })

  it(`remembers only the ${MaxCancelled} most recent cancelled SequenceIDs`, () => {
    const { window, submit } = windowOf(8)
    const rounds = 10
    for (let round = 0; round < rounds; round++) {
      Array.range(1, 8).forEach(submit)
      window.abortAll()
    }
    const last = rounds * 8
    const oldestKept = last - MaxCancelled + 1
    expect(window.settle(done(oldestKept - 1))).toBe("unknown")
    expect(window.settle(done(1))).toBe("unknown")
    expect(window.settle(done(oldestKept))).toBe("ignored")
    expect(window.settle(done(last))).toBe("ignored")
    expect(window.cancelledReplies).toBe(2)
  })

  it("gives a reused SequenceID to the new instruction, not to the cancelled one", () => {
    const { window, sent, submit } = windowOf(8)
    submit()
    window.abortAll()
    window.restart(1)
    const again = submit()
    expect(sent).toEqual([1, 1])
    expect(window.settle(done(1))).toBe("settled")
    expect(outcome(again)).toEqual(done(1))
    expect(window.settle(done(1))).toBe("unknown")
    expect(window.cancelledReplies).toBe(0)
  })
})
