/**
 * Two service processes share one fleet through a Redis of the test's own (`REDIS_URL`, lease TTL
 * 1 s): 6 simulated AGVs on the run's Mosquitto and 2 simulated arms (a controller takes one
 * client). Every robot's link runs on exactly one node (read from each node's actor tree, sampled
 * while both run), both nodes run some, and no arm controller ever refused a second client.
 * A dashboard on each node (`FleetSubscribe` over WebSocket) gets every robot of both nodes, the
 * other node's AGVs moving, in ticks that only grow, and so does each node's `/stream` snapshot; the latency from an AGV's visualization
 * timestamp to the dashboard's frame is printed for the robots the node runs and for the others.
 * Then one node is killed with SIGKILL: the other runs every robot's link within TTL + 2 s, and
 * its dashboard shows every robot online, each once.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { describe, expect, it } from "vitest"
import * as FleetvisorClient from "../../src/client/FleetvisorClient.js"
import type { RobotView } from "../../src/protocol/FleetRpcs.js"
import * as RmiSimulator from "../../src/links/rmi/RmiSimulator.js"
import * as AgvSimulator from "../../src/links/vda5050/AgvSimulator.js"
import * as FleetProbe from "../links/vda5050/support/FleetProbe.js"
import { type ServiceProcess, startProcess } from "../service/support/ServiceProcess.js"
import { clusterFixture, linksOf, sleep, until } from "./support/Cluster.js"

const ttl = 1_000

const cluster = clusterFixture()
const { running, scope } = cluster

/** Resolves once `service`'s fleet view lists every robot of `ids` with a live connection (a snapshot listing one twice fails). */
const online = (service: ServiceProcess, ids: ReadonlyArray<string>) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const client = yield* FleetvisorClient.make({
      url: `${service.url.replace(/^http/, "ws")}/ws`,
      wire: "msgpack",
      disableTracing: true
    })
    yield* client.ready
    yield* client.rpc.FleetSubscribe({}).pipe(
      Stream.scan(new Map<string, string | undefined>(), (robots, event) => {
        if (event._tag === "FleetSnapshot") {
          robots.clear()
          const listed = event.robots.map((robot) => robot.id)
          if (new Set(listed).size !== listed.length) throw new Error(`a robot listed twice: ${listed.join(", ")}`)
        }
        for (const robot of event.robots) robots.set(robot.id, robot.connection)
        return robots
      }),
      Stream.filter((robots) => ids.every((id) => robots.get(id) === "online")),
      Stream.runHead,
      Effect.timeout("10 seconds")
    )
  })).pipe(Effect.provide(NodeSocket.layerWebSocketConstructor)))

/** What one dashboard got: the robots it shows, its ticks, its snapshots' ids, each AGV's poses, and latencies. */
interface Dashboard {
  readonly robots: Map<string, RobotView>
  readonly ticks: Array<number>
  readonly snapshots: Array<ReadonlyArray<string>>
  readonly poses: Map<string, Set<string>>
  /** Arrival − the AGV's own timestamp (`updatedAt`), ms, for each new sample of an AGV. */
  readonly latencies: Array<{ readonly robot: string; readonly ms: number }>
  readonly fiber: Fiber.RuntimeFiber<void>
}

/** Subscribes a dashboard to `service`'s fleet in the background, until its fiber is interrupted or the node dies. */
const dashboard = (service: ServiceProcess): Dashboard => {
  const robots = new Map<string, RobotView>()
  const ticks: Array<number> = []
  const snapshots: Array<ReadonlyArray<string>> = []
  const poses = new Map<string, Set<string>>()
  const latencies: Array<{ readonly robot: string; readonly ms: number }> = []
  const fiber = Effect.runFork(Effect.scoped(Effect.gen(function*() {
    const client = yield* FleetvisorClient.make({ url: `${service.url.replace(/^http/, "ws")}/ws`, wire: "msgpack", disableTracing: true })
    yield* client.ready
    yield* client.rpc.FleetSubscribe({}).pipe(Stream.runForEach((event) =>
      Effect.sync(() => {
        const now = Date.now()
        ticks.push(event.tick)
        if (event._tag === "FleetSnapshot") snapshots.push(event.robots.map((robot) => robot.id))
        for (const robot of event.robots) {
          const before = robots.get(robot.id)
          robots.set(robot.id, robot)
          if (robot.kind !== "agv") continue
          let seen = poses.get(robot.id)
          if (seen === undefined) poses.set(robot.id, seen = new Set())
          seen.add(`${robot.pose.x},${robot.pose.y}`)
          const fresh = robot.updatedAt !== undefined && (before?.updatedAt === undefined || robot.updatedAt > before.updatedAt)
          if (event._tag === "FleetUpdate" && fresh) latencies.push({ robot: robot.id, ms: now - robot.updatedAt! })
        }
      })))
  })).pipe(Effect.provide(NodeSocket.layerWebSocketConstructor), Effect.ignore))
  return { robots, ticks, snapshots, poses, latencies, fiber }
}

