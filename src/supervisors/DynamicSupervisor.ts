/**
 * A dynamic supervisor starts children on demand, one per connection or robot,
 * and restarts them one for one. `maxChildren` caps how many it holds: the
 * next `startChild` fails with `MaxChildren`, which is how the gateway sheds
 * load instead of falling over.
 *
 * ```ts
 * const sessions = yield* system.spawn(DynamicSupervisor.make({ maxChildren: 20_000 }), { name: "sessions" })
 * const session = yield* DynamicSupervisor.startChild(sessions, ChildSpec.make("session:7", Session, { restart: "temporary" }))
 * yield* DynamicSupervisor.countChildren(sessions) // { specs: 1, active: 1, supervisors: 0, workers: 1 }
 * ```
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { Behaviour } from "../actors/Actor.js"
import { ActorStopped, AlreadyRegistered, type InitFailed } from "../actors/ActorError.js"
import type { ActorRef } from "../actors/ActorRef.js"
import * as Supervising from "../actors/Supervising.js"
import * as ExitReason from "../actors/ExitReason.js"
import type { Backoff } from "./Backoff.js"
import type { ChildInfo, ChildSpec } from "./ChildSpec.js"
import { childInfo, defaultIntensity, RestartSlots, shouldRestart, Slot, Supervision } from "./internal/supervision.js"
import { ChildNotFound, MaxChildren } from "./SupervisorError.js"

/** Options of a dynamic supervisor. */
export interface Options {
  /** Default: unlimited. */
  readonly maxChildren?: number | undefined
  /** Default: 3 (with `period`: Elixir's defaults). */
  readonly maxRestarts?: number | undefined
  /** Default: 5 seconds. */
  readonly period?: Duration.DurationInput | undefined
  /** Default: none, restarts happen at once. */
  readonly backoff?: Backoff | undefined
}

/** The mail a dynamic supervisor accepts (only from itself; use the functions of this module). */
export type DynamicSupervisorMessage = RestartSlots

/** A running dynamic supervisor. */
export type DynamicSupervisorRef = ActorRef<DynamicSupervisorMessage>

class State {
  readonly slots = new Set<Slot>()
  constructor(
    readonly supervision: Supervision,
    readonly maxChildren: number
  ) {}
}

/** Child counts, as Elixir's `DynamicSupervisor.count_children/1`. */
export interface Counts {
  /** Children, running or waiting to restart. */
  readonly specs: number
  /** Children with a live actor. */
  readonly active: number
  /** Children that are supervisors themselves (their behaviour describes itself). */
  readonly supervisors: number
  readonly workers: number
}

/** What `whichChildren` reports of one child. */
export type { ChildInfo }

/** A dynamic supervisor behaviour. */
export const make = (options?: Options): Behaviour<DynamicSupervisorMessage, State> => {
  const intensity = defaultIntensity(options ?? {})
  const maxChildren = options?.maxChildren ?? Infinity
  return {
    name: "dynamic_supervisor",
    shutdown: "infinity",
    init: (ctx) => new State(Supervision.of(ctx, intensity, options?.backoff), maxChildren),
    receive: (state, message) => {
      state.supervision.restartDue(message, (slot) => state.slots.has(slot))
      return forgetRefused(state)
    },
    onSignal: (state, signal) => {
      const supervision = state.supervision
      const slot = supervision.exitedChild(signal)
      if (slot === undefined) return state
      if (!shouldRestart(slot.spec.restart, signal.reason)) {
        state.slots.delete(slot)
        return state
      }
      if (supervision.recordRestart()) return supervision.escalate([...state.slots].reverse())
      const delay = supervision.backoffDelay(slot, signal.reason)
      if (delay > 0) supervision.restartLater([slot], delay)
      else supervision.restartNow([slot])
      return forgetRefused(state)
    },
    terminate: (state) => state.supervision.stop([...state.slots].reverse()),
    describe: (state) => ({
      kind: "dynamic_supervisor",
      label: `dynamic, ${state.slots.size}/${state.maxChildren === Infinity ? "∞" : state.maxChildren}`,
      children: Array.from(state.slots, Supervision.view)
    })
  }
}

