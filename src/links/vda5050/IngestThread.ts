/**
 * The fleet's MQTT ingest on a thread of its own: a second connection, subscribed to the
 * prefix, whose thread parses the MQTT packets and checks each message (topic and schema, as
 * `Inbound` does) and hands the results to the main thread in batches. The main thread then
 * only routes them, so parsing and validation (a third of its time at 10,000 messages a second)
 * move to a core the main thread is not using.
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
import * as LogLevel from "effect/LogLevel"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as WorkerThread from "../../node/WorkerThread.js"
import type * as BrokerSecurity from "../mqtt/BrokerSecurity.js"
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
}

/** A running ingest thread. */
export interface IngestThread {
  /** Says that `count` messages of its batches were taken. */
  readonly taken: (count: number) => void
  /** Messages dropped because too many were in flight. */
  readonly dropped: () => number
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
    let started = false
    const fail = (reason: string) => {
      const failure = new IngestThreadFailed({ reason })
      if (started) options.onFailure(failure)
      else Deferred.unsafeDone(ready, Effect.fail(failure))
    }
    yield* WorkerThread.run<IngestWorker.IngestWorkerProtocol>(
      ingestWorker,
      {
        url: options.url,
        security: options.security,
        prefix: options.prefix,
        officialSchemas: options.officialSchemas,
        clientId: options.clientId,
        counters: counters.buffer as SharedArrayBuffer,
        maxInFlight: options.maxInFlight ?? 100_000,
        batchSize: options.batchSize ?? 64
      },
      {
        onMessage: (event) => {
          switch (event.type) {
            case "batch":
              return options.onBatch(event.items)
            case "ready":
              started = true
              return Deferred.unsafeDone(ready, Effect.void)
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
      dropped: () => Atomics.load(counters, Counters.Counter.dropped)
    }
  })
