/**
 * The client's side of the controller's instruction buffer.
 *
 * It numbers instructions with consecutive SequenceIDs, keeps at most `limit` of them sent
 * and unanswered (so the controller never has reason to answer RMIT-028), queues the rest
 * in the order they were submitted, and settles each submitter when the reply to its
 * instruction arrives, which is when the instruction has finished executing.
 *
 * The controller does not take the SequenceID of an instruction it refuses (RMIT-021, say), so
 * the next instruction reuses it when none was sent after the refused one; if some were, they
 * arrive as a gap.
 *
 * After a sequence gap (RMIT-029) it holds: nothing more is sent, and every queued or new
 * instruction fails with the gap's {@link RmiSequenceGap} until {@link restart} gives it the
 * SequenceID the controller expects.
 *
 * When FRC_Abort or FRC_Initialize fails the instructions that were sent, their SequenceIDs
 * are remembered as cancelled: the controller still answers the one it was executing, after
 * FRC_Abort's reply, and {@link settle} ignores (and counts) that reply instead of taking it
 * for a reply to an unknown instruction. The client cannot tell which of them was executing,
 * and the others are never answered, so only the {@link MaxCancelled} most recent are kept:
 * enough for several aborts in a row, and bounded for a link that is aborted for weeks without
 * FRC_Initialize. FRC_Initialize forgets them all, as SequenceIDs start again at 1 after it and
 * a late reply could no longer be told from the reply to a new instruction.
 *
 * It is synchronous and does no I/O: the client gives it a `send` function and feeds it replies.
 */
import { Deferred, Exit } from "effect"
import * as ErrorCode from "./RmiErrorCode.js"
import { RmiAborted, type RmiInstructionError, type RmiLinkError, RmiRejected, RmiSequenceGap } from "./RmiError.js"
import type * as RmiPacket from "./RmiPacket.js"

interface Submitted {
  readonly instruction: RmiPacket.InstructionBody
  readonly done: Deferred.Deferred<RmiPacket.InstructionReply, RmiInstructionError>
}

/** How many SequenceIDs of cancelled instructions are remembered; see the module documentation. */
export const MaxCancelled = 64

/** What {@link InstructionWindow.settle} did with a reply. */
export type Settlement =
  /** It was the reply to an instruction sent and unanswered, which it settled. */
  | "settled"
  /** It was the late reply to an instruction FRC_Abort or FRC_Initialize had failed. */
  | "ignored"
  /** No instruction with its SequenceID was sent, or it was answered already. */
  | "unknown"

/** An instruction reply, successful or refused. */
export type InstructionOutcome =
  | RmiPacket.InstructionReply
  | Extract<RmiPacket.Rejected, { readonly Instruction: string }>

/** See the module documentation. */
export class InstructionWindow {
  private nextSequenceId = 1
  private queued: Array<Submitted> = []
  private readonly sent = new Map<number, Submitted>()
  /** Insertion-ordered, so the oldest is evicted first. */
  private readonly cancelled = new Set<number>()
  private ignored = 0
  private gap: RmiSequenceGap | undefined
  private failure: RmiLinkError | undefined
  private initializing = false

  constructor(
    private readonly limit: number,
    private readonly send: (instruction: RmiPacket.Instruction) => void
  ) {}

  /** How many instructions are sent and unanswered, and how many wait to be sent. */
  get size(): { readonly sent: number; readonly queued: number } {
    return { sent: this.sent.size, queued: this.queued.length }
  }

  /** How many late replies to cancelled instructions were ignored. */
  get cancelledReplies(): number {
    return this.ignored
  }

  /** Queues an instruction; `done` is settled with its reply, or with why it never ran. */
  submit(instruction: RmiPacket.InstructionBody, done: Submitted["done"]): void {
    const refusal = this.failure ?? this.gap
    if (refusal !== undefined) return void Deferred.unsafeDone(done, Exit.fail(refusal))
    this.queued.push({ instruction, done })
    this.pump()
  }

