/**
 * Behaviours: what an actor does. A behaviour is a plain value that any number
 * of actors can share: `init` makes the private state, `receive` handles one
 * message at a time and returns the next state, `terminate` cleans up.
 *
 * Handlers may return the state directly (the fast path: no fiber is involved)
 * or an `Effect` producing it (run on a fiber of its own while the actor waits
 * for it; the actor handles nothing else meanwhile). Throwing, failing or dying
 * in any handler crashes the actor with a `Failure` exit reason.
 *
 * ```ts
 * const counter = Actor.make({
 *   name: "counter",
 *   init: () => 0,
 *   receive: (n: number, msg: { _tag: "Inc" } | { _tag: "Get"; reply: Reply<number> }) => {
 *     if (msg._tag === "Inc") return n + 1
 *     msg.reply.succeed(n)
 *     return n
 *   }
 * })
 * ```
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { AlreadyRegistered, InitFailed } from "./ActorError.js"
import type { ActorRef } from "./ActorRef.js"
import type { ExitReason } from "./ExitReason.js"
import type { MailboxOptions } from "./Mailbox.js"
import type { MonitorRef, Signal } from "./Signal.js"

/** A handler result: the next state, or an Effect producing it. */
export type Step<S, R> = S | Effect.Effect<S, unknown, R>

/**
 * How long a stopping actor may take (to finish its message, stop its children
 * and run `terminate`) before it is killed:
 * a duration, `"brutal_kill"` (at once, no `terminate`), or `"infinity"`.
 */
export type ShutdownPolicy = Duration.DurationInput | "brutal_kill" | "infinity"

/** What an actor is, for the inspector: a worker, or a supervisor of some sort. */
export interface Description {
  /** `actor`, `supervisor` or `dynamic_supervisor`. */
  readonly kind: string
  /** Shown in the rendered tree after the name: `one_for_one`, `dynamic, 2/20000`. */
  readonly label?: string | undefined
  /** The children in their supervision order, including slots waiting to restart. */
  readonly children?: ReadonlyArray<ActorRef<never> | Placeholder> | undefined
}

/** A child slot without a live actor: waiting out a restart backoff, or stopped. */
export interface Placeholder {
  readonly _tag: "Placeholder"
  readonly name: string
  readonly status: "restarting" | "stopped"
  readonly restarts: number
}

/**
 * A behaviour: the code of an actor. `M` is what it accepts, `S` its state, `R` what its handlers need.
 * Its functions are called as its methods, so a class instance can be one.
 */
export interface Behaviour<M, S = any, R = never> {
  /** Shown by the inspector and in logs. */
  readonly name: string
  /** Makes the initial state; resources acquired in its `Scope` live as long as the actor. */
  readonly init?: ((ctx: ActorContext<M>) => Step<S, R | Scope.Scope>) | undefined
  /** Handles one message and returns the next state. */
  readonly receive: (state: S, message: M, ctx: ActorContext<M>) => Step<S, R>
  /** Handles `Down` and `ExitSignal`; when absent, signals are ignored. */
  readonly onSignal?: ((state: S, signal: Signal, ctx: ActorContext<M>) => Step<S, R>) | undefined
  /** Runs when the actor stops for any reason but a kill; a crash here makes the exit a `Failure`. */
  readonly terminate?:
    | ((state: S, reason: ExitReason, ctx: ActorContext<M>) => void | Effect.Effect<unknown, unknown, R>)
    | undefined
  /** Describes the actor to the inspector (supervisors list their child slots here). */
  readonly describe?: ((state: S) => Description) | undefined
  /** The shutdown policy of actors of this behaviour unless the spawn says otherwise. Default: 5 seconds. */
  readonly shutdown?: ShutdownPolicy | undefined
}

/** A name registration made before `init` runs (see `Registry.via`). */
export interface Via {
  /** The name shown in the tree. */
  readonly name: string
  /** Registers `ref`, or returns the error that refuses it. */
  readonly register: (ref: ActorRef<never>) => AlreadyRegistered | undefined
}

/** How to spawn one actor. */
export interface SpawnOptions {
  /** A name for the tree and logs (not a registration; see `via`). */
  readonly name?: string | undefined
  /** Register under a name before `init` runs; a taken name fails the spawn. */
  readonly via?: Via | undefined
  readonly mailbox?: MailboxOptions | undefined
  readonly shutdown?: ShutdownPolicy | undefined
  /** Start with exits trapped: linked exits arrive as `ExitSignal` instead of killing the actor. */
  readonly trapExits?: boolean | undefined
}

/** What a handler can do besides returning the next state. Its methods act at once. */
export interface ActorContext<M> {
  /** This actor. */
  readonly self: ActorRef<M>
  /** The actor that spawned this one, `undefined` at the top of the system. */
  readonly parent: ActorRef<never> | undefined
  /** The scope of this incarnation: closed when the actor stops, whatever the reason. */
  readonly scope: Scope.Scope
  /** Spawns a child, linked to this actor and stopped before it. */
  spawn<M2, S2, R2>(
    behaviour: Behaviour<M2, S2, R2>,
    options?: SpawnOptions
  ): Effect.Effect<ActorRef<M2>, InitFailed | AlreadyRegistered, R2>
  /** Stops this actor once the current handler returns. */
  stop(reason?: ExitReason): void
  /** Watches another actor: one `Down` signal arrives when it stops (at once if it already has). */
  monitor(target: ActorRef<never>): MonitorRef
  /** Cancels a monitor; its `Down` will not arrive. */
  demonitor(ref: MonitorRef): void
  /** Links both ways: an abnormal exit of either stops the other unless it traps exits. */
  link(target: ActorRef<never>): void
  /** Removes a link. */
  unlink(target: ActorRef<never>): void
  /** Converts linked exits into `ExitSignal` messages (`true`) or lets them kill this actor (`false`). */
  trapExits(enabled: boolean): void
}

/** Defines a behaviour; the identity function, there for inference. */
export const make = <M, S, R = never>(behaviour: Behaviour<M, S, R>): Behaviour<M, S, R> => behaviour
