/**
 * A supervisor starts a fixed list of children in order, restarts them when
 * they exit according to its strategy, and stops them in reverse order.
 *
 * | strategy       | when one child exits and is restarted…                   |
 * |----------------|----------------------------------------------------------|
 * | `one_for_one`  | only that child is restarted                              |
 * | `one_for_all`  | all other children are stopped, then all restarted in order |
 * | `rest_for_one` | the children started after it are stopped, then it and they are restarted in order |
 *
 * If restarts exceed `maxRestarts` within `period`, the supervisor stops all
 * its children and fails with `MaxRestartsExceeded`, so its own supervisor
 * decides. With `backoff`, restarts wait an exponentially growing delay.
 *
 * ```ts
 * const root = Supervisor.make({
 *   strategy: "rest_for_one",
 *   children: [ChildSpec.make("store", Store), ChildSpec.make("canvas", Canvas)]
 * })
 * yield* system.spawn(root, { name: "root" })
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
import type { Backoff } from "./Backoff.js"
import type { ChildInfo, ChildSpec } from "./ChildSpec.js"
import { childInfo, defaultIntensity, RestartSlots, shouldRestart, Slot, Supervision } from "./internal/supervision.js"

/** Which siblings are restarted with a child. */
export type Strategy = "one_for_one" | "one_for_all" | "rest_for_one"

/** Options of a supervisor. */
export interface Options {
  /** Default: `one_for_one`. */
  readonly strategy?: Strategy | undefined
  /** Default: 3 (with `period`: Elixir's defaults). */
  readonly maxRestarts?: number | undefined
  /** Default: 5 seconds. */
  readonly period?: Duration.DurationInput | undefined
  /** Default: none, restarts happen at once as in OTP. */
  readonly backoff?: Backoff | undefined
  readonly children: ReadonlyArray<ChildSpec>
}

/** The mail a supervisor accepts (only from itself; use the functions of this module). */
export type SupervisorMessage = RestartSlots

/** A running supervisor. */
export type SupervisorRef = ActorRef<SupervisorMessage>

class State {
  constructor(
    readonly supervision: Supervision,
    public slots: Array<Slot>,
    readonly strategy: Strategy
  ) {}
}

/** What `whichChildren` reports of one child. */
export type { ChildInfo }

/** A supervisor behaviour; spawn it, or use it as a child spec's behaviour to nest supervisors. */
export const make = (options: Options): Behaviour<SupervisorMessage, State> => {
  const strategy = options.strategy ?? "one_for_one"
  const intensity = defaultIntensity(options)
  return {
    name: "supervisor",
    shutdown: "infinity",
    init: (ctx) => {
      const supervision = Supervision.of(ctx, intensity, options.backoff)
      const env = supervision.parent.env
      const state = new State(supervision, options.children.map((spec) => new Slot(spec, env)), strategy)
      return startInOrder(state, 0)
    },
    receive: (state, message) => {
      state.supervision.restartDue(message, (slot) => state.slots.includes(slot))
      return state
    },
    onSignal: (state, signal) => {
      const supervision = state.supervision
      const slot = supervision.exitedChild(signal)
      if (slot === undefined) return state
      if (!shouldRestart(slot.spec.restart, signal.reason)) {
        if (slot.spec.restart === "temporary") state.slots = state.slots.filter((s) => s !== slot)
        return state
      }
      if (supervision.recordRestart()) return supervision.escalate([...state.slots].reverse())
      const index = state.slots.indexOf(slot)
      const group = state.strategy === "one_for_one"
        ? [slot]
        : state.strategy === "one_for_all"
        ? state.slots
        : state.slots.slice(index)
      const siblings = group.filter((s) => s !== slot)
      const delay = supervision.backoffDelay(slot, signal.reason)
      const restart = () => {
        state.slots = state.slots.filter((s) => s === slot || !siblings.includes(s) || s.spec.restart !== "temporary")
        const again = group.filter((s) => state.slots.includes(s))
        if (delay > 0) supervision.restartLater(again, delay)
        else supervision.restartNow(again)
        return state
      }
      if (siblings.length === 0) return restart()
      return Effect.map(supervision.stop([...siblings].reverse()), restart)
    },
    terminate: (state) => state.supervision.stop([...state.slots].reverse()),
    describe: (state) => ({
      kind: "supervisor",
      label: state.strategy,
      children: state.slots.map(Supervision.view)
    })
  }
}

/** Starts children one after the other, each after the previous one's `init`; a failure stops those started. */
const startInOrder = (state: State, from: number): State | Effect.Effect<State, InitFailed | AlreadyRegistered> => {
  const supervision = state.supervision
  for (let i = from; i < state.slots.length; i++) {
    const started = supervision.spawn(state.slots[i])
    if (started instanceof AlreadyRegistered) return abortStart(state, i, started)
    const lifecycle = Supervising.lifecycle(started)
    if (lifecycle === "running") continue
    if (lifecycle !== "starting") {
      return Effect.flatMap(Supervising.awaitExit(started), () => abortStart(state, i, Supervising.initError(started)))
    }
    return Effect.matchEffect(Supervising.awaitStarted(started), {
      onFailure: (error) => abortStart(state, i, error),
      onSuccess: () => {
        const rest = startInOrder(state, i + 1)
        return Effect.isEffect(rest) ? rest : Effect.succeed(rest)
      }
    })
  }
  return state
}

const abortStart = <E>(state: State, failedAt: number, error: E): Effect.Effect<never, E> =>
  Effect.zipRight(state.supervision.stop(state.slots.slice(0, failedAt).reverse()), Effect.fail(error))

const stateOf = (ref: SupervisorRef): State | undefined => {
  const state = Supervising.stateOf(ref)
  return state instanceof State ? state : undefined
}

/** The children in start order, with their status and restart counts. */
export const whichChildren = (ref: SupervisorRef): Effect.Effect<ReadonlyArray<ChildInfo>, ActorStopped> =>
  Effect.suspend(() => {
    const state = stateOf(ref)
    if (state === undefined || !ref.isAlive()) {
      return Effect.fail(new ActorStopped({ actor: String(ref), reason: ref.exitReason() }))
    }
    return Effect.succeed(state.slots.map(childInfo))
  })
