/**
 * Ingest capacity without a broker: `INGEST_ROBOTS` (1,000) AGVs replayed by `lib/replayer.ts`
 * (a minimal MQTT server of its own streaming pre-encoded VDA 5050 `visualization`s, each AGV
 * at its own phase of the period; a fraction of what Mosquitto and a load generator take of a
 * 2-core machine), into the real service or into a plain subscriber, never both at once.
 *
 *   npm run -s bench:ingest:replay   → one JSON object on stdout (about two and a half minutes)
 *
 * Processes: the replayer; the baseline (`lib/plainSubscriber.ts`: mqtt.js, JSON, headerIds per
 * AGV); the service (`lib/ingestNode.ts`, pointed at the replayer); `INGEST_DASHBOARDS` (100)
 * dashboard sessions (`lib/dashboards.ts`); and this one. The replayer streams to one receiver
 * at a time (by client id), so the two take turns:
 * - target: `INGEST_ROUNDS` (3) rounds of `INGEST_ROUND_SECONDS` (10) at `INGEST_HZ` (100), each
 *   the baseline then the service; the median per side. During the service's turns, a client
 *   stops one of the loaded AGVs every 100 ms (15 in turn), taking turns between the gateway's
 *   `FleetEmergencyStop` and the stop channel (`lib/emergencyStops.ts`), timed to the
 *   `instantActions` arriving at the replayer (its own record of arrival times); the replayer's
 *   AGVs confirm their stops with a `state`, as real ones do, so the service does not resend them.
 * - knee: the highest loss-free rate of each side, trying `INGEST_KNEE_RATES` (10k, 25k, 50k, 75k,
 *   100k messages/s) for `INGEST_KNEE_SECONDS` (5) each and stopping a side at its first loss; and
 *   the highest of those up to which it also kept up (had everything within a second of the
 *   stream's end): a short turn can be loss-free with a backlog that would overflow in a longer one.
 *
 * Figures per turn: messages sent by the replayer to the receiver, dropped by it (more than 4 MiB
 * unread), received (the service's `received`, less what the replayer relayed to it: its own
 * stops, and the AGVs' states confirming them), lost = sent − received; the receiver's CPU time
 * over the streaming span (all its threads, /proc) per message received (the service's also above
 * its idle CPU time, with the dashboards open and no AGV speaking); latency (service: robot
 * message → dashboard frame; baseline: header timestamp → arrival); the replayer's own CPU. After
 * each turn the receiver is given time to take what is still on its way (until its count has not
 * changed for half a second): `drainMs` is how long it still took messages after the stream ended.
 */
import * as os from "node:os"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { type Child, spawnChild } from "./lib/childProcess.js"
import { emergencyStops, now, type StopArrivals, stopFigures, stopSamples } from "./lib/emergencyStops.js"
import { median } from "./lib/percentiles.js"
import { cpuMsOfPid } from "./lib/processCpu.js"

const robots = Number(process.env.INGEST_ROBOTS ?? 1_000)
const hz = Number(process.env.INGEST_HZ ?? 100)
const dashboards = Number(process.env.INGEST_DASHBOARDS ?? 100)
const rounds = Number(process.env.INGEST_ROUNDS ?? 3)
const roundSeconds = Number(process.env.INGEST_ROUND_SECONDS ?? 10)
const kneeRates = (process.env.INGEST_KNEE_RATES ?? "10000,25000,50000,75000,100000")
  .split(",").filter((rate) => rate.trim() !== "").map(Number)
const kneeSeconds = Number(process.env.INGEST_KNEE_SECONDS ?? 5)
/** A loss-free turn kept up when the receiver had taken everything within this long of the stream's end. */
const keptUpDrainMs = 1_000
const warmupSeconds = 3
const idleSeconds = 3
const probes = 5
const stopEveryMs = 200
const prefix = "bench/v2"
/** The AGVs stopped in turn: each at most every 1.5 s, past the stop channel's coalescing of a second. */
const stoppedRobots = Array.from({ length: Math.min(15, robots) }, (_, i) => `bench/agv-${String(i + 1).padStart(4, "0")}`)
/** The client ids the replayer aims at: the plain subscriber's, and the service's connections'. */
const baselineClients = "bench-baseline"
const serviceClients = "fleetvisor-"
/** Each turn, its drain and its requests take at most this much more than its streaming. */
const turnOverheadSeconds = 20
const deadlineMs =
  (120 + 2 * (warmupSeconds + turnOverheadSeconds) + 2 * idleSeconds +
    2 * rounds * (roundSeconds + turnOverheadSeconds) + 2 * kneeRates.length * (kneeSeconds + turnOverheadSeconds)) * 1000
