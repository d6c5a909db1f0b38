/**
 * The typed errors of talking to actors. Callers `catchTag` them by name.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import type * as ExitReason from "./ExitReason.js"

/** An `ask` got no reply within its timeout. */
export class AskTimeout extends Data.TaggedError("AskTimeout")<{
  readonly actor: string
  readonly timeoutMillis: number
}> {
  override get message() {
    return `${this.actor} did not reply within ${this.timeoutMillis} ms`
  }
}

/** The actor is not alive: it stopped before or while the request was handled. */
export class ActorStopped extends Data.TaggedError("ActorStopped")<{
  readonly actor: string
  readonly reason: ExitReason.ExitReason | undefined
}> {
  override get message() {
    return `${this.actor} is stopped`
  }
}

/** The actor's mailbox is at capacity and its policy is to refuse new mail. */
export class MailboxFull extends Data.TaggedError("MailboxFull")<{
  readonly actor: string
  readonly capacity: number
}> {
  override get message() {
    return `${this.actor}'s mailbox is full (${this.capacity} messages)`
  }
}

/** An actor's `init` failed, so it never started. */
export class InitFailed extends Data.TaggedError("InitFailed")<{
  readonly actor: string
  readonly reason: ExitReason.ExitReason
}> {
  override get message() {
    return `${this.actor} failed to start`
  }
}

/** A unique registry key is already held by another live actor. */
export class AlreadyRegistered extends Data.TaggedError("AlreadyRegistered")<{
  readonly key: unknown
  readonly holder: string
}> {
  override get message() {
    return `${String(this.key)} is already registered by ${this.holder}`
  }
}

/** The error raised inside an actor by fault injection (`ActorSystem.crash`). */
export class InjectedCrash extends Data.TaggedError("InjectedCrash")<{
  readonly reason: string
}> {
  override get message() {
    return `injected crash: ${this.reason}`
  }
}
