/**
 * The ingest thread's module (started by `IngestThread` with `WorkerThread.run`): subscribes to
 * the prefix on a connection of its own, checks each message (`Inbound.makeChecker`, with the
 * official schemas when their folder is given: the thread loads them itself) and posts
 * them to the main thread in batches of at most `batchSize`, at least one per turn of this
 * thread's event loop. Messages beyond `maxInFlight` (posted and not yet taken by the main
 * thread) are dropped and counted.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Logger from "effect/Logger"
import type * as LogLevel from "effect/LogLevel"
import * as Queue from "effect/Queue"
import * as ParentPort from "../../../node/ParentPort.js"
import type * as BrokerSecurity from "../../mqtt/BrokerSecurity.js"
import * as MqttConnection from "../../mqtt/MqttConnection.js"
import * as Inbound from "../Inbound.js"
import * as OfficialSchemas from "../OfficialSchemas.js"
import * as Topic from "../Topic.js"
import { Counter } from "./ingestCounters.js"

/** The thread's configuration. */
export interface IngestWorkerData {
  readonly url: string
  /** The broker's user name and secret files, read by this thread at each (re)connect. */
  readonly security: BrokerSecurity.BrokerSecurity | undefined
  readonly prefix: string
  /** The folder of the official schemas (`OfficialSchemas.load`); none: the message schemas alone. */
  readonly officialSchemas: string | undefined
  readonly clientId: string
  /** `ingestCounters.Counter`s, shared with the main thread. */
  readonly counters: SharedArrayBuffer
  readonly maxInFlight: number
  readonly batchSize: number
}

/** The thread's messages: it takes none; it posts its state, its batches and its log lines. */
export interface IngestWorkerProtocol {
  readonly data: IngestWorkerData
  readonly in: never
  readonly out:
    | { readonly type: "ready" }
    | { readonly type: "failed"; readonly error: string }
    | { readonly type: "batch"; readonly items: ReadonlyArray<Inbound.Checked> }
    /** This thread's log lines, for the main thread's logger. */
    | { readonly type: "log"; readonly level: LogLevel.Literal; readonly message: string }
}

const port = ParentPort.make<IngestWorkerProtocol>()

const run = ({ batchSize, clientId, counters: buffer, maxInFlight, officialSchemas, prefix, security, url }: IngestWorkerData) => {
  const official = officialSchemas === undefined ? undefined : OfficialSchemas.load(officialSchemas)
  if (official !== undefined && Either.isLeft(official)) {
    port.post({ type: "failed", error: official.left.message })
    return
  }
  const counters = new Int32Array(buffer)
  const check = Inbound.makeChecker(prefix, { official: official?.right.validate })
  const filter = Topic.subscriptionFilter(prefix)

  let batch: Array<Inbound.Checked> = []
  let scheduled = false

  const flush = () => {
    scheduled = false
    if (batch.length === 0) return
    Atomics.add(counters, Counter.inFlight, batch.length)
    port.post({ type: "batch", items: batch })
    batch = []
  }

  const onMessage = (topic: string, payload: Uint8Array) => {
    if (Atomics.load(counters, Counter.inFlight) + batch.length >= maxInFlight) {
      Atomics.add(counters, Counter.dropped, 1)
      return
    }
    const checked = check(topic, payload)
    if (checked === undefined) return
    batch.push(checked)
    if (batch.length >= batchSize) flush()
    else if (!scheduled) {
      scheduled = true
      setImmediate(flush)
    }
  }

  Effect.runFork(
    Effect.scoped(
      Effect.gen(function*() {
        const connection = yield* MqttConnection.connect({ url, clientId, security, onMessage })
        yield* connection.subscribe([filter], 0)
        port.post({ type: "ready" })
        yield* Effect.forever(
          Effect.flatMap(Queue.take(connection.events), (event) =>
            event._tag === "Connected" ? Effect.ignore(connection.subscribe([filter], 0)) : Effect.void)
        )
      })
    ).pipe(
      Effect.catchAll((error) => Effect.sync(() => port.post({ type: "failed", error: error.message }))),
      Effect.provide(Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ logLevel, message }) =>
          port.post({
            type: "log",
            level: logLevel._tag,
            message: (Array.isArray(message) ? message : [message]).map(String).join(" ")
          })
        )
      ))
    )
  )
}

run(port.data)
