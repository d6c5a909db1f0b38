/**
 * A fixed-timestep control loop as an actor, the way a game engine or a robot controller runs
 * one: every `1/hz` seconds (100 Hz by default) it runs its phases in order, synchronously,
 * on one tick: read inputs → process → control → actuator outputs. Ticks are scheduled on a
 * fixed grid (`start + n × period`), so a late tick does not push the next ones back.
 *
 * It measures itself: the jitter of each tick (how late it started against the grid), how
 * long the phases took, overruns (a tick whose phases ended after the next tick was due) and
 * missed ticks (the grid points skipped when the loop fell more than a period behind).
 *
 * The loop runs on Node's timers, not through the actor's mailbox, so a flood of mail to
 * anyone (the actor included) does not delay it; the actor owns the timer, answers metric
 * requests, and stops the loop when it stops. `make` runs it on the actor's own thread, with
 * phases as closures; `makeWorker` runs the same grid (LoopGrid.ts) and phases from a module
 * on a worker thread of its own (internal/controlLoopWorker.ts), so the main thread's work and
 * garbage collections do not delay it either.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Transferable } from "node:worker_threads"
import * as Actor from "../../actors/Actor.js"
import type { ActorRef, Reply } from "../../actors/ActorRef.js"
import { Pending } from "../../node/Pending.js"
import * as WorkerThread from "../../node/WorkerThread.js"
import type { ControlLoopWorkerProtocol } from "./internal/controlLoopWorker.js"
import { Meter, runGrid } from "./LoopGrid.js"

/** What a phase knows about the tick it runs in. */
export interface Tick {
  /** Ticks since the loop started, from 0. */
  readonly index: number
  /** The fixed timestep, in seconds. */
  readonly dt: number
  /** The grid time of this tick, `performance.now()` milliseconds. */
  readonly scheduledAt: number
}

/** One phase of a tick; phases run in the order given, synchronously. */
export interface Phase {
  readonly name: string
  readonly run: (tick: Tick) => void
}

/** The loop's measurements since it started. */
export interface LoopMetrics {
  readonly hz: number
  readonly ticks: number
  /** Ticks whose phases ended after the next tick was due. */
  readonly overruns: number
  /** Grid points skipped because the loop was more than a period behind. */
  readonly missed: number
  /** Lateness of tick starts over the last `window` ticks, ms. */
  readonly jitterP50Ms: number
  readonly jitterP99Ms: number
  readonly jitterMaxMs: number
  /** Phase time of the last `window` ticks, ms. */
  readonly durationP99Ms: number
  readonly durationMaxMs: number
  /** How many recent ticks the percentiles cover. */
  readonly window: number
}

/** Options of a loop. */
export interface ControlLoopOptions {
  /** Ticks per second; default 100. */
  readonly hz?: number | undefined
  /** Builds the phases when the loop starts; their resources live as long as this incarnation. */
  readonly phases: (self: ActorRef<never>) => Effect.Effect<ReadonlyArray<Phase>, never, Scope.Scope>
  /** How many recent ticks the percentiles cover; default 1000 (10 s at 100 Hz). */
  readonly window?: number | undefined
  /** Called once a second with the metrics, e.g. to publish them. */
  readonly report?: ((metrics: LoopMetrics) => void) | undefined
}

/** Asks for the loop's {@link LoopMetrics}. */
export interface GetMetrics {
  readonly _tag: "GetMetrics"
  readonly reply: Reply<LoopMetrics>
}

class PhaseFailed {
  readonly _tag = "PhaseFailed"
  constructor(readonly phase: string, readonly error: unknown) {}
}

class WorkerFailed {
  readonly _tag = "WorkerFailed"
  constructor(readonly reason: string) {}
}

/** What a loop accepts; `PhaseFailed` and `WorkerFailed` are its own. */
export type ControlLoopMessage = GetMetrics | PhaseFailed | WorkerFailed

/** A `GetMetrics` message for `ask`. */
export const getMetrics = (reply: Reply<LoopMetrics>): ControlLoopMessage => ({ _tag: "GetMetrics", reply })

