/**
 * Ingest: `INGEST_ROBOTS` (1,000) simulated AGVs publishing VDA 5050 `visualization` at
 * `INGEST_HZ` (100) for `INGEST_SECONDS` (60), through a Mosquitto of the benchmark's own on a
 * spare port of 127.0.0.1, into the real service, while `INGEST_DASHBOARDS` (100) dashboard
 * sessions receive the 30 Hz conflated fleet view.
 *
 *   npm run -s bench:ingest      → one JSON object on stdout (about three minutes)
 *
 * Processes: the broker (`set_tcp_nodelay true`); the AGVs (`lib/agvLoad.ts`, spread over
 * `INGEST_CONNECTIONS` (50) MQTT connections, one write per connection per period, each
 * connection at its own phase of the period, or all at once with `INGEST_PHASES=burst`); the service
 * (`lib/ingestNode.ts`: `src/main.ts` with its fleet and its SQLite telemetry log); the
 * dashboards (`lib/dashboards.ts`, MessagePack, 5 of them decoding every frame to measure); and
 * this one, which measures emergency stops of the loaded AGVs (15 in turn), taking turns between a
 * client's `FleetEmergencyStop` on the gateway and a stop on the stop channel (`FLEET_STOP_PORT`):
 * from the request to the `instantActions` arriving at an MQTT subscriber of that AGV's topic
 * (an upper bound of "the command leaving the link": it includes the broker's hop), to the
 * reply, and (the channel only: its reply says when its thread wrote the stop) to the command
 * leaving the link. `BENCH_CHILD_ARGS="--cpu-prof --cpu-prof-dir=…"` profiles the children;
 * `FLEET_CONTROL_LOOP_REALTIME_PRIORITY` and `FLEET_STOP_REALTIME_PRIORITY` reach the service
 * (its control loop's and stop channel's threads under SCHED_FIFO).
 *
 * Figures:
 * - baseline (same run, before the service starts): the same AGVs into a plain mqtt.js subscriber
 *   of the same broker for 15 s: messages received of those published, and the latency of each
 *   message (header timestamp → arrival). What the broker and the load generator give here.
 * - robot side: messages published during the run (warm-up included), and received by the
 *   service's MQTT link (`received` of `fleet/mqtt`, 2 s after the last, less the stops it sent
 *   to the probe AGV, which it receives too); `lost` is the difference.
 * - end to end: from each robot's message (`updatedAt` of its view, the header timestamp, to the
 *   millisecond) to the dashboard frame that shows it, over every robot of every frame the
 *   probes received after the warm-up.
 * - emergency stop, idle (before the load) and under it, one every 100 ms, the two paths in turn.
 * - control loop under the load: the worst p99 tick jitter of the 10 s windows, overruns, missed ticks.
 * - CPU time of every process over the measured span, against the machine's cores: what limited it.
 */
import * as mqtt from "mqtt"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { type Child, spawnChild } from "./lib/childProcess.js"
import { emergencyStops, stopFigures, subscriberArrivals } from "./lib/emergencyStops.js"
import { summary } from "./lib/percentiles.js"
import { cpuMsOfPid } from "./lib/processCpu.js"

