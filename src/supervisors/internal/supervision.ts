import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type { ActorContext, Placeholder, ShutdownPolicy, SpawnOptions, Via } from "../../actors/Actor.js"
import { AlreadyRegistered } from "../../actors/ActorError.js"
import type { ActorRef } from "../../actors/ActorRef.js"
import * as ExitReason from "../../actors/ExitReason.js"
import type { MailboxOptions } from "../../actors/Mailbox.js"
import type { ExitSignal, Signal } from "../../actors/Signal.js"
import * as Supervising from "../../actors/Supervising.js"
import * as Backoff from "../Backoff.js"
import type { ChildInfo, ChildSpec, Restart } from "../ChildSpec.js"
import { MaxRestartsExceeded } from "../SupervisorError.js"

/** Restart intensity: at most `maxRestarts` restarts within `periodMillis`. */
export interface Intensity {
  readonly maxRestarts: number
  readonly periodMillis: number
}

/**
 * Defaults of Elixir's `Supervisor` and `DynamicSupervisor`: 3 restarts in 5
 * seconds. A child that crashes more often than that is not recovering, and
 * restarting it faster only hides the fault from the supervisor's parent.
 */
export const defaultIntensity = (options: {
  readonly maxRestarts?: number | undefined
  readonly period?: Duration.DurationInput | undefined
}): Intensity => ({
  maxRestarts: options.maxRestarts ?? 3,
  periodMillis: Duration.toMillis(options.period ?? Duration.seconds(5))
})

/**
 * One child position: its spec, its current incarnation, its restart history. It is also the
 * spawn options of its child.
 *
 * A temporary child is never started again, so its slot keeps nothing that only a restart needs:
 * not the spec's `via` once the child is registered (it may hold its caller's closures), and
 * of the spec only what identifies the child.
 */
export class Slot implements SpawnOptions {
  /** The live child, if any. */
  child: ActorRef<any> | undefined = undefined
  restarts = 0
  /** Abnormal exits in a row, for backoff. */
  failures = 0
  startedAt = 0
  status: "running" | "restarting" | "stopped" = "stopped"
  timer: Fiber.RuntimeFiber<void> | undefined = undefined
  readonly spec: ChildSpec
  readonly name: string
  via: Via | undefined
  readonly mailbox: MailboxOptions | undefined
  readonly shutdown: ShutdownPolicy | undefined
  readonly trapExits: boolean | undefined
  constructor(spec: ChildSpec, readonly env: Supervising.ChildEnv) {
    this.spec = spec.restart === "temporary" && spec.via !== undefined
      ? { id: spec.id, behaviour: spec.behaviour, restart: spec.restart }
      : spec
    // The child's name in the tree, which outlives `via`.
    this.name = spec.via?.name ?? spec.id
    this.via = spec.via
    this.mailbox = spec.mailbox
    this.shutdown = spec.shutdown
    this.trapExits = spec.trapExits
  }

  get placeholder(): Placeholder {
    return { _tag: "Placeholder", name: this.spec.id, status: this.status === "restarting" ? "restarting" : "stopped", restarts: this.restarts }
  }
}

/** Asks a supervisor to start slots whose backoff delay has passed. */
export class RestartSlots {
  readonly _tag = "RestartSlots"
  constructor(readonly slots: ReadonlyArray<Slot>) {}
}

/** Whether a child with this restart type is restarted after this exit. */
export const shouldRestart = (restart: Restart | undefined, reason: ExitReason.ExitReason): boolean => {
  switch (restart ?? "permanent") {
    case "permanent":
      return true
    case "transient":
      return ExitReason.isAbnormal(reason)
    case "temporary":
      return false
  }
}

/**
 * What every supervisor does: start a slot's child, count restarts against the
 * intensity, delay restarts by backoff, stop children youngest first.
 *
 * @internal
 */
export class Supervision {
  private restartTimes: Array<number> = []

  constructor(
    readonly ctx: ActorContext<any>,
    readonly parent: Supervising.Parent,
    readonly intensity: Intensity,
    readonly backoff: Backoff.Backoff | undefined
  ) {}

  static of(ctx: ActorContext<any>, intensity: Intensity, backoff: Backoff.Backoff | undefined): Supervision {
    ctx.trapExits(true)
    return new Supervision(ctx, Supervising.parentOf(ctx), intensity, backoff)
  }

  get label(): string {
    return this.parent.label
  }

  /** Starts the slot's child now; returns it (check its lifecycle) or the refusal of its name. */
  spawn(slot: Slot): ActorRef<any> | AlreadyRegistered {
    const child = this.parent.spawn(slot.spec.behaviour, slot, slot.env, slot, slot.restarts)
    if (child instanceof AlreadyRegistered) {
      slot.status = "stopped"
      return child
    }
    if (slot.spec.restart === "temporary") slot.via = undefined
    slot.child = child
    slot.startedAt = this.parent.now()
    slot.status = "running"
    return child
  }