/** Runs `phases` on the grid until the scope closes. */
const run = (
  options: ControlLoopOptions,
  phases: ReadonlyArray<Phase>,
  meter: Meter,
  fail: (failure: PhaseFailed) => void
) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      runGrid(meter, phases, {
        fail: (phase, error) => fail(new PhaseFailed(phase, error)),
        report: options.report
      })
    ),
    (stop) => Effect.sync(stop)
  )

const describeFailure = (failure: PhaseFailed | WorkerFailed) =>
  failure._tag === "PhaseFailed"
    ? `control loop phase ${failure.phase} failed: ${String(failure.error)}`
    : `control loop worker failed: ${failure.reason}`

/** The behaviour of a control loop; see the module documentation. A phase that throws crashes it. */
export const make = (options: ControlLoopOptions): Actor.Behaviour<ControlLoopMessage, Meter> =>
  Actor.make<ControlLoopMessage, Meter>({
    name: "control_loop",
    init: (ctx) =>
      Effect.gen(function*() {
        const meter = new Meter(options.hz ?? 100, options.window ?? 1000)
        const phases = yield* options.phases(ctx.self as ActorRef<never>)
        yield* run(options, phases, meter, (failure) => ctx.self.unsafeTellUrgent(failure))
        return meter
      }),
    receive: (meter, message) => {
      if (message._tag !== "GetMetrics") return Effect.dieMessage(describeFailure(message))
      message.reply.succeed(meter.metrics())
      return meter
    }
  })

/** What a worker phases module's `phases(config, io)` gets: the main thread's inputs, and a way to post outputs. */
export interface WorkerIo {
  readonly onInput: (handler: (input: any) => void) => void
  readonly post: (output: unknown) => void
}

/** The main thread's end of a loop's worker. */
export interface WorkerPort {
  /** Sends `input` to the phases module's `onInput` handler; `transfer` lists buffers to move, not copy. */
  readonly send: (input: unknown, transfer?: ReadonlyArray<Transferable>) => void
}

/** Phases that run on the loop's worker thread. */
export interface WorkerPhases {
  /** A module exporting `phases(config, io: WorkerIo): Array<Phase>` (see `WorkerThread.entry`). */
  readonly module: WorkerThread.Entry
  /** Passed to `phases`, structured-cloned (a SharedArrayBuffer is shared). */
  readonly config?: unknown
  /**
   * On the main thread, once per incarnation: feeds the worker's inputs through `port` and
   * returns the handler of its outputs. Its resources live as long as the incarnation.
   */
  readonly connect?: ((port: WorkerPort, self: ActorRef<never>) => Effect.Effect<(output: any) => void, never, Scope.Scope>) | undefined
}

/** Options of a loop on a worker thread. */
export interface ControlLoopWorkerOptions {
  /** Ticks per second; default 100. */
  readonly hz?: number | undefined
  readonly phases: WorkerPhases
  /** How many recent ticks the percentiles cover; default 1000 (10 s at 100 Hz). */
  readonly window?: number | undefined
  /** Called once a second (on the main thread) with the metrics, e.g. to publish them. */
  readonly report?: ((metrics: LoopMetrics) => void) | undefined
  /**
   * The nice value of the loop's thread (Linux keeps one per thread), e.g. `-10` to run ahead
   * of the process's other threads and its garbage collector's helpers. Raising it needs
   * CAP_SYS_NICE; without it the loop runs at the process's priority, with a warning.
   * Default: the process's.
   */
  readonly priority?: number | undefined
  /**
   * Runs the loop's thread, and only it, under the real-time policy SCHED_FIFO at this priority
   * (1–99, set with util-linux `chrt`): it then runs as soon as its tick is due, ahead of every
   * normal thread of the machine, whatever their nice values. Needs CAP_SYS_NICE or an
   * RLIMIT_RTPRIO of at least this (systemd `LimitRTPRIO=`); refused, the loop runs with
   * `priority` and a warning is logged. Default: none.
   */
  readonly realtimePriority?: number | undefined
  /** How long the worker may take to load its phases; default 10 seconds. */
  readonly startTimeout?: Duration.DurationInput | undefined
}

/** The loop's thread. */
const controlLoopWorker = WorkerThread.entry(import.meta.url, "./internal/controlLoopWorker")

