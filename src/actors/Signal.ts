/**
 * Signals are what the runtime tells an actor about other actors: a monitored
 * actor went down, or a linked actor exited while this one traps exits. They
 * arrive on the urgent lane, before any normal mail, and are handled by the
 * behaviour's `onSignal` (ignored when it has none).
 *
 * @since 0.1.0
 */
import type { ActorRef } from "./ActorRef.js"
import type { ExitReason } from "./ExitReason.js"

/** Identifies one monitor, to tell its `Down` apart and to `demonitor` it. */
export interface MonitorRef {
  readonly id: number
}

/** A monitored actor stopped (or was already stopped when the monitor was set). */
export class Down {
  readonly _tag = "Down"
  constructor(
    readonly monitor: MonitorRef,
    readonly actor: ActorRef<never>,
    readonly reason: ExitReason
  ) {}
}

/** A linked actor exited; delivered instead of dying when the actor traps exits. */
export class ExitSignal {
  readonly _tag = "ExitSignal"
  constructor(
    readonly from: ActorRef<never>,
    readonly reason: ExitReason
  ) {}
}

/** Something the runtime tells an actor about another actor. */
export type Signal = Down | ExitSignal

/** Whether a value is a runtime signal rather than user mail. */
export const isSignal = (u: unknown): u is Signal => u instanceof Down || u instanceof ExitSignal