const robots = Number(process.env.INGEST_ROBOTS ?? 1_000)
const hz = Number(process.env.INGEST_HZ ?? 100)
const seconds = Number(process.env.INGEST_SECONDS ?? 60)
const dashboards = Number(process.env.INGEST_DASHBOARDS ?? 100)
const connections = Number(process.env.INGEST_CONNECTIONS ?? 50)
/** `spread` (default): each connection's robots speak at their own phase of the period; `burst`: all at its start. */
const phases = process.env.INGEST_PHASES === "burst" ? "burst" : "spread"
const probes = 5
const baselineSeconds = 15
const warmupSeconds = 5
const stopEveryMs = 200
/** The AGVs stopped in turn: each at most every 1.5 s, past the stop channel's coalescing of a second. */
const stoppedRobots = Array.from({ length: Math.min(15, robots) }, (_, i) => `bench/agv-${String(i + 1).padStart(4, "0")}`)
const deadlineMs = (seconds + baselineSeconds + 120) * 1000
const prefix = "bench/v2"
const here = path.dirname(new URL(import.meta.url).pathname)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const round = (value: number, digits = 2) => Number(value.toFixed(digits))
const now = () => performance.timeOrigin + performance.now()
const verbose = process.env.BENCH_VERBOSE === "1"
const step = (message: string) => verbose && process.stderr.write(`[ingest] ${message}\n`)

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const startBroker = async (port: number, dir: string): Promise<ChildProcess> => {
  const conf = path.join(dir, "mosquitto.conf")
  // set_tcp_nodelay: without it Mosquitto's small packets (a stop) can wait for a delayed ACK.
  fs.writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\nset_tcp_nodelay true\n`)
  const binary = fs.existsSync("/usr/sbin/mosquitto") ? "/usr/sbin/mosquitto" : "mosquitto"
  const broker = spawn(binary, ["-c", conf], { stdio: "ignore" })
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => resolve(socket.end() !== undefined))
      socket.on("error", () => resolve(false))
    })
    if (up) return broker
    await sleep(50)
  }
  throw new Error("mosquitto did not start")
}

/** Every message under the prefix into a plain mqtt.js client: count and header-timestamp latency. */
const baseline = async (brokerUrl: string, load: Child<object, any>) => {
  const client = await mqtt.connectAsync(brokerUrl, { clientId: "bench-baseline" })
  let received = 0
  const latencies: Array<number> = []
  client.on("message", (topic, payload) => {
    if (!topic.endsWith("/visualization")) return
    received++
    if (received % 10 === 0) latencies.push(now() - Date.parse(JSON.parse(payload.toString()).timestamp))
  })
  await client.subscribeAsync(`${prefix}/+/+/#`, { qos: 0 })
  const cpuBefore = process.cpuUsage()
  const run = await load.request({ op: "run", seconds: baselineSeconds })
  await sleep(1_000)
  const cpu = process.cpuUsage(cpuBefore)
  await client.endAsync()
  return {
    published: run.published,
    received,
    lost: run.published - received,
    latency: summary(latencies),
    subscriberCpuMs: Math.round((cpu.user + cpu.system) / 1000),
    generatorCpuMs: run.cpuMs
  }
}