interface WorkerState {
  readonly thread: WorkerThread.Thread<ControlLoopWorkerProtocol["in"]>
  readonly pending: Pending<Reply<LoopMetrics>>
}

/**
 * A control loop whose grid and phases run on a worker thread of their own, so that the main
 * thread's work (message bursts, garbage collections) does not delay its ticks. The actor
 * starts the worker, relays inputs and outputs (see {@link WorkerPhases}), answers
 * `GetMetrics` from the worker's meter, and terminates the worker when it stops. A phase that
 * throws, or a worker that fails or exits, crashes the actor.
 */
export const makeWorker = (options: ControlLoopWorkerOptions): Actor.Behaviour<ControlLoopMessage, WorkerState> =>
  Actor.make<ControlLoopMessage, WorkerState>({
    name: "control_loop",
    init: (ctx) =>
      Effect.gen(function*() {
        const ready = yield* Deferred.make<
          { readonly prioritized: boolean; readonly realtime: boolean | string },
          PhaseFailed | WorkerFailed
        >()
        const fail = (failure: PhaseFailed | WorkerFailed) => {
          Deferred.unsafeDone(ready, Effect.fail(failure))
          ctx.self.unsafeTellUrgent(failure)
        }
        const pending = new Pending<Reply<LoopMetrics>>()
        let thread: WorkerThread.Thread<ControlLoopWorkerProtocol["in"]> | undefined
        // Inputs sent before the thread exists (its module is still being bundled) wait for it, in
        // order: the first of a feed carries the shared table every later one relies on.
        const early: Array<readonly [input: unknown, transfer: ReadonlyArray<Transferable> | undefined]> = []
        const port: WorkerPort = {
          send: (input, transfer) => {
            if (thread === undefined) early.push([input, transfer])
            else thread.post({ type: "input", data: input }, transfer)
          }
        }
        const output = options.phases.connect === undefined
          ? () => {}
          : yield* options.phases.connect(port, ctx.self as ActorRef<never>)
        const module = yield* WorkerThread.bundle(options.phases.module).pipe(Effect.orDie)
        thread = yield* WorkerThread.run<ControlLoopWorkerProtocol>(
          controlLoopWorker,
          {
            hz: options.hz ?? 100,
            window: options.window ?? 1000,
            report: options.report !== undefined,
            module: module.href,
            config: options.phases.config,
            priority: options.priority,
            realtimePriority: options.realtimePriority
          },
          {
            onMessage: (event) => {
              switch (event.type) {
                case "ready":
                  return Deferred.unsafeDone(ready, Effect.succeed(event))
                case "output":
                  return output(event.data)
                case "metrics":
                  return pending.take(event.id)?.succeed(event.metrics)
                case "report":
                  return options.report?.(event.metrics)
                case "failed":
                  return fail(new PhaseFailed(event.phase, event.error))
              }
            },
            onFailure: (reason) => fail(new WorkerFailed(reason))
          }
        ).pipe(Effect.orDie)
        for (const [input, transfer] of early.splice(0)) thread.post({ type: "input", data: input }, transfer)
        const { prioritized, realtime } = yield* Deferred.await(ready).pipe(
          Effect.timeoutFail({
            duration: options.startTimeout ?? "10 seconds",
            onTimeout: () => new WorkerFailed("did not start in time")
          }),
          Effect.catchAll((failure) => Effect.dieMessage(describeFailure(failure)))
        )
        if (typeof realtime === "string") {
          yield* Effect.logWarning(
            `control loop thread runs at normal priority: SCHED_FIFO ${options.realtimePriority} was refused (${realtime}); ` +
              "it needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least that (systemd LimitRTPRIO=)"
          )
        } else if (realtime) {
          yield* Effect.logInfo(`control loop thread runs under SCHED_FIFO priority ${options.realtimePriority}`)
        }
        if (options.priority !== undefined && !prioritized && realtime !== true) {
          yield* Effect.logWarning(`control loop thread runs at the process's priority: nice ${options.priority} was refused`)
        }
        return { thread, pending }
      }),
    receive: (state, message) => {
      if (message._tag !== "GetMetrics") return Effect.dieMessage(describeFailure(message))
      state.thread.post({ type: "metrics", id: state.pending.add(message.reply) })
      return state
    }
  })
