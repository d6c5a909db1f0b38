/**
 * The ingest thread's module (started by `IngestThread` with `WorkerThread.run`): subscribes to
 * the prefix (or, `byName`, to its AGVs' topics: `AgvSubscriptions`) on a connection of its own, checks each message (`Inbound.makeChecker`, with the
 * official schemas when their folder is given: the thread loads them itself) and posts
 * them to the main thread in batches of at most `batchSize`, at least one per turn of this
 * thread's event loop. Messages beyond `maxInFlight` (posted and not yet taken by the main
 * thread) are dropped and counted.
 *
 * Samples bypass the main thread: a `visualization` of an AGV that has a slot in the fleet's
 * sample columns (the main thread says which, `Assign`) is written there and posted only when
 * its link asked for it (`SampleColumns.takeWanted`).
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Logger from "effect/Logger"
import type * as LogLevel from "effect/LogLevel"
import * as ParentPort from "../../../node/ParentPort.js"
import type * as BrokerSecurity from "../../mqtt/BrokerSecurity.js"
import * as MqttConnection from "../../mqtt/MqttConnection.js"
import * as SampleColumns from "../../SampleColumns.js"
import * as AgvSubscriptions from "../AgvSubscriptions.js"
import * as Inbound from "../Inbound.js"
import * as OfficialSchemas from "../OfficialSchemas.js"
import * as Topic from "../Topic.js"
import * as VisualizationSample from "../VisualizationSample.js"
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
  /** The fleet's sample columns, when it keeps samples there. */
  readonly columns: SampleColumns.SharedColumns | undefined
  /**
   * Subscribe to each assigned AGV's topics by name (`AgvSubscriptions`: one of several threads,
   * each with its own AGVs, or one of several nodes, each with the AGVs it runs) instead of to the
   * whole prefix; the main thread then hears every AGV's `connection` and `instantActions`.
   */
  readonly byName: boolean
}

/** An AGV given to this thread (`<manufacturer>/<serialNumber>`), and its slot in the sample columns (-1: none). */
export interface Assign {
  readonly type: "assign"
  readonly robot: string
  readonly slot: number
}

/** An AGV taken back (by name: its topics unsubscribed); its slot stays, as the sample columns keep it. */
export interface Unassign {
  readonly type: "unassign"
  readonly robot: string
}

/** The thread's messages: it takes AGVs' slots; it posts its state, its batches and its log lines. */
export interface IngestWorkerProtocol {
  readonly data: IngestWorkerData
  readonly in: Assign | Unassign
  readonly out:
    | { readonly type: "ready" }
    /** The thread's subscription to an assigned AGV's topics is in place (its SUBACK came), by name only. */
    | { readonly type: "subscribed"; readonly robot: string }
    | { readonly type: "failed"; readonly error: string }
    | { readonly type: "batch"; readonly items: ReadonlyArray<Inbound.Checked> }
    /** This thread's log lines, for the main thread's logger. */
    | { readonly type: "log"; readonly level: LogLevel.Literal; readonly message: string }
}

const port = ParentPort.make<IngestWorkerProtocol>()

const run = (
  { batchSize, byName, clientId, columns: shared, counters: buffer, maxInFlight, officialSchemas, prefix, security, url }: IngestWorkerData
) => {
  const official = officialSchemas === undefined ? undefined : OfficialSchemas.load(officialSchemas)
  if (official !== undefined && Either.isLeft(official)) {
    port.post({ type: "failed", error: official.left.message })
    return
  }
  const counters = new Int32Array(buffer)
  const columns = shared === undefined ? undefined : SampleColumns.fromShared(shared)
  const slots = new Map<string, number>()
  const subscriptions = AgvSubscriptions.make(
    prefix,
    (effect) => void Effect.runFork(effect),
    (robots, error) =>
      port.post({ type: "log", level: "Warning", message: `could not (un)subscribe ${robots.length} AGVs' topics: ${error.message}` })
  )
  port.onMessage((message) => {
    if (message.type === "unassign") return subscriptions.remove(message.robot)
    const { robot, slot } = message
    if (slot >= 0) slots.set(robot, slot)
    if (byName) subscriptions.add(robot, () => port.post({ type: "subscribed", robot }))
  })

  const counts: VisualizationSample.SampleCounts = {
    sampled: () => void Atomics.add(counters, Counter.sampled, 1),
    gap: () => void Atomics.add(counters, Counter.gaps, 1)
  }
  const slotOf = (robot: string) => slots.get(robot)
  /** Writes a sample into its AGV's slot; true when it need not be posted too. */
  const sampled = (checked: Inbound.Valid): boolean =>
    columns !== undefined && VisualizationSample.take(columns, slotOf, checked, counts)
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
        const conn = yield* MqttConnection.connect({ url, clientId, security, onMessage })
        if (byName) subscriptions.attach(conn)
        else yield* conn.subscribe([filter], 0)
        port.post({ type: "ready" })
        // mqtt.js subscribes again by itself after a reconnect.
        yield* Effect.never
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
