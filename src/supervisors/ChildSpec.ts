/**
 * Child specifications: how a supervisor starts, restarts and stops one child.
 *
 * | restart     | restarted after…                         | OTP / Elixir |
 * |-------------|------------------------------------------|--------------|
 * | `permanent` | any exit (the default)                   | `:permanent` |
 * | `transient` | a crash or a kill, not a normal exit or a shutdown | `:transient` |
 * | `temporary` | never                                    | `:temporary` |
 *
 * @since 0.1.0
 */
import type { Behaviour, ShutdownPolicy, Via } from "../actors/Actor.js"
import type { MailboxOptions } from "../actors/Mailbox.js"
import type * as Option from "effect/Option"
import type { ActorRef } from "../actors/ActorRef.js"

/** When a child is restarted. */
export type Restart = "permanent" | "transient" | "temporary"

/** How to start, restart and stop one child. */
export interface ChildSpec<M = any> {
  /** The child's name in the tree; unique among its siblings under a static supervisor. */
  readonly id: string
  readonly behaviour: Behaviour<M, any, any>
  /** Default: `permanent`. */
  readonly restart?: Restart | undefined
  /** Default: the behaviour's, else 5 seconds (supervisors: `infinity`, as in OTP). */
  readonly shutdown?: ShutdownPolicy | undefined
  readonly mailbox?: MailboxOptions | undefined
  /** Registered under this name at every (re)start, before `init`. */
  readonly via?: Via | undefined
  readonly trapExits?: boolean | undefined
}

/** Builds a child spec. */
export const make = <M>(
  id: string,
  behaviour: Behaviour<M, any, any>,
  options?: Omit<ChildSpec<M>, "id" | "behaviour">
): ChildSpec<M> => ({ id, behaviour, ...options })

/** What `whichChildren` reports of one child. */
export interface ChildInfo {
  readonly id: string
  readonly ref: Option.Option<ActorRef<unknown>>
  readonly status: "running" | "restarting" | "stopped"
  readonly restarts: number
}