/**
 * Forgets children whose restart was refused because another actor took their name meanwhile:
 * they cannot come back, and a dynamic supervisor keeps no placeholder for them.
 */
const forgetRefused = (state: State): State => {
  for (const slot of state.slots) if (slot.status === "stopped" && slot.child === undefined) state.slots.delete(slot)
  return state
}

const stateOf = (ref: DynamicSupervisorRef): State | undefined => {
  if (Supervising.lifecycle(ref) !== "running") return undefined
  const state = Supervising.stateOf(ref)
  return state instanceof State ? state : undefined
}

const stopped = (ref: DynamicSupervisorRef) => new ActorStopped({ actor: String(ref), reason: ref.exitReason() })

/**
 * Starts a child now and waits for its `init`. Fails with `MaxChildren` when
 * the supervisor is full, `InitFailed` when `init` fails (the child is then
 * not kept), `AlreadyRegistered` when its `via` name is taken.
 */
export const startChild = <M>(
  supervisor: DynamicSupervisorRef,
  spec: ChildSpec<M>
): Effect.Effect<ActorRef<M>, MaxChildren | InitFailed | AlreadyRegistered | ActorStopped> =>
  Effect.withFiberRuntime((fiber, status) => {
    const state = stateOf(supervisor)
    if (state === undefined) return Effect.fail(stopped(supervisor))
    if (state.slots.size >= state.maxChildren) {
      return Effect.fail(new MaxChildren({ supervisor: String(supervisor), maxChildren: state.maxChildren }))
    }
    const supervision = state.supervision
    const slot = new Slot(spec, Supervising.callerEnv(supervisor, fiber, status.runtimeFlags))
    const child = supervision.spawn(slot)
    if (child instanceof AlreadyRegistered) return Effect.fail(child)
    const lifecycle = Supervising.lifecycle(child)
    if (lifecycle === "running") {
      state.slots.add(slot)
      return Effect.succeed(child as ActorRef<M>)
    }
    if (lifecycle === "stopped") {
      slot.child = undefined
      return Effect.fail(Supervising.initError(child))
    }
    state.slots.add(slot)
    return Effect.tapError(Supervising.awaitStarted(child as ActorRef<M>), () =>
      Effect.sync(() => {
        state.slots.delete(slot)
        slot.child = undefined
      }))
  })

/** Stops a child within its shutdown policy; it is not restarted. */
export const terminateChild = (
  supervisor: DynamicSupervisorRef,
  child: ActorRef<never>
): Effect.Effect<void, ChildNotFound> =>
  Effect.suspend(() => {
    const state = stateOf(supervisor)
    const slot = Supervising.tagOf(child) as Slot | undefined
    if (state === undefined || slot === undefined || !state.slots.has(slot)) {
      return Effect.fail(new ChildNotFound({ supervisor: String(supervisor), child: String(child) }))
    }
    state.slots.delete(slot)
    slot.child = undefined
    return Supervising.stopAndAwait(child, ExitReason.shutdown())
  })

/** The children, oldest first. */
export const whichChildren = (supervisor: DynamicSupervisorRef): Effect.Effect<ReadonlyArray<ChildInfo>, ActorStopped> =>
  Effect.suspend(() => {
    const state = stateOf(supervisor)
    if (state === undefined) return Effect.fail(stopped(supervisor))
    return Effect.succeed(Array.from(state.slots, childInfo))
  })

/** How many children, and of which kind. */
export const countChildren = (supervisor: DynamicSupervisorRef): Effect.Effect<Counts, ActorStopped> =>
  Effect.suspend(() => {
    const state = stateOf(supervisor)
    if (state === undefined) return Effect.fail(stopped(supervisor))
    let active = 0
    let supervisors = 0
    for (const slot of state.slots) {
      if (slot.child !== undefined) active++
      if (slot.spec.behaviour.describe !== undefined) supervisors++
    }
    return Effect.succeed({ specs: state.slots.size, active, supervisors, workers: state.slots.size - supervisors })
  })

/** How many children now (synchronous; for gauges). */
export const unsafeCount = (supervisor: DynamicSupervisorRef): number => stateOf(supervisor)?.slots.size ?? 0
