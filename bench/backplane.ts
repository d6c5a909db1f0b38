/**
 * The Redis backplane between three node processes on one Redis of the run's own (a spare port
 * of 127.0.0.1, nothing on disk): node 0 publishes what a fleet node sends to the others, 30
 * views a second of about 12 KB each and 1,000 small events a second (100 Hz bursts of 10), each
 * a broadcast of its own hub; nodes 1 and 2 subscribe to both topics and time every arrival.
 *
 *   npx tsx bench/backplane.ts   → one JSON object on stdout (about 20 s)
 *
 * Latency is publish → the subscriber's hub handing the message to its queue, on one clock
 * (`performance.timeOrigin + performance.now()` of each process). The publisher's CPU is read
 * from /proc over an idle phase and over the loaded phase; `loadedMinusIdlePercent` is what the
 * load costs it, in percent of one core. Redis's own CPU is not counted. Everything stops by
 * itself (a hard stop after 60 s).
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import { Redis } from "ioredis"
import { pack } from "msgpackr"
import * as os from "node:os"
import * as PubSub from "../src/actors/PubSub.js"
import * as RedisBackplane from "../src/cluster/RedisBackplane.js"
import { startRedis } from "../test/support/RedisServer.js"
import { type Child, spawnChild } from "./lib/childProcess.js"
import { summary } from "./lib/percentiles.js"
import { cpuMsOfPid } from "./lib/processCpu.js"

const viewsPerSecond = 30
const eventsPerSecond = 1_000
const idleSeconds = 2
const loadSeconds = Number(process.env.BACKPLANE_SECONDS ?? 15)
const robotsPerView = 100

type ToNode =
  | { readonly _tag: "Load"; readonly seconds: number }
  | { readonly _tag: "Report" }
type FromNode =
  | { readonly _tag: "Ready" }
  | { readonly _tag: "Loaded"; readonly views: number; readonly events: number; readonly viewBytes: number }
  | {
    readonly _tag: "Report"
    readonly viewLatencies: ReadonlyArray<number>
    readonly eventLatencies: ReadonlyArray<number>
    readonly outOfOrder: number
    readonly stats: RedisBackplane.Stats
  }

const now = () => performance.timeOrigin + performance.now()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A view as a fleet node broadcasts it: every robot it owns, about 12 KB in MessagePack. */
const view = (seq: number) => ({
  at: now(),
  seq,
  robots: Array.from({ length: robotsPerView }, (_, i) => ({
    id: `agv-${String(i).padStart(4, "0")}`,
    x: 10 + i * 0.013 + seq * 0.001,
    y: 20 - i * 0.017,
    theta: (seq * 0.01 + i) % 6.28,
    speed: 0.8,
    battery: 71.5,
    state: "EXECUTING",
    order: `order-${i}`
  }))
})

/** One node process: publisher (node 0) or subscriber. */
const runNode = (nodeId: string, url: string) => {
  const send = (message: FromNode) => process.send!(message)
  const publisher = nodeId === "node-0"
  const program = Effect.gen(function*() {
    const backplane = yield* RedisBackplane.make({ url, nodeId })
    const hub = yield* PubSub.make({ nodeId, backplane })
    const viewLatencies: Array<number> = []
    const eventLatencies: Array<number> = []
    let outOfOrder = 0
    if (!publisher) {
      const views = yield* PubSub.subscribeQueue<{ at: number; seq: number }>(hub, "fleet:views", { bufferSize: 1_000_000 })
      const events = yield* PubSub.subscribeQueue<{ at: number; n: number }>(hub, "fleet:events", { bufferSize: 1_000_000 })
      let lastEvent = 0
      yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(views), (v) => Effect.sync(() => viewLatencies.push(now() - v.at)))))
      yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(events), (e) =>
        Effect.sync(() => {
          eventLatencies.push(now() - e.at)
          if (e.n !== lastEvent + 1) outOfOrder++
          lastEvent = e.n
        }))))
    }
    const messages = yield* Queue.unbounded<ToNode>()
    process.on("message", (message: ToNode) => Queue.unsafeOffer(messages, message))
    process.on("disconnect", () => process.exit(0))
    send({ _tag: "Ready" })
    for (;;) {
      const message = yield* Queue.take(messages)
      if (message._tag === "Report") {
        send({ _tag: "Report", viewLatencies, eventLatencies, outOfOrder, stats: yield* backplane.stats })
        return
      }
      const loaded = yield* Effect.promise(() => load(hub, message.seconds))
      send({ _tag: "Loaded", ...loaded })
    }
  })
  Effect.runPromise(Effect.scoped(program)).then(() => process.exit(0), (error) => {
    console.error(error)
    process.exit(1)
  })
}

