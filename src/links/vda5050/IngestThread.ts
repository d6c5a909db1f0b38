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
import * as esbuild from "esbuild"
import { fileURLToPath } from "node:url"
import { Worker } from "node:worker_threads"
import * as WorkerThread from "../../node/WorkerThread.js"
import type * as BrokerSecurity from "../mqtt/BrokerSecurity.mjs"
import type * as Inbound from "./Inbound.js"
import * as Counters from "./internal/ingestCounters.js"

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

type WorkerEvent =
  | { readonly type: "ready" }
  | { readonly type: "failed"; readonly error: string }
  | { readonly type: "batch"; readonly items: ReadonlyArray<Inbound.Checked> }
  | { readonly type: "log"; readonly level: LogLevel.Literal; readonly message: string }

const bodyPath = fileURLToPath(new URL("./internal/ingestWorkerBody.ts", import.meta.url))
let bundled: Promise<string> | undefined

/**
 * The thread's body and everything it imports (the same TypeScript modules as the main
 * thread's, effect and mqtt.js) as one ES module, bundled with esbuild once per process and
 * started from a `data:` URL. It runs the same under tsx, node and vitest, and a thread is
 * connected in about 0.5 s (1.2 s the first time, bundling included) where loading the modules
 * one by one through tsx's loader took 1.5 s. An ES module, not CommonJS: a CommonJS bundle
 * runs in sloppy mode and cost the thread 4 % more CPU.
 */
const bundle = (): Promise<string> => {
  bundled ??= esbuild.build({
    entryPoints: [bodyPath],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    write: false,
    logLevel: "silent",
    // The CommonJS packages inside (mqtt.js) require Node's modules: give the module a `require`.
    banner: { js: `import { createRequire as __createRequire } from "node:module"; const require = __createRequire(${JSON.stringify(bodyPath)});` }
  }).then((result) => `data:text/javascript;base64,${Buffer.from(result.outputFiles[0].text).toString("base64")}`)
  bundled.catch(() => (bundled = undefined))
  return bundled
}

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
    const code = yield* Effect.tryPromise({
      try: bundle,
      catch: (error) => new IngestThreadFailed({ reason: `could not bundle its body: ${String(error)}` })
    })
    const worker = yield* WorkerThread.start<WorkerEvent>(
      () => new Worker(new URL(code)),
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
    )
    worker.postMessage({
      type: "start",
      url: options.url,
      security: options.security,
      prefix: options.prefix,
      clientId: options.clientId,
      counters: counters.buffer,
      maxInFlight: options.maxInFlight ?? 100_000,
      batchSize: options.batchSize ?? 64
    })
    yield* Deferred.await(ready).pipe(
      Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new IngestThreadFailed({ reason: "did not start in time" }) })
    )
    return {
      taken: (count) => void Atomics.sub(counters, Counters.Counter.inFlight, count),
      dropped: () => Atomics.load(counters, Counters.Counter.dropped)
    }
  })