  /** The slot of the live child that sent this exit, or `undefined` for an exit the supervisor caused or does not know. */
  slotOf(signal: ExitSignal): Slot | undefined {
    const slot = Supervising.tagOf(signal.from) as Slot | undefined
    if (slot === undefined || slot.child !== signal.from) return undefined
    slot.child = undefined
    slot.status = "stopped"
    return slot
  }

  /**
   * The slot of the child a signal reports the exit of, or `undefined` when there is no child
   * to act on. An exit of this supervisor's own parent stops the supervisor too.
   */
  exitedChild(signal: Signal): Slot | undefined {
    if (signal._tag !== "ExitSignal") return undefined
    if (this.parent.isParent(signal.from)) {
      this.ctx.stop(signal.reason)
      return undefined
    }
    return this.slotOf(signal)
  }

  /** Restarts the slots of a `RestartSlots` message that still wait for it and still belong here. */
  restartDue(message: RestartSlots, belongs: (slot: Slot) => boolean): void {
    this.restartNow(message.slots.filter((slot) => slot.status === "restarting" && belongs(slot)))
  }

  /** Counts one restart; `true` when that exceeds the intensity. */
  recordRestart(): boolean {
    const now = this.parent.now()
    const cutoff = now - this.intensity.periodMillis
    this.restartTimes = this.restartTimes.filter((t) => t > cutoff)
    this.restartTimes.push(now)
    return this.restartTimes.length > this.intensity.maxRestarts
  }

  /** The delay before restarting after this exit, or 0 without backoff. */
  backoffDelay(slot: Slot, reason: ExitReason.ExitReason): number {
    if (this.backoff === undefined) return 0
    if (this.parent.now() - slot.startedAt >= Duration.toMillis(this.backoff.resetAfter)) slot.failures = 0
    if (ExitReason.isAbnormal(reason)) slot.failures++
    return Backoff.delayMillis(this.backoff, Math.max(1, slot.failures), Math.random())
  }

  /** Marks slots as restarting and asks this supervisor to start them after `delayMillis`. */
  restartLater(slots: ReadonlyArray<Slot>, delayMillis: number): void {
    const timer = this.parent.fork(Effect.sleep(Duration.millis(delayMillis)))
    for (const slot of slots) {
      slot.status = "restarting"
      slot.timer = timer
    }
    timer.addObserver((exit) => {
      if (exit._tag === "Success") this.ctx.self.unsafeTellUrgent(new RestartSlots(slots))
    })
  }

  /** Starts slots that are still waiting to restart, in order; counts their restarts. */
  restartNow(slots: ReadonlyArray<Slot>): void {
    for (const slot of slots) {
      if (slot.status === "running" && slot.child !== undefined) continue
      slot.timer = undefined
      slot.restarts++
      this.spawn(slot)
      this.parent.restarted(slot.spec.id, slot.restarts)
    }
  }

  /** Stops the live children of these slots one by one, in the order given. */
  stop(slots: ReadonlyArray<Slot>, reason: ExitReason.ExitReason = ExitReason.shutdown()): Effect.Effect<void> {
    return Effect.forEach(slots, (slot) =>
      Effect.suspend(() => {
        slot.timer?.unsafeInterruptAsFork(FiberId.none)
        slot.timer = undefined
        const child = slot.child
        slot.child = undefined
        if (slot.status === "running") slot.status = "stopped"
        return child === undefined ? Effect.void : Supervising.stopAndAwait(child, reason)
      }), { discard: true })
  }

  /** Stops every child (youngest first) and fails: the parent decides what happens next. */
  escalate(slotsYoungestFirst: ReadonlyArray<Slot>): Effect.Effect<never, MaxRestartsExceeded> {
    return Effect.zipRight(
      this.stop(slotsYoungestFirst),
      Effect.fail(
        new MaxRestartsExceeded({
          supervisor: this.label,
          maxRestarts: this.intensity.maxRestarts,
          periodMillis: this.intensity.periodMillis
        })
      )
    )
  }

  /** What the inspector shows for a slot. */
  static view(slot: Slot): ActorRef<never> | Placeholder {
    return slot.child !== undefined ? slot.child : slot.placeholder
  }
}

/** What `whichChildren` reports of a slot. */
export const childInfo = (slot: Slot): ChildInfo => ({
  id: slot.spec.id,
  ref: Option.fromNullable(slot.child as ActorRef<unknown> | undefined),
  status: slot.status,
  restarts: slot.restarts
})