/** Publishes the views and the events for `seconds`, on timers, as a node's view builder would. */
const load = (hub: PubSub.PubSub, seconds: number) =>
  new Promise<{ views: number; events: number; viewBytes: number }>((resolve) => {
    let views = 0
    let events = 0
    const viewTimer = setInterval(() => {
      PubSub.unsafeBroadcast(hub, "fleet:views", view(++views))
    }, 1000 / viewsPerSecond)
    const eventTimer = setInterval(() => {
      for (let i = 0; i < eventsPerSecond / 100; i++) {
        PubSub.unsafeBroadcast(hub, "fleet:events", { at: now(), n: ++events, robot: `agv-${events % 300}`, kind: "action" })
      }
    }, 10)
    setTimeout(() => {
      clearInterval(viewTimer)
      clearInterval(eventTimer)
      resolve({ views, events, viewBytes: pack(view(1)).length })
    }, seconds * 1000)
  })

const main = async () => {
  const hardStop = setTimeout(() => {
    console.error("backplane bench: hard stop after 60 s")
    process.exit(1)
  }, 60_000)
  const redis = await startRedis()
  const nodes: Array<Child<ToNode, FromNode>> = []
  try {
    for (let i = 0; i < 3; i++) nodes.push(spawnChild(import.meta.filename, ["--node", `node-${i}`, redis.url], true))
    await Promise.all(nodes.map((node) => node.first))
    const raw = new Redis(redis.url)
    for (let i = 0; i < 100; i++) {
      const counts = (await raw.pubsub("NUMSUB", "fleetvisor:bp:fleet:views", "fleetvisor:bp:fleet:events")) as Array<unknown>
      if (Number(counts[1]) === 2 && Number(counts[3]) === 2) break
      await sleep(50)
    }
    raw.disconnect()
    const [publisher, ...subscribers] = nodes
    const idleStart = cpuMsOfPid(publisher.pid)
    await sleep(idleSeconds * 1000)
    const idleCpuMs = cpuMsOfPid(publisher.pid) - idleStart
    const loadStart = cpuMsOfPid(publisher.pid)
    const loaded = await publisher.request({ _tag: "Load", seconds: loadSeconds })
    const loadCpuMs = cpuMsOfPid(publisher.pid) - loadStart
    await sleep(500)
    const reports = await Promise.all(nodes.map((node) => node.request({ _tag: "Report" })))
    if (loaded._tag !== "Loaded") throw new Error("the publisher did not load")
    const idlePercent = (idleCpuMs / (idleSeconds * 1000)) * 100
    const loadedPercent = (loadCpuMs / (loadSeconds * 1000)) * 100
    const result = {
      bench: "backplane",
      setup: {
        nodes: 3,
        publishers: 1,
        subscribers: subscribers.length,
        viewsPerSecond,
        viewBytes: loaded.viewBytes,
        eventsPerSecond,
        seconds: loadSeconds,
        cpus: os.cpus().length,
        loadAverage: os.loadavg().map((x) => Number(x.toFixed(2)))
      },
      sent: { views: loaded.views, events: loaded.events },
      publisher: {
        cpuIdlePercent: Number(idlePercent.toFixed(1)),
        cpuLoadedPercent: Number(loadedPercent.toFixed(1)),
        loadedMinusIdlePercent: Number((loadedPercent - idlePercent).toFixed(1)),
        backplane: reports[0]._tag === "Report" ? reports[0].stats : undefined
      },
      subscribers: reports.slice(1).map((report) =>
        report._tag !== "Report" ? undefined : {
          views: summary(report.viewLatencies),
          events: summary(report.eventLatencies),
          lostViews: loaded.views - report.viewLatencies.length,
          lostEvents: loaded.events - report.eventLatencies.length,
          outOfOrderEvents: report.outOfOrder,
          gaps: report.stats.gaps,
          resyncs: report.stats.resyncs,
          decodeFailures: report.stats.decodeFailures
        }
      )
    }
    process.stdout.write(JSON.stringify(result, null, 2) + "\n")
  } finally {
    for (const node of nodes) node.kill()
    await sleep(200)
    await redis.stop()
    clearTimeout(hardStop)
  }
}

const nodeAt = process.argv.indexOf("--node")
if (nodeAt >= 0) runNode(process.argv[nodeAt + 1], process.argv[nodeAt + 2])
else main().catch((error) => {
  console.error(error)
  process.exit(1)
})