/** The robots of the first event (the snapshot) of `service`'s `GET /stream`. */
const sseSnapshot = async (service: ServiceProcess): Promise<ReadonlyArray<RobotView>> => {
  const controller = new AbortController()
  const response = await fetch(`${service.url}/stream`, { signal: controller.signal })
  const reader = response.body!.getReader()
  let text = ""
  try {
    while (!text.includes("\n\n")) {
      const { done, value } = await reader.read()
      if (done) break
      text += new TextDecoder().decode(value)
    }
  } finally {
    controller.abort()
  }
  const data = text.split("\n\n")[0].split("\n").find((line) => line.startsWith("data: "))!
  return (JSON.parse(data.slice("data: ".length)) as { readonly robots: ReadonlyArray<RobotView> }).robots
}

/** The `q` quantile of `values`, ms. */
const quantile = (values: ReadonlyArray<number>, q: number) => {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN
}

describe("two nodes on one Redis", () => {
  it("run each robot's link on exactly one node, and the survivor runs them all within TTL + 2 s of a kill -9", async () => {
    const prefix = FleetProbe.uniquePrefix()
    const arms = await Effect.runPromise(
      Effect.all([RmiSimulator.make({ port: 0, timeScale: 5 }), RmiSimulator.make({ port: 0, timeScale: 5 })]).pipe(Scope.extend(scope))
    )
    const env = {
      CANVAS: "off",
      FLEET_DEMO: "off",
      FLEET_RMI_ROBOTS: arms.map((arm, i) => `arm-${i + 1}=127.0.0.1:${arm.port}`).join(","),
      FLEET_MQTT_URL: FleetProbe.MOSQUITTO_URL,
      FLEET_MQTT_PREFIX: prefix,
      REDIS_URL: cluster.redis.url,
      CLUSTER_LEASE_TTL_MS: String(ttl)
    }
    const nodes = await Promise.all([
      startProcess({ ...env, NODE_ID: "node-a" }),
      startProcess({ ...env, NODE_ID: "node-b" })
    ])
    running.push(...nodes)
    const [a, b] = nodes
    // Placement is sticky: robots that appear while one node is alone stay on it. The AGVs speak
    // once both nodes see each other, so rendezvous shares them out (the arms, configured, go to
    // whichever node was first).
    await until("both nodes live on both", 20_000, async () => {
      const views = await Promise.all(nodes.map(async (node) => {
        const response = await fetch(`${node.url}/admin/cluster`)
        return response.ok ? ((await response.json()) as { readonly live: ReadonlyArray<unknown> }).live.length : 0
      }))
      return views.every((live) => live === 2)
    })
    const agvs = await Effect.runPromise(
      AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 6, stateIntervalMs: 1_000 }).pipe(Scope.extend(scope))
    )
    const expected = new Set([
      ...agvs.agvs.map((agv) => `agv:${agv.manufacturer}/${agv.serialNumber}`),
      "robot:arm-1",
      "robot:arm-2"
    ])
    const boards = [dashboard(a), dashboard(b)]

    // Every robot runs somewhere, on one node only.
    await until("every robot's link on exactly one node", 20_000, async () => {
      const [onA, onB] = await Promise.all([linksOf(a), linksOf(b)])
      return [...expected].every((key) => onA.has(key) !== onB.has(key))
    })
    let samples = 0
    const both: Array<string> = []
    for (const end = Date.now() + 2_000; Date.now() < end; samples++) {
      const [onA, onB] = await Promise.all([linksOf(a), linksOf(b)])
      for (const key of onA) if (onB.has(key)) both.push(key)
      expect(new Set([...onA, ...onB])).toEqual(expected)
      await sleep(100)
    }
    expect(both).toEqual([])
    const [onA, onB] = await Promise.all([linksOf(a), linksOf(b)])
    expect(onA.size).toBeGreaterThan(0)
    expect(onB.size).toBeGreaterThan(0)
    // The admin API says the same, and the nodes see each other.
    const view = (await (await fetch(`${a.url}/admin/cluster`)).json()) as {
      readonly node: string
      readonly live: ReadonlyArray<{ readonly id: string }>
      readonly owned: ReadonlyArray<string>
      readonly link: { readonly address: string }
    }
    expect(view.node).toBe("node-a")
    expect(view.link.address).toMatch(/^127\.0\.0\.1:\d+$/)
    expect(view.live.map((member) => member.id)).toEqual(["node-a", "node-b"])
    expect(view.owned.map((robot) => (robot.includes("/") ? `agv:${robot}` : `robot:${robot}`)).sort()).toEqual([...onA].sort())

    // Each node's dashboard shows every robot of both nodes once; the other node's AGVs move on it.
    const ids = [...expected].map((key) => key.replace(/^(agv|robot):/, ""))
    const agvIds = agvs.agvs.map((agv) => `${agv.manufacturer}/${agv.serialNumber}`)
    await until("every robot on both dashboards, every AGV moving", 10_000, async () =>
      boards.every((board) =>
        ids.every((id) => board.robots.has(id)) && agvIds.every((id) => (board.poses.get(id)?.size ?? 0) >= 3)))
    // Latency over 3 s of steady running (10 visualizations/s per AGV).
    for (const board of boards) board.latencies.splice(0)
    await sleep(3_000)
    const runsOn = [onA, onB]
    const ownedLatency: Array<number> = []
    const remoteLatency: Array<number> = []
    boards.forEach((board, i) => {
      for (const snapshot of board.snapshots) expect(new Set(snapshot).size).toBe(snapshot.length)
      for (let t = 1; t < board.ticks.length; t++) expect(board.ticks[t]).toBeGreaterThan(board.ticks[t - 1])
      for (const { ms, robot } of board.latencies) (runsOn[i].has(`agv:${robot}`) ? ownedLatency : remoteLatency).push(ms)
    })
    expect(remoteLatency.length).toBeGreaterThan(0)
    // The event stream of each node starts with every robot, once.
    for (const service of nodes) expect((await sseSnapshot(service)).map((robot) => robot.id).sort()).toEqual([...ids].sort())
    // Each node's backplane counters are on /metrics.
    const backplane: Array<Record<string, number>> = []
    for (const service of nodes) {
      const text = await (await fetch(`${service.url}/metrics`)).text()
      const counters: Record<string, number> = {}
      for (const match of text.matchAll(/^fleetvisor_backplane_(\w+) (\S+)$/gm)) counters[match[1]] = Number(match[2])
      expect(counters.published_total).toBeGreaterThan(0)
      expect(counters.received_total).toBeGreaterThan(0)
      expect(counters.connected).toBe(1)
      backplane.push(counters)
      // The node link's, too (no remote request yet).
      expect(text).toMatch(/^fleetvisor_cluster_link_failures_total\{error="NodeDown"\} 0$/m)
      expect(text).toMatch(/^fleetvisor_cluster_link_requests_sent_total 0$/m)
    }
    // Each arm controller has one client, its owner's; none was refused a second one.
    await until("both arms connected", 10_000, async () =>
      (await Promise.all(arms.map((arm) => Effect.runPromise(arm.snapshot)))).every((s) => s.connected))
    for (const arm of arms) {
      const stats = await Effect.runPromise(arm.stats)
      expect([...stats.refusals.values()].reduce((sum, n) => sum + n, 0)).toBe(0)
    }

    // SIGKILL the node with more robots; the other must run every robot's link within TTL + 2 s.
    const [victim, survivor] = onA.size >= onB.size ? [a, b] : [b, a]
    const killedAt = Date.now()
    victim.child.kill("SIGKILL")
    await victim.exited
    await until("the survivor to run every robot's link", ttl + 2_000, async () => {
      const links = await linksOf(survivor)
      return [...expected].every((key) => links.has(key))
    })
    const failover = Date.now() - killedAt
    expect(failover).toBeLessThanOrEqual(ttl + 2_000)
    await until("both arms connected to the survivor", 10_000, async () =>
      (await Promise.all(arms.map((arm) => Effect.runPromise(arm.snapshot)))).every((s) => s.connected))
    // The survivor's dashboard, open since before the kill, shows every robot online again.
    const survivorBoard = boards[survivor === a ? 0 : 1]
    await until("the survivor's dashboard showing every robot online", 10_000, async () =>
      ids.every((id) => survivorBoard.robots.get(id)?.connection === "online"))
    const shown = Date.now() - killedAt
    // A new dashboard's snapshot lists every robot once, online.
    await online(survivor, ids)
    const listed = Date.now() - killedAt
    for (let t = 1; t < survivorBoard.ticks.length; t++) expect(survivorBoard.ticks[t]).toBeGreaterThan(survivorBoard.ticks[t - 1])
    await Promise.all(boards.map((board) => Effect.runPromise(Fiber.interrupt(board.fiber))))
    const figures = (values: ReadonlyArray<number>) =>
      `p50 ${quantile(values, 0.5)} ms, p99 ${quantile(values, 0.99)} ms (${values.length})`
    process.stdout.write(
      `[two nodes] ${samples} samples, 0 duplicates; AGV timestamp → dashboard frame: on the node that runs it ` +
        `${figures(ownedLatency)}, on the other ${figures(remoteLatency)}; after kill -9: every link on the survivor in ` +
        `${failover} ms, every robot online on the open dashboard in ${shown} ms, in a new one in ${listed} ms (TTL ${ttl} ms); ` +
        `backplane ${backplane.map((c) => JSON.stringify(c)).join(" ")}\n`
    )
  }, 90_000)
})
