/**
 * Several nodes against one (issue #16's `bench:cluster`): the same AGVs and dashboards served by
 * one service process, then by three sharing a Redis, in one run, on a Mosquitto and a Redis of
 * the benchmark's own (spare ports of 127.0.0.1).
 *
 *   npm run -s bench:cluster                  → one JSON object on stdout (about 5 minutes)
 *   BENCH_QUICK=1 npm run -s bench:cluster    → a small run to check it works (about three minutes)
 *
 * Load: `CLUSTER_ROBOTS` (300; quick 30) AGVs (`lib/agvLoad.ts`: ONLINE retained, one state, then a
 * `visualization` each at `CLUSTER_HZ` (10) over at most 50 connections) and `CLUSTER_DASHBOARDS`
 * (30; quick 6) `FleetSubscribe` sessions (`lib/dashboards.ts`, MessagePack; 6 of them parse every
 * frame), spread evenly over the nodes. No arms: each node would need the arms' controllers of its
 * own to compare (the RMI simulators run in the service's process in the demo).
 *
 * Phases, each node a real service process (`src/main.ts`, ingest thread on, stop channel on):
 * 1. one node (no Redis): `CLUSTER_IDLE_SECONDS` (15; quick 3) with the AGVs connected and silent,
 *    then `CLUSTER_SECONDS` (60; quick 8) of load after a warm-up;
 * 2. three nodes (`REDIS_URL`, lease TTL `CLUSTER_LEASE_TTL_MS`, 2,000 ms), all live before the
 *    AGVs connect again (their retained `connection` cleared) so the robots spread over them: the
 *    same idle and loaded windows, latency measured only on robots the dashboard's node does not run;
 * 3. `kill -9` of the node running the most robots, the load still on: time until every robot's
 *    link runs on exactly one survivor (their actor trees, every 50 ms), and until every probe
 *    dashboard on the survivors shows every robot online with a message made after the kill;
 * 4. Redis stopped: `CLUSTER_STOPS` (100; quick 10) stops over the stop channel of a survivor, each of
 *    an AGV the other survivor runs (each AGV at most once a second: the channel coalesces), timed
 *    from the request to the `instantActions` at a plain MQTT subscriber.
 *
 * Figures, each with the target and whether it was met:
 * - service CPU per ingested message: CPU time of the service processes (all threads, /proc) over
 *   the loaded window, less their idle rate over as long, divided by the AGV messages they
 *   received (`fleetvisor_mqtt_messages_received_total`); three nodes summed, as a ratio to one;
 * - robot message → dashboard frame p99 (the AGV's header timestamp to the frame's arrival), one
 *   node against three (robots the dashboard's node does not run), and the sequence gaps the probes
 *   saw (a `FleetUpdate` tick that is not the previous + 1);
 * - fail-over after `kill -9` against TTL + 2 s;
 * - stop over the stop channel with Redis stopped: p99 to the broker's subscriber, delivered share.
 */
import * as mqtt from "mqtt"
import * as os from "node:os"
import * as path from "node:path"
import { WebSocket } from "ws"
import { type ServiceProcess, startProcess } from "../test/service/support/ServiceProcess.js"
import { startMosquitto } from "../test/support/MosquittoServer.js"
import { startRedis } from "../test/support/RedisServer.js"
import { type Child, spawnChild } from "./lib/childProcess.js"
import { now, subscriberArrivals } from "./lib/emergencyStops.js"
import { summary } from "./lib/percentiles.js"
import { cpuMsOfPid } from "./lib/processCpu.js"

