/**
 * The actor system: where actors live, and the window into them. It spawns
 * top-level actors, stops them all (youngest first) when its scope closes, and
 * answers the questions a developer asks of a live system: what does the tree
 * look like, what is this actor's state, what is it receiving, what happens if
 * it crashes now?
 *
 * ```ts
 * Effect.gen(function*() {
 *   const system = yield* ActorSystem.make()
 *   const counter = yield* system.spawn(Counter, { name: "counter" })
 *   yield* counter.tell({ _tag: "Inc" })
 *   console.log(yield* system.render) // counter running mailbox=1 restarts=0
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { Behaviour, SpawnOptions } from "./Actor.js"
import type { ActorStopped, AlreadyRegistered, InitFailed } from "./ActorError.js"
import type { ActorRef } from "./ActorRef.js"
import type { ExitReason } from "./ExitReason.js"
import type { ActorNode } from "./Inspection.js"
import { ActorEnv } from "./internal/cell.js"
import * as internal from "./internal/system.js"
import { SystemImpl } from "./internal/system.js"

/** @internal */
export const TypeId: typeof internal.TypeId = internal.TypeId

/** A message that could not be delivered. */
export interface DeadLetter {
  readonly actor: string
  readonly message: unknown
  /** `stopped`, `mailbox full` or `dropped`. */
  readonly reason: string
  readonly at: number
}

/** Counters of a system. */
export interface SystemStats {
  /** Actors alive now. */
  readonly actors: number
  /** Actors spawned since the system started. */
  readonly spawned: number
  readonly deadLetters: number
  /** Fibers the system runs for actors now (Effect handlers, stop sequences, timers). */
  readonly fibers: number
}

/** What happens in a system, for metrics, logs and tests. */
export type SystemEvent =
  | { readonly _tag: "Started"; readonly actor: ActorRef<never> }
  | { readonly _tag: "Stopped"; readonly actor: ActorRef<never>; readonly reason: ExitReason }
  | { readonly _tag: "DeadLetter"; readonly actor: ActorRef<never>; readonly message: unknown; readonly reason: string }
  | { readonly _tag: "Restarted"; readonly supervisor: ActorRef<never>; readonly child: string; readonly restarts: number }

/** A running actor system. */
export interface ActorSystem {
  readonly [TypeId]: typeof TypeId
  readonly name: string
  /** Spawns a top-level actor and waits for its `init`. */
  spawn<M, S, R>(
    behaviour: Behaviour<M, S, R>,
    options?: SpawnOptions
  ): Effect.Effect<ActorRef<M>, InitFailed | AlreadyRegistered, R>
  /** Stops an actor within its shutdown policy and returns how it exited. */
  stop(ref: ActorRef<never>, reason?: ExitReason): Effect.Effect<ExitReason>
  /** Waits until an actor exits. */
  awaitExit(ref: ActorRef<never>): Effect.Effect<ExitReason>
  /** A live actor by id. */
  lookup(id: number): Option.Option<ActorRef<unknown>>
  /** The whole tree now. */
  readonly snapshot: Effect.Effect<ReadonlyArray<ActorNode>>
  /** The whole tree now, as deterministic text. */
  readonly render: Effect.Effect<string>
  /** The actor's state as of its last completed message. */
  getState(ref: ActorRef<never>): Effect.Effect<unknown, ActorStopped>
  /** Stops handling mail (it keeps queueing) until `resume`. */
  suspend(ref: ActorRef<never>): Effect.Effect<void>
  resume(ref: ActorRef<never>): Effect.Effect<void>
  /** Every message the actor handles from now on; ends when it exits. */
  trace(ref: ActorRef<never>): Stream.Stream<unknown>
  /** Fault injection: the actor fails now with `InjectedCrash`, as if its handler had. */
  crash(ref: ActorRef<never>, reason?: string): Effect.Effect<void>
  /** Fault injection: the actor and its children are killed now, without `terminate`. */
  kill(ref: ActorRef<never>): Effect.Effect<void>
  /** Dead letters: the total and the last hundred. */
  readonly deadLetters: Effect.Effect<{ readonly total: number; readonly recent: ReadonlyArray<DeadLetter> }>
  readonly stats: Effect.Effect<SystemStats>
  /** Calls `listener` on every lifecycle event while the scope is open. */
  subscribe(listener: (event: SystemEvent) => void): Effect.Effect<void, never, Scope.Scope>
}

/** The system as a service. */
export const ActorSystem: Context.Tag<ActorSystem, ActorSystem> = Context.GenericTag<ActorSystem>(
  "fleetvisor/ActorSystem"
)

/** Options of a system. */
export interface Options {
  readonly name?: string | undefined
  /** Log each crash (a `Failure` exit) at warning level. Default: true. */
  readonly logFailures?: boolean | undefined
}

/**
 * Starts a system; closing the scope stops every actor (top-level ones youngest
 * first, each within its shutdown policy) and waits for every fiber it ran.
 * Timers (ask timeouts, shutdown timeouts, backoff) use the `Clock` of the
 * fiber that makes the system, so `TestClock` drives them in tests.
 */
export const make = (options?: Options): Effect.Effect<ActorSystem, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.withFiberRuntime<ActorSystem>((fiber, status) =>
      Effect.map(Clock.clockWith(Effect.succeed), (clock): ActorSystem =>
        new SystemImpl(
          { name: options?.name ?? "fleetvisor", logFailures: options?.logFailures ?? true },
          new ActorEnv(fiber.currentContext as Context.Context<any>, fiber.getFiberRefs(), status.runtimeFlags),
          clock
        )
      )
    ),
    (system) => (system as SystemImpl).shutdown
  )

/** A layer providing a system for the lifetime of the layer. */
export const layer = (options?: Options): Layer.Layer<ActorSystem> => Layer.scoped(ActorSystem, make(options))
