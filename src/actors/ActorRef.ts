/**
 * The handle through which everything talks to an actor. A ref stays valid
 * after the actor stops: mail to it goes to dead letters and `ask` fails at
 * once with `ActorStopped`. A restarted child is a new actor with a new ref,
 * as a restarted OTP process has a new pid; find it again by name through a
 * `Registry`.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type { Pipeable } from "effect/Pipeable"
import type { ActorStopped, AskTimeout, MailboxFull } from "./ActorError.js"
import type { ExitReason } from "./ExitReason.js"

/** @internal */
export const TypeId: unique symbol = Symbol.for("fleetvisor/ActorRef")

/** The type-level identity of actor refs. */
export type TypeId = typeof TypeId

/** Options of one `ask`. */
export interface AskOptions {
  /** How long to wait for the reply. Default: 5 seconds, like `GenServer.call`. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Put the request on the urgent lane, ahead of normal mail. */
  readonly urgent?: boolean | undefined
}

/**
 * A handle to an actor that accepts messages of type `M`.
 *
 * `tell` and `ask` are Effects; `unsafeTell` is the synchronous form for hot
 * loops and for synchronous `receive` handlers, like Effect's `Queue.unsafeOffer`.
 */
export interface ActorRef<in M> extends Pipeable {
  readonly [TypeId]: (_: M) => void
  /** Unique within its system, never reused. */
  readonly id: number
  /** The name given at spawn, or `undefined`. */
  readonly name: string | undefined
  /** Sends a message; fails with `MailboxFull` when the mailbox refuses it. Mail to a stopped actor goes to dead letters. */
  tell(message: M): Effect.Effect<void, MailboxFull>
  /** Sends a message on the urgent lane, processed before all normal mail (an emergency stop overtakes telemetry). */
  tellUrgent(message: M): Effect.Effect<void>
  /** Sends a message now; `false` if it was refused or the actor is stopped (it then went to dead letters). */
  unsafeTell(message: M): boolean
  /** Sends a message on the urgent lane now; `false` if the actor is stopped. */
  unsafeTellUrgent(message: M): boolean
  /**
   * Sends the message built by `f` around a fresh reply handle and waits for the reply.
   * Fails with `AskTimeout`, `ActorStopped` (also at once when the actor is already
   * stopped, or when it stops before replying) or `MailboxFull`.
   */
  ask<A, E = never>(
    f: (reply: Reply<A, E>) => M,
    options?: AskOptions
  ): Effect.Effect<A, E | AskTimeout | ActorStopped | MailboxFull>
  /** Whether the actor is alive now. */
  isAlive(): boolean
  /** The exit reason once stopped. */
  exitReason(): ExitReason | undefined
}

/**
 * The reply handle carried in a request message. Exactly the first completion
 * counts; later ones are ignored, as are replies after the asker gave up.
 */
export interface Reply<in A, in E = never> {
  /** Answers the request. */
  succeed(value: A): void
  /** Answers the request with a typed error. */
  fail(error: E): void
  /** Answers the request with an `Exit`. */
  complete(exit: Exit.Exit<A, E>): void
  /** Whether the asker is still waiting. */
  isPending(): boolean
}

/** Whether a value is an `ActorRef`. */
export const isActorRef = (u: unknown): u is ActorRef<unknown> =>
  typeof u === "object" && u !== null && TypeId in u