const quick = process.env.BENCH_QUICK === "1"
const robots = Number(process.env.CLUSTER_ROBOTS ?? (quick ? 30 : 300))
const hz = Number(process.env.CLUSTER_HZ ?? 10)
const dashboards = Number(process.env.CLUSTER_DASHBOARDS ?? (quick ? 6 : 30))
const idleSeconds = Number(process.env.CLUSTER_IDLE_SECONDS ?? (quick ? 3 : 15))
const loadedSeconds = Number(process.env.CLUSTER_SECONDS ?? (quick ? 8 : 60))
const ttlMs = Number(process.env.CLUSTER_LEASE_TTL_MS ?? 2_000)
const stopCount = Number(process.env.CLUSTER_STOPS ?? (quick ? 10 : 100))
const warmupSeconds = quick ? 2 : 5
const nodeCount = 3
const probes = 6
const connections = Math.min(robots, 50)
const prefix = "bench/v2"
const here = path.dirname(new URL(import.meta.url).pathname)
/** The whole run's bound: every phase, the processes' starts, and a margin. */
const deadlineMs = (2 * (idleSeconds + loadedSeconds + warmupSeconds) + ttlMs / 1000 + stopCount * 1.2 + 240) * 1000

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const round = (value: number, digits = 2) => Number(value.toFixed(digits))
const verbose = process.env.BENCH_VERBOSE === "1"
const step = (message: string) => verbose && process.stderr.write(`[cluster] ${message}\n`)

/** A metric's value summed over its series in a node's `/metrics`. */
const metric = async (service: ServiceProcess, name: string): Promise<number> => {
  const text = await (await fetch(`${service.url}/metrics`)).text()
  return text.split("\n").filter((line) => line.startsWith(`${name} `) || line.startsWith(`${name}{`))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0)
}

/** The AGV links running on a node (its actor tree), by robot id. */
const agvLinks = async (service: ServiceProcess): Promise<Set<string>> => {
  interface Node {
    readonly name: string
    readonly status: string
    readonly children: ReadonlyArray<Node>
  }
  const tree = (await (await fetch(`${service.url}/admin/actors`, { signal: AbortSignal.timeout(5_000) })).json()) as { actors: ReadonlyArray<Node> }
  const found = new Set<string>()
  const walk = (nodes: ReadonlyArray<Node>) => {
    for (const node of nodes) {
      if (node.status === "running" && node.name.startsWith("agv:")) found.add(node.name.slice("agv:".length))
      walk(node.children)
    }
  }
  walk(tree.actors)
  return found
}

/** Polls `f` every 50 ms until it holds; the time it took (ms), or fails after `timeoutMs`. */
const until = async (what: string, timeoutMs: number, f: () => Promise<boolean>): Promise<number> => {
  const started = performance.now()
  while (!(await f().catch(() => false))) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
  return performance.now() - started
}

/** Every robot's link running on exactly one of `nodes`. */
const eachOnce = async (nodes: ReadonlyArray<ServiceProcess>, ids: ReadonlyArray<string>) => {
  const trees = await Promise.all(nodes.map(agvLinks))
  return ids.every((id) => trees.filter((tree) => tree.has(id)).length === 1) && trees.reduce((n, t) => n + t.size, 0) === ids.length
}

const nodeEnv = (brokerUrl: string) => ({
  CANVAS: "off",
  FLEET_DEMO: "off",
  FLEET_MQTT_URL: brokerUrl,
  FLEET_MQTT_PREFIX: prefix,
  FLEET_STOP_PORT: "0",
  FLEET_AGV_DISCOVERY_RATE: "10000",
  MAX_CONNECTIONS_PER_ADDRESS: "10000",
  FLEET_MQTT_INGEST_THREAD: process.env.FLEET_MQTT_INGEST_THREAD ?? "on"
})

/**
 * Starts a service process; tries again (three times in all) when one does not become ready (on a
 * loaded machine a thread may not start in time, and the node exits).
 */
const startNode = async (env: Record<string, string>): Promise<ServiceProcess> => {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startProcess(env)
    } catch (error) {
      if (attempt === 3) throw error
      step(`a node did not start (${String(error).split("\n")[0]}); again`)
    }
  }
}

/** Clears the AGVs' retained `connection` messages, so that nodes started next hear of them only when they connect again. */
const forgetAgvs = async (brokerUrl: string, ids: ReadonlyArray<string>) => {
  const client = await mqtt.connectAsync(brokerUrl, { clientId: "bench-cluster-clear" })
  await Promise.all(ids.map((id) => client.publishAsync(`${prefix}/${id}/connection`, "", { qos: 1, retain: true })))
  await client.endAsync()
}