const here = path.dirname(new URL(import.meta.url).pathname)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const round = (value: number, digits = 2) => Number(value.toFixed(digits))
const verbose = process.env.BENCH_VERBOSE === "1"
const step = (message: string) => verbose && process.stderr.write(`[ingest-replay] ${message}\n`)

/**
 * Reads `count` until it has not changed for half a second (at most 15 s): what was on its way has
 * arrived. The last reading, and how long after the first one the count last changed (250 ms steps).
 */
const settled = async <A>(read: () => Promise<A>, count: (a: A) => number): Promise<{ readonly last: A; readonly drainMs: number }> => {
  const started = performance.now()
  let last = await read()
  let drainMs = 0
  for (let unchanged = 0, i = 0; unchanged < 2 && i < 60; i++) {
    await sleep(250)
    const next = await read()
    if (count(next) === count(last)) unchanged++
    else {
      unchanged = 0
      drainMs = Math.round(performance.now() - started)
    }
    last = next
  }
  return { last, drainMs }
}

/** Arrivals of the stops' `instantActions` at the replayer, asked for until one is there. */
const replayerArrivals = (replayer: Child<object, any>): StopArrivals => ({
  after: async (robot, since, timeoutMs) => {
    for (const until = now() + timeoutMs; ;) {
      const { at } = await replayer.request({ op: "arrivals", topic: `${prefix}/${robot}/instantActions`, since })
      if (at.length > 0) return at[0] as number
      if (now() > until) return undefined
      await sleep(2)
    }
  },
  close: async () => {}
})

/** What one turn of one receiver gave. */
interface Turn {
  readonly offeredPerSecond: number
  readonly sent: number
  readonly droppedByReplayer: number
  readonly received: number
  readonly lost: number
  /** How long after the stream's end the receiver was still taking messages (what it had fallen behind by). */
  readonly drainMs: number
  readonly cpuMs: number
  readonly cpuUsPerMessage: number
  readonly latency: { readonly samples: number; readonly p50Ms: number; readonly p99Ms: number }
  readonly replayer: { readonly cpuMs: number; readonly maxLagMs: number }
}