  /** Settles the instruction a reply is for, or ignores the late reply to a cancelled one; see {@link Settlement}. */
  settle(reply: InstructionOutcome): Settlement {
    const submitted = this.sent.get(reply.SequenceID)
    if (submitted === undefined) {
      if (!this.cancelled.delete(reply.SequenceID)) return "unknown"
      this.ignored++
      return "ignored"
    }
    this.sent.delete(reply.SequenceID)
    if (reply.ErrorID === 0) {
      Deferred.unsafeDone(submitted.done, Exit.succeed(reply as RmiPacket.InstructionReply))
    } else if (reply.ErrorID === ErrorCode.ErrorId.InvalidSequenceId) {
      this.gap = new RmiSequenceGap({ sequenceId: reply.SequenceID })
      Deferred.unsafeDone(submitted.done, Exit.fail(this.gap))
      this.failQueued(this.gap)
    } else if (reply.ErrorID === ErrorCode.ErrorId.Hold && this.gap !== undefined) {
      Deferred.unsafeDone(submitted.done, Exit.fail(this.gap))
    } else {
      // A refused instruction does not take its SequenceID; the next one reuses it if it is not sent yet.
      if (reply.SequenceID === this.nextSequenceId - 1) this.nextSequenceId = reply.SequenceID
      Deferred.unsafeDone(submitted.done, Exit.fail(RmiRejected.of(reply.Instruction, reply.ErrorID)))
    }
    this.pump()
    return "settled"
  }

  /**
   * Continues with `nextSequenceId` after FRC_Reset (what FRC_GetStatus says); ends a hold.
   * The cancelled SequenceIDs are kept: FRC_Reset does not renumber.
   */
  restart(nextSequenceId: number): void {
    this.gap = undefined
    this.nextSequenceId = nextSequenceId
    this.pump()
  }

  /**
   * FRC_Initialize is about to go out: nothing is sent until its reply ({@link initialize}) or
   * its failure ({@link resume}), so that no instruction is numbered in the old sequence and
   * reaches a controller that already counts from 1 again.
   */
  holdForInitialize(): void {
    this.initializing = true
  }

  /** FRC_Initialize failed or was refused: sending goes on as before. */
  resume(): void {
    this.initializing = false
    this.pump()
  }

  /**
   * FRC_Initialize was accepted: fails every instruction with {@link RmiAborted}, forgets the
   * older cancelled SequenceIDs (numbering starts again at 1, so their late replies could no
   * longer be told apart), keeps those it cancels itself, and numbers from 1 again.
   */
  initialize(): void {
    this.cancelled.clear()
    this.abortAll()
    this.initializing = false
    this.restart(1)
  }

  /** Fails every instruction not yet sent with {@link RmiAborted}: FRC_Abort is about to go out. */
  abortQueued(): void {
    this.failQueued((instruction) => new RmiAborted({ instruction }))
  }

  /** Fails every instruction with {@link RmiAborted} and remembers those sent as cancelled: the controller dropped its queue. */
  abortAll(): void {
    this.abortQueued()
    for (const [sequenceId, { done, instruction }] of this.sent) {
      Deferred.unsafeDone(done, Exit.fail(new RmiAborted({ instruction: instruction.Instruction })))
      this.cancelled.delete(sequenceId)
      this.cancelled.add(sequenceId)
    }
    this.sent.clear()
    for (const oldest of this.cancelled) {
      if (this.cancelled.size <= MaxCancelled) break
      this.cancelled.delete(oldest)
    }
  }

  /** Fails every instruction, now and later, with the error that killed the link. */
  close(failure: RmiLinkError): void {
    this.failure ??= failure
    this.failQueued(failure)
    for (const { done } of this.sent.values()) Deferred.unsafeDone(done, Exit.fail(failure))
    this.sent.clear()
  }

  private failQueued(error: RmiInstructionError | ((instruction: string) => RmiInstructionError)): void {
    const queued = this.queued
    this.queued = []
    for (const { done, instruction } of queued) {
      Deferred.unsafeDone(done, Exit.fail(typeof error === "function" ? error(instruction.Instruction) : error))
    }
  }

  private pump(): void {
    while (!this.initializing && this.gap === undefined && this.failure === undefined && this.sent.size < this.limit) {
      const next = this.queued.shift()
      if (next === undefined) return
      const sequenceId = this.nextSequenceId++
      // From now on a reply with this SequenceID is the new instruction's.
      this.cancelled.delete(sequenceId)
      this.sent.set(sequenceId, next)
      this.send({ ...next.instruction, SequenceID: sequenceId } as RmiPacket.Instruction)
    }
  }
}