/** The dashboards of each node: a child process each, `sessions` of them spread evenly, the probes too. */
const openDashboards = async (nodes: ReadonlyArray<ServiceProcess>) => {
  const screens: Array<Child<object, any>> = []
  for (let i = 0; i < nodes.length; i++) {
    const sessions = Math.floor(dashboards / nodes.length) + (i < dashboards % nodes.length ? 1 : 0)
    const wsUrl = `${nodes[i]!.url.replace(/^http/, "ws")}/ws`
    const child = spawnChild<object, any>(path.join(here, "lib/dashboards.ts"), [wsUrl, String(sessions), String(Math.ceil(probes / nodes.length)), "views"], false)
    await child.request({ op: "open" })
    screens.push(child)
  }
  return screens
}

/** CPU time (ms) of the service processes so far. */
const cpuOf = (nodes: ReadonlyArray<ServiceProcess>) => nodes.reduce((sum, node) => sum + cpuMsOfPid(node.child.pid!), 0)

const receivedBy = async (nodes: ReadonlyArray<ServiceProcess>) =>
  (await Promise.all(nodes.map((node) => metric(node, "fleetvisor_mqtt_messages_received_total")))).reduce((a, b) => a + b, 0)

/** Idle, then loaded: CPU rates, messages received, dashboard latency and gaps. */
const measure = async (nodes: ReadonlyArray<ServiceProcess>, screens: ReadonlyArray<Child<object, any>>, load: Child<object, any>, extraSeconds: number) => {
  const idleCpu0 = cpuOf(nodes)
  const idleAt0 = performance.now()
  await sleep(idleSeconds * 1000)
  const idleCpuMsPerSecond = (cpuOf(nodes) - idleCpu0) / ((performance.now() - idleAt0) / 1000)
  const running = load.request({ op: "run", seconds: warmupSeconds + loadedSeconds + extraSeconds })
  await sleep(warmupSeconds * 1000)
  await Promise.all(screens.map((screen) => screen.request({ op: "reset" })))
  const cpu0 = cpuOf(nodes)
  const perNode0 = nodes.map((node) => cpuMsOfPid(node.child.pid!))
  const received0 = await receivedBy(nodes)
  const at0 = performance.now()
  await sleep(loadedSeconds * 1000)
  const cpu1 = cpuOf(nodes)
  const perNode1 = nodes.map((node) => cpuMsOfPid(node.child.pid!))
  const received1 = await receivedBy(nodes)
  const elapsed = (performance.now() - at0) / 1000
  const views = await Promise.all(screens.map((screen) => screen.request({ op: "report" })))
  const messages = received1 - received0
  const loadedCpuMs = cpu1 - cpu0
  const perMessageUs = ((loadedCpuMs - idleCpuMsPerSecond * elapsed) * 1000) / messages
  // Latency: the probes' samples weighted alike; p99 of the worst screen, as the samples are not pooled.
  return {
    running,
    figures: {
      idleCpuPercentOfCore: round(idleCpuMsPerSecond / 10, 1),
      loadedCpuPercentOfCore: round(loadedCpuMs / elapsed / 10, 1),
      loadedCpuPercentOfCorePerNode: perNode1.map((ms, i) => round((ms - perNode0[i]!) / elapsed / 10, 1)),
      messagesReceived: messages,
      messagesPerSecond: Math.round(messages / elapsed),
      cpuPerMessageUs: round(perMessageUs, 2),
      dashboards: views.map(({ framesPerSecondPerSession, latencySamples, maxMs, p50Ms, p99Ms, sequenceGaps, sessions }) => ({
        sessions,
        framesPerSecondPerSession,
        latencySamples,
        p50Ms,
        p99Ms,
        maxMs,
        sequenceGaps
      }))
    }
  }
}

const worstP99 = (screens: ReadonlyArray<{ readonly p99Ms: number; readonly latencySamples: number }>) =>
  Math.max(...screens.filter((s) => s.latencySamples > 0).map((s) => s.p99Ms))