const main = async () => {
  const loadBefore = os.loadavg()
  const children: Array<Child<object, any>> = []
  const spawn = (script: string, args: ReadonlyArray<string>, greets: boolean) => {
    const child = spawnChild<object, any>(path.join(here, "lib", script), args, greets)
    children.push(child)
    return child
  }
  const cleanup = () => children.forEach((child) => child.kill())
  const deadline = setTimeout(() => {
    process.stderr.write("ingest-replay: gave up after the deadline\n")
    cleanup()
    process.exit(1)
  }, deadlineMs)
  try {
    const replayer = spawn("replayer.ts", [String(robots), prefix], true)
    const { url: replayerUrl } = await replayer.first
    step(`replayer on ${replayerUrl} with ${robots} AGVs`)
    const subscriber = spawn("plainSubscriber.ts", [replayerUrl, prefix], false)
    await subscriber.request({ op: "connect" })

    step("service")
    const node = spawn("ingestNode.ts", [replayerUrl, prefix], true)
    const { url } = await node.first
    const wsUrl = `${url.replace(/^http/, "ws")}/ws`
    for (let i = 0; ; i++) {
      const stats = await node.request({ op: "stats" })
      if (stats.links >= robots) break
      if (i > 600) throw new Error(`only ${stats.links} of ${robots} AGV links started`)
      await sleep(100)
    }
    step(`${dashboards} dashboard sessions`)
    const screens = spawn("dashboards.ts", [wsUrl, String(dashboards), String(probes)], false)
    await screens.request({ op: "open" })

    /** The service's CPU time with the dashboards open and no AGV speaking (measured after the warm-up). */
    let serviceIdleCpuMsPerSecond = 0

    /** Messages the replayer relayed to the service besides the stream: its own stops (it subscribes to them too) and their confirmations. */
    const relayedToService = async () => {
      const stats = await replayer.request({ op: "stats" })
      return (stats.connections as Array<{ clientId: string; relayed: number }>)
        .filter((c) => c.clientId.startsWith(serviceClients))
        .reduce((n, c) => n + c.relayed, 0)
    }

    const baselineTurn = async (turnHz: number, seconds: number): Promise<Turn & { gapsSeen: number }> => {
      await subscriber.request({ op: "reset" })
      const cpuBefore = cpuMsOfPid(subscriber.pid)
      await replayer.request({ op: "stream", hz: turnHz, clients: baselineClients })
      await sleep(seconds * 1000)
      const streamed = await replayer.request({ op: "halt" })
      const cpuMs = cpuMsOfPid(subscriber.pid) - cpuBefore
      const { last: seen, drainMs } = await settled(() => subscriber.request({ op: "report" }), (report) => report.received)
      return {
        offeredPerSecond: robots * turnHz,
        sent: streamed.sent,
        droppedByReplayer: streamed.dropped,
        received: seen.received,
        lost: streamed.sent - seen.received,
        drainMs,
        gapsSeen: seen.gaps,
        cpuMs,
        cpuUsPerMessage: round((cpuMs * 1000) / Math.max(1, seen.received)),
        latency: seen.latency,
        replayer: { cpuMs: streamed.cpuMs, maxLagMs: streamed.maxLagMs }
      }
    }

    const serviceTurn = async (
      turnHz: number,
      seconds: number,
      during: (ms: number) => Promise<unknown> = sleep
    ): Promise<Turn & { invalid: number; droppedByIngestThread: number; cpuUsPerMessageAboveIdle: number }> => {
      const before = await node.request({ op: "stats" })
      const relayedBefore = await relayedToService()
      await screens.request({ op: "reset" })
      const cpuBefore = cpuMsOfPid(node.pid)
      const started = performance.now()
      await replayer.request({ op: "stream", hz: turnHz, clients: serviceClients })
      await during(seconds * 1000)
      await sleep(seconds * 1000 - (performance.now() - started))
      const streamed = await replayer.request({ op: "halt" })
      const cpuMs = cpuMsOfPid(node.pid) - cpuBefore
      const view = await screens.request({ op: "report" })
      const { last: after, drainMs } = await settled(() => node.request({ op: "stats" }), (stats) => stats.mqtt.received)
      const received = after.mqtt.received - before.mqtt.received - (await relayedToService() - relayedBefore)
      return {
        offeredPerSecond: robots * turnHz,
        sent: streamed.sent,
        droppedByReplayer: streamed.dropped,
        received,
        lost: streamed.sent - received,
        drainMs,
        invalid: after.mqtt.invalid - before.mqtt.invalid,
        droppedByIngestThread: after.mqtt.ingestDropped - before.mqtt.ingestDropped,
        cpuMs,
        cpuUsPerMessage: round((cpuMs * 1000) / Math.max(1, received)),
        cpuUsPerMessageAboveIdle: round(((cpuMs - serviceIdleCpuMsPerSecond * streamed.seconds) * 1000) / Math.max(1, received)),
        latency: { samples: view.latencySamples, p50Ms: view.p50Ms, p99Ms: view.p99Ms },
        replayer: { cpuMs: streamed.cpuMs, maxLagMs: streamed.maxLagMs }
      }
    }

    step(`warm-up: ${warmupSeconds} s each`)
    await baselineTurn(hz, warmupSeconds)
    await serviceTurn(hz, warmupSeconds)

    const idleBefore = cpuMsOfPid(node.pid)
    await sleep(idleSeconds * 1000)
    serviceIdleCpuMsPerSecond = round((cpuMsOfPid(node.pid) - idleBefore) / idleSeconds, 1)

    const channel = (await (await fetch(`${url}/fleet/stop-channel`)).json()) as { port: number }
    const stops = await emergencyStops(
      wsUrl,
      `ws://127.0.0.1:${channel.port}/`,
      stoppedRobots,
      replayerArrivals(replayer)
    )
    step("emergency stop, idle")
    const stopIdle = stopFigures(await stops.measure(idleSeconds * 1000, stopEveryMs))

    const target = {
      baseline: [] as Array<Turn>,
      service: [] as Array<Turn & { cpuUsPerMessageAboveIdle: number }>
    }
    const underLoad = stopSamples()
    for (let r = 1; r <= rounds; r++) {
      step(`round ${r}: ${robots} AGVs at ${hz} Hz, ${roundSeconds} s each`)
      target.baseline.push(await baselineTurn(hz, roundSeconds))
      target.service.push(await serviceTurn(hz, roundSeconds, (ms) => stops.measure(ms - 500, stopEveryMs, underLoad)))
      step(`round ${r}: baseline lost ${target.baseline.at(-1)!.lost}, service lost ${target.service.at(-1)!.lost}`)
    }
    await stops.close()

    const knee = {
      baseline: { lossFreePerSecond: undefined as number | undefined, keptUpPerSecond: undefined as number | undefined, tried: [] as Array<Turn> },
      service: { lossFreePerSecond: undefined as number | undefined, keptUpPerSecond: undefined as number | undefined, tried: [] as Array<Turn> }
    }
    for (const rate of kneeRates) {
      for (const side of ["baseline", "service"] as const) {
        const tried = knee[side].tried
        if (tried.length > 0 && tried.at(-1)!.lost > 0) continue
        step(`knee: ${side} at ${rate} messages/s`)
        const turn = side === "baseline" ? await baselineTurn(rate / robots, kneeSeconds) : await serviceTurn(rate / robots, kneeSeconds)
        tried.push(turn)
        const keptUpSoFar = knee[side].keptUpPerSecond === knee[side].lossFreePerSecond
        if (turn.lost === 0) knee[side].lossFreePerSecond = rate
        if (turn.lost === 0 && turn.drainMs <= keptUpDrainMs && keptUpSoFar) knee[side].keptUpPerSecond = rate
      }
    }

    const medians = (turns: ReadonlyArray<Turn & { cpuUsPerMessageAboveIdle?: number }>) => ({
      lost: median(turns.map((t) => t.lost)),
      drainMs: median(turns.map((t) => t.drainMs)),
      cpuUsPerMessage: median(turns.map((t) => t.cpuUsPerMessage)),
      ...(turns[0]?.cpuUsPerMessageAboveIdle === undefined ? {} : { cpuUsPerMessageAboveIdle: median(turns.map((t) => t.cpuUsPerMessageAboveIdle!)) }),
      latencyP50Ms: median(turns.map((t) => t.latency.p50Ms)),
      latencyP99Ms: median(turns.map((t) => t.latency.p99Ms)),
      replayerCpuShareOfCore: median(turns.map((t) => round(t.replayer.cpuMs / (roundSeconds * 1000), 3)))
    })
    const brief = (turn: Turn & { cpuUsPerMessageAboveIdle?: number }) => {
      const { offeredPerSecond, sent, droppedByReplayer, received, lost, drainMs, cpuUsPerMessage, cpuUsPerMessageAboveIdle, latency } = turn
      return { offeredPerSecond, sent, droppedByReplayer, received, lost, drainMs, cpuUsPerMessage, cpuUsPerMessageAboveIdle, latencyP99Ms: latency.p99Ms }
    }
    const result = {
      benchmark: "ingest-replay",
      loadAverage: { before: loadBefore.map((l) => round(l)), after: os.loadavg().map((l) => round(l)) },
      cores: os.cpus().length,
      setup: {
        robots, hz, offeredPerSecond: robots * hz, rounds, roundSeconds, dashboards, latencyProbes: probes, kneeRates, kneeSeconds,
        ingestThread: process.env.FLEET_MQTT_INGEST_THREAD ?? "on",
        controlLoopRealtimePriority: process.env.FLEET_CONTROL_LOOP_REALTIME_PRIORITY ?? "off",
        stopChannelRealtimePriority: process.env.FLEET_STOP_REALTIME_PRIORITY ?? "off"
      },
      target: {
        baseline: { median: medians(target.baseline), rounds: target.baseline },
        service: { median: medians(target.service), rounds: target.service, idleCpuMsPerSecond: serviceIdleCpuMsPerSecond }
      },
      emergencyStop: { idle: stopIdle, underLoad: stopFigures(underLoad) },
      knee: {
        baseline: {
          lossFreePerSecond: knee.baseline.lossFreePerSecond ?? null,
          keptUpPerSecond: knee.baseline.keptUpPerSecond ?? null,
          tried: knee.baseline.tried.map(brief)
        },
        service: {
          lossFreePerSecond: knee.service.lossFreePerSecond ?? null,
          keptUpPerSecond: knee.service.keptUpPerSecond ?? null,
          tried: knee.service.tried.map(brief)
        }
      }
    }
    console.log(JSON.stringify(result, null, 2))
    await screens.request({ op: "close" })
    await subscriber.request({ op: "close" })
    await node.request({ op: "stop" })
    await replayer.request({ op: "close" })
  } finally {
    clearTimeout(deadline)
    cleanup()
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