const main = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-ingest-bench-"))
  const port = await freePort()
  const brokerUrl = `mqtt://127.0.0.1:${port}`
  const broker = await startBroker(port, dir)
  const children: Array<Child<object, any>> = []
  const cleanup = () => {
    for (const child of children) child.kill()
    broker.kill()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  const deadline = setTimeout(() => {
    process.stderr.write("ingest: gave up after the deadline\n")
    cleanup()
    process.exit(1)
  }, deadlineMs)
  try {
    step(`broker on ${port}; connecting ${robots} AGVs`)
    const load = spawnChild<object, any>(path.join(here, "lib/agvLoad.ts"), [String(port), String(robots), String(hz), prefix, String(connections), phases], false)
    children.push(load)
    await load.request({ op: "connect" })

    step("baseline: plain mqtt.js subscriber")
    const plain = await baseline(brokerUrl, load)

    step("service")
    const node = spawnChild<object, any>(path.join(here, "lib/ingestNode.ts"), [brokerUrl, prefix], true)
    children.push(node)
    const { url } = await node.first
    const wsUrl = `${url.replace(/^http/, "ws")}/ws`
    for (let i = 0; ; i++) {
      const stats = await node.request({ op: "stats" })
      if (stats.links >= robots) break
      if (i > 600) throw new Error(`only ${stats.links} of ${robots} AGV links started`)
      await sleep(100)
    }

    step(`${dashboards} dashboard sessions`)
    const screens = spawnChild<object, any>(path.join(here, "lib/dashboards.ts"), [wsUrl, String(dashboards), String(probes)], false)
    children.push(screens)
    await screens.request({ op: "open" })

    const channel = (await (await fetch(`${url}/fleet/stop-channel`)).json()) as { port: number }
    const probe = await subscriberArrivals(brokerUrl, prefix)
    const stops = await emergencyStops(wsUrl, `ws://127.0.0.1:${channel.port}/`, stoppedRobots, probe)
    step("emergency stop, idle")
    const stopIdle = stopFigures(await stops.measure(5_000, stopEveryMs))

    step(`load: ${robots} AGVs at ${hz} Hz for ${seconds + warmupSeconds} s`)
    const start = await node.request({ op: "stats" })
    const instantActionsBefore = probe.received()
    const running = load.request({ op: "run", seconds: seconds + warmupSeconds })
    await sleep(warmupSeconds * 1000)
    await screens.request({ op: "reset" })
    const before = await node.request({ op: "stats" })
    const brokerCpuBefore = cpuMsOfPid(broker.pid!)
    const ownCpuBefore = process.cpuUsage()
    const loopWindows: Array<{ jitterP99Ms: number; jitterMaxMs: number }> = []
    const sampling = (async () => {
      for (let t = 10; t <= seconds; t += 10) {
        await sleep(10_000)
        const stats = await node.request({ op: "stats" })
        step(`${t} s: service received ${stats.mqtt.received - start.mqtt.received}, loop p99 ${stats.loop?.jitterP99Ms} ms`)
        if (stats.loop !== undefined) loopWindows.push({ jitterP99Ms: stats.loop.jitterP99Ms, jitterMaxMs: stats.loop.jitterMaxMs })
      }
    })()
    const stopUnderLoad = stopFigures(await stops.measure((seconds - 2) * 1000, stopEveryMs))
    await sampling
    const view = await screens.request({ op: "report" })
    const generated = await running
    const during = await node.request({ op: "stats" })
    const brokerCpuMs = cpuMsOfPid(broker.pid!) - brokerCpuBefore
    const ownCpu = process.cpuUsage(ownCpuBefore)
    await sleep(2_000)
    const after = await node.request({ op: "stats" })
    const instantActions = probe.received() - instantActionsBefore
    await stops.close()

    // Published over the whole run (warm-up included) against received over the same span.
    // The service also receives its own `instantActions` (stops and their resends), under the prefix
    // it subscribes to: as many as the probe, which subscribes to them all.
    const receivedInRun = after.mqtt.received - start.mqtt.received - instantActions
    const serviceLoop = {
      active: during.process.eventLoop.active - before.process.eventLoop.active,
      idle: during.process.eventLoop.idle - before.process.eventLoop.idle
    }
    const cpuMs = {
      service: Math.round(during.process.cpuMs - before.process.cpuMs),
      generator: Math.round((generated.cpuMs * seconds) / (seconds + warmupSeconds)),
      broker: Math.round(brokerCpuMs),
      dashboards: view.cpuMs,
      benchmark: Math.round((ownCpu.user + ownCpu.system) / 1000)
    }
    const totalCpuMs = Object.values(cpuMs).reduce((a, b) => a + b, 0)
    const result = {
      benchmark: "ingest",
      loadAverage: os.loadavg().map((l) => round(l)),
      cores: os.cpus().length,
      setup: { robots, hz, seconds, dashboards, mqttConnections: connections, phases, latencyProbes: probes, offeredPerSecond: robots * hz,
        controlLoopRealtimePriority: process.env.FLEET_CONTROL_LOOP_REALTIME_PRIORITY ?? "off",
        stopChannelRealtimePriority: process.env.FLEET_STOP_REALTIME_PRIORITY ?? "off" },
      baselinePlainSubscriber: plain,
      robotSide: {
        published: generated.published,
        receivedByService: receivedInRun,
        lost: generated.published - receivedInRun,
        invalid: after.mqtt.invalid - before.mqtt.invalid,
        droppedByIngestThread: after.mqtt.ingestDropped - start.mqtt.ingestDropped,
        generatorLateRounds: generated.late,
        generatorBlockedWrites: generated.blockedWrites
      },
      endToEnd: view,
      emergencyStop: { idle: stopIdle, underLoad: stopUnderLoad },
      controlLoop: {
        worstWindowJitterP99Ms: round(Math.max(0, ...loopWindows.map((w) => w.jitterP99Ms)), 3),
        worstJitterMs: round(Math.max(0, ...loopWindows.map((w) => w.jitterMaxMs)), 3),
        windows: loopWindows.map((w) => round(w.jitterP99Ms, 3)),
        overruns: during.loop.overruns - before.loop.overruns,
        missed: during.loop.missed - before.loop.missed
      },
      telemetryLog: {
        appended: after.telemetry.appended - before.telemetry.appended,
        committed: after.telemetry.committed - before.telemetry.committed,
        dropped: after.telemetry.dropped - before.telemetry.dropped,
        // Rows the log's worker made itself from the sample columns (poses), off the main thread.
        sampled: (after.telemetry.sampled ?? 0) - (before.telemetry.sampled ?? 0)
      },
      service: {
        eventLoopUtilization: round(serviceLoop.active / (serviceLoop.active + serviceLoop.idle), 3),
        rssMb: during.process.rssMb,
        gcPauses: during.process.gc.pauses - before.process.gc.pauses,
        gcMs: Math.round(during.process.gc.totalMs - before.process.gc.totalMs),
        gcPausesOver5Ms: during.process.gc.over5Ms - before.process.gc.over5Ms,
        gcLongestMs: round(during.process.gc.maxMs)
      },
      cpuMs,
      cpuShareOfMachine: round(totalCpuMs / (seconds * 1000 * os.cpus().length), 3)
    }
    console.log(JSON.stringify(result, null, 2))
    await screens.request({ op: "close" })
    await load.request({ op: "stop" })
    await node.request({ op: "stop" })
  } finally {
    clearTimeout(deadline)
    cleanup()
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