const main = async () => {
  const broker = await startMosquitto()
  const redis = await startRedis()
  const services: Array<ServiceProcess> = []
  const children: Array<Child<object, any>> = []
  const cleanup = async () => {
    for (const child of children) child.kill()
    await Promise.all(services.map((service) => service.dispose()))
    await redis.stop().catch(() => {})
    await broker.dispose()
  }
  const deadline = setTimeout(() => {
    process.stderr.write("cluster: gave up after the deadline\n")
    void cleanup().finally(() => process.exit(1))
  }, deadlineMs)
  try {
    step(`broker ${broker.url}, redis ${redis.url}; connecting ${robots} AGVs`)
    const load = spawnChild<object, any>(path.join(here, "lib/agvLoad.ts"), [String(broker.port), String(robots), String(hz), prefix, String(connections), "spread"], false)
    children.push(load)
    await load.request({ op: "connect" })
    const ids = Array.from({ length: robots }, (_, i) => `bench/agv-${String(i + 1).padStart(4, "0")}`)

    // 1. One node.
    step("one node")
    const single = await startNode(nodeEnv(broker.url))
    services.push(single)
    await until("every AGV's link on the single node", 120_000, () => eachOnce([single], ids))
    const singleScreens = await openDashboards([single])
    children.push(...singleScreens)
    const one = await measure([single], singleScreens, load, 0)
    await one.running
    for (const screen of singleScreens) {
      await screen.request({ op: "close" })
      screen.kill()
    }
    await single.dispose()
    services.splice(services.indexOf(single), 1)

    // 2. Three nodes, all live before the AGVs connect again, so that the robots spread over them
    // (placement is sticky: a node alone when it hears of the AGVs would take them all).
    step("three nodes")
    await load.request({ op: "stop" })
    await forgetAgvs(broker.url, ids)
    const cluster = await Promise.all(Array.from({ length: nodeCount }, (_, i) =>
      startNode({ ...nodeEnv(broker.url), REDIS_URL: redis.url, NODE_ID: `bench-${i + 1}`, CLUSTER_LEASE_TTL_MS: String(ttlMs) })))
    services.push(...cluster)
    await until("the three nodes live in each other's view", 60_000, async () => {
      const views = await Promise.all(cluster.map(async (node) => (await (await fetch(`${node.url}/admin/cluster`)).json()) as { live: ReadonlyArray<unknown> }))
      return views.every((view) => view.live.length === nodeCount)
    })
    await load.request({ op: "connect" })
    await until("every AGV's link on exactly one of three nodes", 120_000, () => eachOnce(cluster, ids))
    const owned = await Promise.all(cluster.map(agvLinks))
    const screens = await openDashboards(cluster)
    children.push(...screens)
    // Each node's dashboards measure the robots it does not run.
    await Promise.all(screens.map((screen, i) => screen.request({ op: "only", robots: ids.filter((id) => !owned[i]!.has(id)) })))
    const failoverBudget = ttlMs / 1000 + 10
    const stopsBudget = stopCount * 0.12 + 10
    const three = await measure(cluster, screens, load, failoverBudget + stopsBudget)

    // 3. kill -9 of the node running the most robots.
    const victim = owned.indexOf(owned.reduce((a, b) => (b.size > a.size ? b : a)))
    step(`kill -9 of ${cluster[victim]!.url} (${owned[victim]!.size} robots)`)
    const survivors = cluster.filter((_, i) => i !== victim)
    const survivorScreens = screens.filter((_, i) => i !== victim)
    const killedAt = now()
    cluster[victim]!.child.kill("SIGKILL")
    const [linksMs, onlineMs] = await Promise.all([
      until("every robot's link on a survivor", failoverBudget * 1000, () => eachOnce(survivors, ids)),
      until("every survivor's dashboards showing every robot online", failoverBudget * 1000, async () => {
        const answers = await Promise.all(survivorScreens.map((screen) => screen.request({ op: "online", since: killedAt })))
        return answers.every((answer: { online: ReadonlyArray<number> }) => answer.online.every((n) => n === robots))
      })
    ])

    // 4. Redis stopped: stops over the stop channel of a survivor, of AGVs the other one runs.
    step("stops with Redis stopped")
    await redis.stop()
    const [from, other] = survivors as [ServiceProcess, ServiceProcess]
    const targets = [...(await agvLinks(other))]
    const channel = (await (await fetch(`${from.url}/fleet/stop-channel`)).json()) as { port: number; protocol: string }
    const arrivals = await subscriberArrivals(broker.url, prefix)
    const socket = new WebSocket(`ws://127.0.0.1:${channel.port}/`, channel.protocol, { perMessageDeflate: false })
    await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject))
    const replies = new Map<number, (reply: { ok: boolean; writtenAt?: number }) => void>()
    socket.on("message", (data: Buffer) => {
      const reply = JSON.parse(data.toString())
      replies.get(reply.id)?.(reply)
      replies.delete(reply.id)
    })
    // Each AGV at most once a second (the channel coalesces), at most 16 a second (its limit is 20).
    const everyMs = Math.max(62, Math.ceil(1_100 / targets.length))
    const toBroker: Array<number> = []
    const leftThread: Array<number> = []
    let delivered = 0
    let publishedByThread = 0
    for (let i = 0; i < stopCount; i++) {
      const robot = targets[i % targets.length]!
      const sent = now()
      const reply = new Promise<{ ok: boolean; writtenAt?: number } | undefined>((resolve) => {
        replies.set(i, resolve)
        setTimeout(() => resolve(undefined), 2_000)
      })
      socket.send(JSON.stringify({ id: i, robot }))
      const [answer, arrived] = await Promise.all([reply, arrivals.after(robot, sent, 2_000)])
      if (arrived !== undefined) {
        delivered++
        toBroker.push(arrived - sent)
      }
      if (answer?.writtenAt !== undefined) {
        publishedByThread++
        leftThread.push(answer.writtenAt - sent)
      }
      await sleep(everyMs)
    }
    socket.close()
    await arrivals.close()

    const ratio = three.figures.cpuPerMessageUs / one.figures.cpuPerMessageUs
    const singleP99 = worstP99(one.figures.dashboards)
    const clusterP99 = worstP99(three.figures.dashboards)
    const gaps = three.figures.dashboards.reduce((n, d) => n + d.sequenceGaps, 0)
    const stopP99 = summary(toBroker).p99Ms
    const result = {
      benchmark: "cluster",
      quick,
      loadAverage: os.loadavg().map((l) => round(l)),
      cores: os.cpus().length,
      setup: { robots, hz, dashboards, probes, nodes: nodeCount, idleSeconds, loadedSeconds, warmupSeconds, leaseTtlMs: ttlMs, stops: stopCount, arms: 0 },
      oneNode: one.figures,
      threeNodes: { ...three.figures, robotsPerNode: owned.map((set) => set.size) },
      figures: {
        cpuPerMessage: {
          oneNodeUs: one.figures.cpuPerMessageUs,
          threeNodesUs: three.figures.cpuPerMessageUs,
          ratio: round(ratio, 3),
          target: "≤ 1.15 × one node",
          met: ratio <= 1.15
        },
        dashboardLatency: {
          oneNodeP99Ms: singleP99,
          threeNodesNotOwnerP99Ms: clusterP99,
          sequenceGaps: gaps,
          target: "p99 ≤ one node's + 10 ms, 0 sequence gaps",
          met: clusterP99 <= singleP99 + 10 && gaps === 0
        },
        failover: {
          killedRobots: owned[victim]!.size,
          everyLinkOnASurvivorMs: Math.round(linksMs),
          everyDashboardOnlineMs: Math.round(onlineMs),
          target: `≤ TTL + 2 s = ${ttlMs + 2_000} ms`,
          met: Math.max(linksMs, onlineMs) <= ttlMs + 2_000
        },
        stopChannelWithoutRedis: {
          sent: stopCount,
          delivered,
          publishedByChannelThread: publishedByThread,
          toBroker: summary(toBroker),
          leftThread: summary(leftThread),
          target: "p99 ≤ 10 ms to the broker, 100 % delivered",
          met: stopP99 <= 10 && delivered === stopCount
        }
      }
    }
    console.log(JSON.stringify(result, null, 2))
    await Promise.race([three.running, sleep(1_000)])
  } finally {
    clearTimeout(deadline)
    await cleanup()
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
