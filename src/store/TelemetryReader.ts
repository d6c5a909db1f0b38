/**
 * Reads a robot's recent telemetry from the telemetry log, off the event loop: a worker
 * thread of its own (internal/telemetryReaderWorker.ts) with a read-only connection to the database
 * file, so a query neither blocks the event loop nor holds up the log's writer.
 *
 * Queries are bounded: at most `maxPending` wait for the thread at once (more are refused as
 * `busy`), each scans at most `scanLimit` rows and returns at most `points`, and one that takes
 * longer than `timeout` is answered `timeout` (the thread still finishes it).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import type * as Scope from "effect/Scope"
import { Pending } from "../node/Pending.js"
import * as WorkerThread from "../node/WorkerThread.js"
import type { TelemetryReaderWorkerProtocol } from "./internal/telemetryReaderWorker.js"

/** One stored sample, as the log keeps it (`TelemetryRecorder` says what each kind carries). */
export interface TelemetrySample {
  /** Epoch ms. */
  readonly at: number
  readonly kind: string
  readonly x?: number
  readonly y?: number
  readonly theta?: number
  readonly payload?: unknown
}

/** What a query found: the samples, oldest first, and whether the scan stopped at its limit. */
export interface TelemetryRows {
  readonly rows: ReadonlyArray<TelemetrySample>
  /** Rows read before thinning to `points`. */
  readonly scanned: number
  /** The scan reached `scanLimit`: older rows of the window were not read. */
  readonly truncated: boolean
}

/** One robot's samples between `since` and `until` (epoch ms), at most `points` of them. */
export interface TelemetryQuery {
  readonly robot: string
  readonly since: number
  readonly until: number
  readonly points: number
}

/** A query that got no answer: the reader is `busy`, took too long (`timeout`), or SQLite `failed`. */
export class TelemetryReadFailed extends Data.TaggedError("TelemetryReadFailed")<{
  readonly reason: "busy" | "timeout" | "failed"
  readonly detail: string
}> {}

/** Reads recent telemetry; see the module documentation. */
export interface TelemetryReader {
  readonly read: (query: TelemetryQuery) => Effect.Effect<TelemetryRows, TelemetryReadFailed>
}

/** Tuning of the reader; every field has a default. */
export interface TelemetryReaderOptions {
  /** The database file the telemetry log writes. */
  readonly filename: string
  /** Queries waiting for the thread at once, beyond which one is refused `busy`; default 8. */
  readonly maxPending?: number | undefined
  /** Rows one query reads at most (the newest of its window); default 50,000. */
  readonly scanLimit?: number | undefined
  /** How long a query may take; default 5 seconds. */
  readonly timeout?: Duration.DurationInput | undefined
}

/** The reader's thread. */
const telemetryReaderWorker = WorkerThread.entry(import.meta.url, "./internal/telemetryReaderWorker")

/** Starts the reader's thread; it stops when the scope closes. */
export const make = (options: TelemetryReaderOptions): Effect.Effect<TelemetryReader, never, Scope.Scope> =>
  Effect.gen(function*() {
    const maxPending = options.maxPending ?? 8
    const scanLimit = options.scanLimit ?? 50_000
    const timeout = options.timeout ?? "5 seconds"
    const pending = new Pending<Deferred.Deferred<TelemetryRows, TelemetryReadFailed>>()
    let gone: TelemetryReadFailed | undefined

    const settle = (id: number, outcome: Effect.Effect<TelemetryRows, TelemetryReadFailed>) => {
      const done = pending.take(id)
      if (done !== undefined) Deferred.unsafeDone(done, outcome)
    }

    const thread = yield* WorkerThread.run<TelemetryReaderWorkerProtocol>(
      telemetryReaderWorker,
      { filename: options.filename, busyTimeoutMillis: 1_000 },
      {
        onMessage: (answer) =>
          settle(
            answer.id,
            answer.type === "rows"
              ? Effect.succeed({ rows: answer.rows, scanned: answer.scanned, truncated: answer.truncated })
              : Effect.fail(new TelemetryReadFailed({ reason: "failed", detail: `${answer.code}: ${answer.message}` }))
          ),
        onFailure: (reason) => {
          gone = new TelemetryReadFailed({ reason: "failed", detail: `the reader thread stopped: ${reason}` })
          for (const done of pending.takeAll()) Deferred.unsafeDone(done, Effect.fail(gone))
        }
      }
    ).pipe(Effect.orDie)
    // The thread must not keep the process alive on its own.
    thread.worker.unref()
    // Before the thread is terminated: let it close its connection.
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => {
        thread.post({ type: "close" })
        return Promise.race([
          new Promise((resolve) => thread.worker.once("exit", resolve)),
          new Promise((resolve) => setTimeout(resolve, 1_000))
        ])
      })
    )

    const read = (query: TelemetryQuery): Effect.Effect<TelemetryRows, TelemetryReadFailed> =>
      Effect.suspend(() => {
        if (gone !== undefined) return Effect.fail(gone)
        if (pending.size >= maxPending) {
          return Effect.fail(new TelemetryReadFailed({ reason: "busy", detail: `${pending.size} queries are waiting` }))
        }
        const done = Deferred.unsafeMake<TelemetryRows, TelemetryReadFailed>(FiberId.none)
        const id = pending.add(done)
        thread.post({ type: "query", id, ...query, scanLimit })
        return Deferred.await(done).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () => new TelemetryReadFailed({ reason: "timeout", detail: `no answer within ${Duration.format(Duration.decode(timeout))}` })
          }),
          // A query that timed out or was interrupted still runs; its answer is dropped.
          Effect.ensuring(Effect.sync(() => pending.drop(id)))
        )
      })

    return { read }
  })
