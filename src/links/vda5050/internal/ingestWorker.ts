/**
 * The ingest thread's module (started by `IngestThread` with `WorkerThread.run`): subscribes to
 * the prefix on a connection of its own, checks each message (`Inbound.makeChecker`) and posts
 * them to the main thread in batches of at most `batchSize`, at least one per turn of this
 * thread's event loop. Messages beyond `maxInFlight` (posted and not yet taken by the main
 * thread) are dropped and counted.
 *
 * Samples bypass the main thread: a `visualization` of an AGV that has a slot in the fleet's
 * sample columns (the main thread says which, `Assign`) is written there and posted only when
 * its link asked for it (`SampleColumns.takeWanted`).
 */
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import type * as LogLevel from "effect/LogLevel"
import * as Queue from "effect/Queue"
import * as ParentPort from "../../../node/ParentPort.js"
import type * as BrokerSecurity from "../../mqtt/BrokerSecurity.js"
import * as MqttConnection from "../../mqtt/MqttConnection.js"
import * as SampleColumns from "../../SampleColumns.js"
import * as Inbound from "../Inbound.js"
import * as Topic from "../Topic.js"
import type { Visualization } from "../Visualization.js"
import * as VisualizationSample from "../VisualizationSample.js"
import { Counter } from "./ingestCounters.js"

/** The thread's configuration. */
export interface IngestWorkerData {
  readonly url: string
  /** The broker's user name and secret files, read by this thread at each (re)connect. */
  readonly security: BrokerSecurity.BrokerSecurity | undefined
  readonly prefix: string
  readonly clientId: string
  /** `ingestCounters.Counter`s, shared with the main thread. */
  readonly counters: SharedArrayBuffer
  readonly maxInFlight: number
  readonly batchSize: number
  /** The fleet's sample columns, when it keeps samples there. */
  readonly columns: SampleColumns.SharedColumns | undefined
}

/** An AGV's slot in the sample columns (`<manufacturer>/<serialNumber>`); slots are never taken back. */
export interface Assign {
  readonly type: "assign"
  readonly robot: string
  readonly slot: number
}

/** The thread's messages: it takes AGVs' slots; it posts its state, its batches and its log lines. */
export interface IngestWorkerProtocol {
  readonly data: IngestWorkerData
  readonly in: Assign
  readonly out:
    | { readonly type: "ready" }
    | { readonly type: "failed"; readonly error: string }
    | { readonly type: "batch"; readonly items: ReadonlyArray<Inbound.Checked> }
    /** This thread's log lines, for the main thread's logger. */
    | { readonly type: "log"; readonly level: LogLevel.Literal; readonly message: string }
}

const port = ParentPort.make<IngestWorkerProtocol>()

const run = ({ batchSize, clientId, columns: shared, counters: buffer, maxInFlight, prefix, security, url }: IngestWorkerData) => {
  const counters = new Int32Array(buffer)
  const columns = shared === undefined ? undefined : SampleColumns.fromShared(shared)
  const slots = new Map<string, number>()
  port.onMessage((message) => void slots.set(message.robot, message.slot))

  /** Writes a sample into its AGV's slot; true when it need not be posted too. */
  const sampled = (checked: Inbound.Valid): boolean => {
    if (columns === undefined || checked.topic !== "visualization") return false
    const slot = slots.get(`${checked.identity.manufacturer}/${checked.identity.serialNumber}`)
    if (slot === undefined) return false
    if (VisualizationSample.write(columns, slot, checked.message as Visualization, Date.now())) {
      Atomics.add(counters, Counter.gaps, 1)
    }
    if (SampleColumns.takeWanted(columns, slot)) return false
    Atomics.add(counters, Counter.sampled, 1)
    return true
  }
  const check = Inbound.makeChecker(prefix)
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
    const checked = check(topic, payload)
    if (checked === undefined) return
    if (checked._tag === "Valid" && sampled(checked)) return
    if (Atomics.load(counters, Counter.inFlight) + batch.length >= maxInFlight) {
      Atomics.add(counters, Counter.dropped, 1)
      return
    }
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
