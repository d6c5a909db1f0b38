/**
 * The ingest thread's body: subscribes to the prefix on a connection of its own, checks each
 * message (`Inbound.makeChecker`) and posts them to the main thread in batches of at most
 * `batchSize`, at least one per turn of this thread's event loop. Messages beyond `maxInFlight`
 * (posted and not yet taken by the main thread) are dropped and counted. `IngestThread` bundles
 * this module with its imports and runs it as the thread's script.
 *
 * The thread loads its modules, then waits for its configuration, which `IngestThread` posts as
 * soon as the thread exists.
 *
 * In:  { type: "start", url, security?, prefix, clientId, counters: SharedArrayBuffer, maxInFlight, batchSize }
 * Out: { type: "ready" }  { type: "failed", error }  { type: "batch", items: Array<Checked> }
 *      { type: "log", level, message }: this thread's log lines, for the main thread's logger
 */
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Queue from "effect/Queue"
import { parentPort } from "node:worker_threads"
import type * as BrokerSecurity from "../../mqtt/BrokerSecurity.mjs"
import * as MqttConnection from "../../mqtt/MqttConnection.js"
import * as Inbound from "../Inbound.js"
import * as Topic from "../Topic.js"
import { Counter } from "./ingestCounters.js"

/** The thread's configuration, sent once by `IngestThread`. */
interface Start {
  readonly type: "start"
  readonly url: string
  /** The broker's user name and secret files, read by this thread at each (re)connect. */
  readonly security: BrokerSecurity.BrokerSecurity | undefined
  readonly prefix: string
  readonly clientId: string
  readonly counters: SharedArrayBuffer
  readonly maxInFlight: number
  readonly batchSize: number
}

const port = parentPort!

const run = ({ batchSize, clientId, counters: buffer, maxInFlight, prefix, security, url }: Start) => {
  const counters = new Int32Array(buffer)
  const check = Inbound.makeChecker(prefix)
  const filter = Topic.subscriptionFilter(prefix)

  let batch: Array<Inbound.Checked> = []
  let scheduled = false

  const flush = () => {
    scheduled = false
    if (batch.length === 0) return
    Atomics.add(counters, Counter.inFlight, batch.length)
    port.postMessage({ type: "batch", items: batch })
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
        port.postMessage({ type: "ready" })
        yield* Effect.forever(
          Effect.flatMap(Queue.take(connection.events), (event) =>
            event._tag === "Connected" ? Effect.ignore(connection.subscribe([filter], 0)) : Effect.void)
        )
      })
    ).pipe(
      Effect.catchAll((error) => Effect.sync(() => port.postMessage({ type: "failed", error: error.message }))),
      Effect.provide(Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ logLevel, message }) =>
          port.postMessage({
            type: "log",
            level: logLevel._tag,
            message: (Array.isArray(message) ? message : [message]).map(String).join(" ")
          })
        )
      ))
    )
  )
}

port.once("message", (message: Start) => run(message))
