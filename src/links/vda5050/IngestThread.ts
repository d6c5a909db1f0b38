/**
 * The fleet's MQTT ingest on a thread of its own: a second connection, subscribed to the
 * prefix, whose thread parses the MQTT packets and checks each message (topic and schema, as
 * `Inbound` does) and hands the results to the main thread in batches. The main thread then
 * only routes them, so parsing and validation (a third of its time at 10,000 messages a second)
 * move to a core the main thread is not using.
 *
 * Samples bypass the main thread: with the fleet's sample columns (`columns`), a `visualization`
 * of an AGV given a slot ({@link IngestThread.assign}) is written into its slot by the thread,
 * and posted only when its link asked for it (`SampleColumns.want`, `SampleColumns.unlink`).
 *
 * Order is kept (one thread, one connection, batches in order). The main thread says how many
 * it took ({@link IngestThread.taken}); beyond `maxInFlight` messages posted and not taken, the
 * thread drops new ones and counts them, so a main thread that falls behind does not make it
 * hold an unbounded backlog.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as LogLevel from "effect/LogLevel"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as WorkerThread from "../../node/WorkerThread.js"
import type * as BrokerSecurity from "../mqtt/BrokerSecurity.js"
import type * as SampleColumns from "../SampleColumns.js"
import type * as Inbound from "./Inbound.js"
import * as Counters from "./internal/ingestCounters.js"
import type * as IngestWorker from "./internal/ingestWorker.js"

/** The thread failed, or could not connect the first time. */
export class IngestThreadFailed extends Data.TaggedError("IngestThreadFailed")<{ readonly reason: string }> {
  override get message() {
    return `MQTT ingest thread: ${this.reason}`
  }
}

/** Options of the thread. */
export interface IngestThreadOptions {
  readonly url: string
  /** Credentials and TLS files of the broker; the thread reads the files itself, at each (re)connect. */
  readonly security?: BrokerSecurity.BrokerSecurity | undefined
  readonly prefix: string
  /** The folder of the official schemas to check messages against (`OfficialSchemas.load`, done again by the thread); default none. */
  readonly officialSchemas?: string | undefined
  readonly clientId: string
  /** Receives each batch, in order, on the main thread. */
  readonly onBatch: (items: ReadonlyArray<Inbound.Checked>) => void
  /** The thread failed after it started. */
  readonly onFailure: (failure: IngestThreadFailed) => void
  /** Default 100,000. */
  readonly maxInFlight?: number | undefined
  /** Most messages per batch; default 64, so that routing one batch is a short turn of the main thread. */
  readonly batchSize?: number | undefined
  /** The fleet's sample columns, where the thread writes the samples of AGVs it is told the slot of. */
  readonly columns?: SampleColumns.SampleColumns | undefined
  /**
   * Subscribe to the topics of the AGVs assigned to it, by name (`AgvSubscriptions`), instead of
   * to the whole prefix: one of several threads, or a node of several that hears only the AGVs it
   * runs; the main thread's connection then hears every AGV's `connection` and `instantActions`.
   * Default false.
   */
  readonly byName?: boolean | undefined
}

/** A running ingest thread. */
export interface IngestThread {
  /** Says that `count` messages of its batches were taken. */
  readonly taken: (count: number) => void
  /** Messages dropped because too many were in flight. */
  readonly dropped: () => number
  /**
   * Gives the thread an AGV (`<manufacturer>/<serialNumber>`) and its slot in the sample columns;
   * completes once the thread hears it (by name: once its subscription is acknowledged).
   */
  readonly assign: (robot: string, slot: number) => Effect.Effect<void>
  /** Takes an AGV back: by name, its topics are unsubscribed (its slot stays known). */
  readonly unassign: (robot: string) => void
  /** Messages written to the sample columns and not posted. */
  readonly sampled: () => number
  /** Samples whose headerId did not follow their AGV's previous one. */
  readonly gaps: () => number
}

/** The thread's module. */
const ingestWorker = WorkerThread.entry(import.meta.url, "./internal/ingestWorker")

/**
 * Starts the thread; succeeds once it is connected and subscribed. It stops with the scope.
 * The thread's log lines go to the caller's logger.
 */
export const start = (options: IngestThreadOptions): Effect.Effect<IngestThread, IngestThreadFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const log = Runtime.runFork(yield* Effect.runtime<never>())
    const counters = new Int32Array(new SharedArrayBuffer(Counters.size * Int32Array.BYTES_PER_ELEMENT))
    const ready = yield* Deferred.make<void, IngestThreadFailed>()
    const subscribing = new Map<string, Deferred.Deferred<void>>()
    let started = false
    const fail = (reason: string) => {
      const failure = new IngestThreadFailed({ reason })
      if (started) options.onFailure(failure)
      else Deferred.unsafeDone(ready, Effect.fail(failure))
    }
    const thread = yield* WorkerThread.run<IngestWorker.IngestWorkerProtocol>(
      ingestWorker,
      {
        url: options.url,
        security: options.security,
        prefix: options.prefix,
        officialSchemas: options.officialSchemas,
        clientId: options.clientId,
        counters: counters.buffer as SharedArrayBuffer,
        maxInFlight: options.maxInFlight ?? 100_000,
        batchSize: options.batchSize ?? 64,
        columns: options.columns?.shared,
        byName: options.byName === true
      },
      {
        onMessage: (event) => {
          switch (event.type) {
            case "batch":
              return options.onBatch(event.items)
            case "ready":
              started = true
              return Deferred.unsafeDone(ready, Effect.void)
            case "subscribed": {
              const waiting = subscribing.get(event.robot)
              subscribing.delete(event.robot)
              return waiting === undefined ? undefined : Deferred.unsafeDone(waiting, Effect.void)
            }
            case "failed":
              return fail(event.error)
            case "log":
              return void log(Effect.logWithLevel(LogLevel.fromLiteral(event.level), `ingest thread: ${event.message}`))
          }
        },
        onFailure: fail
      }
    ).pipe(Effect.mapError((error) => new IngestThreadFailed({ reason: error.message })))
    yield* Deferred.await(ready).pipe(
      Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new IngestThreadFailed({ reason: "did not start in time" }) })
    )
    return {
      taken: (count) => void Atomics.sub(counters, Counters.Counter.inFlight, count),
      dropped: () => Atomics.load(counters, Counters.Counter.dropped),
      assign: (robot, slot) =>
        Effect.suspend(() => {
          thread.post({ type: "assign", robot, slot })
          if (options.byName !== true) return Effect.void
          let waiting = subscribing.get(robot)
          if (waiting === undefined) {
            waiting = Deferred.unsafeMake<void>(FiberId.none)
            subscribing.set(robot, waiting)
          }
          return Deferred.await(waiting)
        }),
      unassign: (robot) => {
        thread.post({ type: "unassign", robot })
        const waiting = subscribing.get(robot)
        subscribing.delete(robot)
        if (waiting !== undefined) Deferred.unsafeDone(waiting, Effect.void)
      },
      sampled: () => Atomics.load(counters, Counters.Counter.sampled),
      gaps: () => Atomics.load(counters, Counters.Counter.gaps)
    }
  })
