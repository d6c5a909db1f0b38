/**
 * What the runtime offers to supervisor implementations (`src/supervisors`, or your own): start
 * a child under the supervisor in a given environment and tagged with the supervisor's own record
 * of it, see where a child stands in its life, wait for its start, stop it within its shutdown
 * policy. Ordinary actors never need this module: they spawn, monitor and link through
 * `ActorContext`.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type * as RuntimeFlags from "effect/RuntimeFlags"
import type { ActorContext, Behaviour, SpawnOptions } from "./Actor.js"
import { AlreadyRegistered, type InitFailed } from "./ActorError.js"
import type { ActorRef } from "./ActorRef.js"
import type * as ExitReason from "./ExitReason.js"
import { type ActorCell, type ActorEnv, RUNNING, STARTING, STOPPED, STOPPING } from "./internal/cell.js"

/** Where a child stands: `init` running, receiving, stopping, or gone. */
export type Lifecycle = "starting" | "running" | "stopping" | "stopped"

/** The context and fiber refs a child runs with: its supervisor's, or the fiber's that asked for it. */
export interface ChildEnv {
  readonly ChildEnv: unique symbol
}

const lifecycles: Record<number, Lifecycle> = {
  [STARTING]: "starting",
  [RUNNING]: "running",
  [STOPPING]: "stopping",
  [STOPPED]: "stopped"
}

const cellOf = (ref: ActorRef<never>): ActorCell => ref as unknown as ActorCell
const envOf = (env: ChildEnv): ActorEnv => env as unknown as ActorEnv

/**
 * A supervisor's own side of the runtime, made once in its `init` with {@link parentOf}.
 */
export class Parent {
  /** @internal */
  constructor(private readonly cell: ActorCell) {}

  /** The supervisor's name in the tree, for errors and logs. */
  get label(): string {
    return this.cell.label
  }

  /** The supervisor's own environment, for the children of its child specs. */
  get env(): ChildEnv {
    return this.cell.env as unknown as ChildEnv
  }

  /** The system clock, in milliseconds (the test clock under `TestClock`). */
  now(): number {
    return this.cell.system.now()
  }

  /**
   * Starts a child now, synchronously, carrying `tag` (read back with {@link tagOf}) and the
   * restart count the inspector shows. Check its {@link lifecycle}: a failed `init` may have
   * stopped it already. Fails with `AlreadyRegistered` when its `via` name is taken.
   */
  spawn<M>(
    behaviour: Behaviour<M, any, any>,
    options: SpawnOptions,
    env: ChildEnv,
    tag: unknown,
    restarts: number
  ): ActorRef<M> | AlreadyRegistered {
    const child = this.cell.system.spawnCell(this.cell, behaviour, options, envOf(env))
    if (child instanceof AlreadyRegistered) return child
    child.slot = tag
    child.restarts = restarts
    return child
  }

  /** Runs an effect in the supervisor's environment (a backoff timer, say); the system tracks the fiber. */
  fork<A, E>(effect: Effect.Effect<A, E, any>): Fiber.RuntimeFiber<A, E> {
    return this.cell.system.fork(this.cell.env, effect)
  }

  /** Tells inspection and system listeners that a child was started again. */
  restarted(child: string, restarts: number): void {
    this.cell.system.emit({ _tag: "Restarted", supervisor: this.cell, child, restarts })
  }

  /** Whether `ref` is this supervisor's own parent (whose exit stops the supervisor too). */
  isParent(ref: ActorRef<never>): boolean {
    return cellOf(ref) === this.cell.parentCell
  }
}

/** The runtime's side for the supervisor whose context this is. */
export const parentOf = (ctx: ActorContext<any>): Parent => new Parent(ctx.self as unknown as ActorCell)

/**
 * The environment of the fiber that asks `supervisor` for a child now (`DynamicSupervisor.startChild`),
 * so the child sees the caller's services and fiber refs.
 */
export const callerEnv = (
  supervisor: ActorRef<never>,
  fiber: Fiber.RuntimeFiber<any, any>,
  runtimeFlags: RuntimeFlags.RuntimeFlags
): ChildEnv => cellOf(supervisor).system.envOf(fiber, runtimeFlags) as unknown as ChildEnv

/** Where the actor stands in its life. */
export const lifecycle = (ref: ActorRef<never>): Lifecycle => lifecycles[cellOf(ref).status]

/** The tag its supervisor started it with, or `undefined` for an actor no supervisor started. */
export const tagOf = (ref: ActorRef<never>): unknown => cellOf(ref).slot

/** The actor's latest state (a supervisor's functions read their supervisor's this way); `undefined` before its `init` is done. */
export const stateOf = (ref: ActorRef<never>): unknown => cellOf(ref).state

/** Succeeds with the actor once its `init` is done; fails with `InitFailed` if it failed. */
export const awaitStarted = <M>(ref: ActorRef<M>): Effect.Effect<ActorRef<M>, InitFailed> => {
  const cell = ref as unknown as ActorCell<M>
  return cell.system.awaitStarted(cell)
}

/** The error of a start that did not reach `running`. */
export const initError = (ref: ActorRef<never>): InitFailed => cellOf(ref).initError()

/** Waits for the actor's exit and gives its reason. */
export const awaitExit = (ref: ActorRef<never>): Effect.Effect<ExitReason.ExitReason> => cellOf(ref).awaitExit

/**
 * Stops the actor and waits for it, honouring its shutdown policy: killed after its timeout,
 * at once with `brutal_kill`, waited for with `infinity`.
 */
export const stopAndAwait = (ref: ActorRef<never>, reason: ExitReason.ExitReason): Effect.Effect<void> =>
  cellOf(ref).system.stopAndAwait(cellOf(ref), reason)
