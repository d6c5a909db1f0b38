/**
 * The dashboard sends a stop to two nodes (issue #16), from the server's side and with the Node
 * client doing what the page does (`web/fleet/peerStop.ts`): two service processes, each with a
 * `CLUSTER_PUBLIC_URL`, a Redis of the test's own (TTL 3 s), the run's Mosquitto, 4 simulated
 * AGVs. Each node's `/fleet/nodes` names itself and the other with its public URL. A stop sent to
 * both nodes at once (the second marked `copyOf`) reaches the AGV from both, latches it once on
 * each node (one row, the cluster's copy in Redis is one of the two) and is audited on both, the
 * copy as such. The fleet page (Debian's chromium) does the same: its stop button sends the stop
 * to its node and a copy to the other. With Redis stopped, a stop sent to both nodes still
 * reaches the AGV from each; with Redis stopped and the page's own node killed, the page's stop
 * button still stops an AGV, through its copy.
 */
import Sqlite from "better-sqlite3"
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import * as Scope from "effect/Scope"
import * as path from "node:path"
import { chromium } from "playwright-core"
import { describe, expect, it } from "vitest"
import * as AgvSimulator from "../../src/links/vda5050/AgvSimulator.js"
import * as FleetProbe from "../links/vda5050/support/FleetProbe.js"
import { type ServiceProcess, startProcess } from "../service/support/ServiceProcess.js"
import { freePort } from "../support/Ports.js"
import { agvLinksOf, clusterFixture, until } from "./support/Cluster.js"
import { untilView, withClient } from "./support/Dashboards.js"

const cluster = clusterFixture()
const { running, scope } = cluster

/** What a node's SQLite holds of `robot`: its audited stops and its latch rows. */
const recordsOf = (service: ServiceProcess, robot: string) => {
  const db = new Sqlite(path.join(service.dataDir, "fleetvisor.db"), { readonly: true })
  try {
    return {
      stops: db.prepare("SELECT params, result FROM audit_log WHERE robot = ? AND command = 'EmergencyStop' ORDER BY id").all(robot) as Array<
        { readonly params: string; readonly result: string }
      >,
      latches: db.prepare("SELECT since, by FROM stop_latches WHERE robot = ?").all(robot) as Array<{ readonly since: number; readonly by: string }>
    }
  } finally {
    db.close()
  }
}

/** Sends `robot`'s stop as the dashboard does: to its own node, and at the same time a copy to the other. */
const stopOnBoth = (own: ServiceProcess, ownId: string, other: ServiceProcess, robot: string) =>
  Promise.all([
    withClient(own, (client) => client.rpc.FleetEmergencyStop({ robot })),
    withClient(other, (client) => client.rpc.FleetEmergencyStop({ robot, copyOf: ownId }))
  ])

describe("the dashboard's stop sent to two nodes", () => {
  it("is announced, reaches the AGV from both, latches once, is audited as a copy, and goes out without Redis", async () => {
    const prefix = FleetProbe.uniquePrefix()
    const sim = await Effect.runPromise(
      AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 4, stateIntervalMs: 500 }).pipe(Scope.extend(scope))
    )
    const ids = sim.agvs.map((agv) => `${agv.manufacturer}/${agv.serialNumber}`)
    const ports = [await freePort(), await freePort()]
    const names = ["node-a", "node-b"]
    const env = {
      CANVAS: "off",
      FLEET_DEMO: "off",
      FLEET_MQTT_URL: FleetProbe.MOSQUITTO_URL,
      FLEET_MQTT_PREFIX: prefix,
      REDIS_URL: cluster.redis.url,
      CLUSTER_LEASE_TTL_MS: "3000",
      // The page of one node opens its stop's copy on the other (another origin: another port).
      ALLOWED_ORIGINS: ports.map((port) => `http://127.0.0.1:${port}`).join(",")
    }
    const [a, b] = await Promise.all(names.map((name, i) =>
      startProcess({ ...env, NODE_ID: name, PORT: String(ports[i]), CLUSTER_PUBLIC_URL: `http://127.0.0.1:${ports[i]}/` })
    )) as [ServiceProcess, ServiceProcess]
    running.push(a, b)

    // Each node names itself and the other, with the URL it announced (the trailing `/` dropped).
    await until("each node announcing the other", 10_000, async () => {
      const answers = await Promise.all([a, b].map(async (node) => (await fetch(`${node.url}/fleet/nodes`)).json()))
      return answers[0].peers.length === 1 && answers[1].peers.length === 1
    })
    expect(await (await fetch(`${a.url}/fleet/nodes`)).json()).toEqual({ node: "node-a", peers: [{ id: "node-b", url: `http://127.0.0.1:${ports[1]}` }] })
    expect(await (await fetch(`${b.url}/fleet/nodes`)).json()).toEqual({ node: "node-b", peers: [{ id: "node-a", url: `http://127.0.0.1:${ports[0]}` }] })

    await until("every AGV's link on exactly one node", 30_000, async () => {
      const [onA, onB] = await Promise.all([a, b].map(agvLinksOf))
      return ids.every((id) => onA!.has(id) !== onB!.has(id))
    })
    await Promise.all([a, b].map((node) => untilView(node, (robots) => ids.every((id) => robots.get(id)?.connection === "online"))))

    // The dashboard's stop, on a and (a copy) on b: both reach the AGV.
    const robot = ids[0]!
    const sentAt = Date.now()
    const [first, copy] = await stopOnBoth(a, "node-a", b, robot)
    const answeredAt = Date.now()
    expect([first?.reached, copy?.reached]).toEqual([[robot], [robot]])
    await until("the AGV paused", 5_000, async () => (await Effect.runPromise(sim.agvs[0]!.state)).paused === true)
    // Latched once on each node (one row each, by the same user), both from this stop; the cluster's copy
    // (Redis, HSETNX) kept one of them. Each node keeps the latch it set itself: the two may differ by the ms between the copies.
    await until("a latch row on both nodes", 5_000, async () => recordsOf(a, robot).latches.length === 1 && recordsOf(b, robot).latches.length === 1)
    const [onA, onB] = [recordsOf(a, robot).latches[0]!, recordsOf(b, robot).latches[0]!]
    expect(onA.by).toBe(onB.by)
    for (const latch of [onA, onB]) expect(latch.since >= sentAt && latch.since <= answeredAt).toBe(true)
    const redis = new Redis(cluster.redis.url)
    const inRedis = JSON.parse((await redis.hget("{fleetvisor}:latches", robot))!) as { since: number; by: string }
    redis.disconnect()
    expect([onA.since, onB.since]).toContain(inRedis.since)
    // Both dashboards show one stop, the same: the owner's latch (a node shows the owner's view of a robot it does not run).
    const sinceOn = async (node: ServiceProcess) => {
      let since = NaN
      await untilView(node, (robots) => {
        const view = robots.get(robot)
        if (view?.safety !== "stopped" || view.stop === undefined) return false
        since = view.stop.since
        return true
      })
      return since
    }
    let shown: Array<number> = []
    await until("both dashboards showing the same stop", 10_000, async () => {
      shown = await Promise.all([sinceOn(a), sinceOn(b)])
      return shown[0] === shown[1]
    })
    expect(shown[0]).toBe(shown[1])
    expect([onA.since, onB.since]).toContain(shown[0])
    // Audited on each node: a's as the stop, b's as its copy.
    await until("both stops audited", 5_000, async () => recordsOf(a, robot).stops.length === 1 && recordsOf(b, robot).stops.length === 1)
    expect(recordsOf(a, robot).stops.map((row) => [JSON.parse(row.params), row.result])).toEqual([[{}, "ok"]])
    expect(recordsOf(b, robot).stops.map((row) => [JSON.parse(row.params), row.result])).toEqual([[{ copyOf: "node-a" }, "ok"]])

    // The page does the same: a stop pressed on a's dashboard goes to a, and its copy to b.
    const pressed = ids[2]!
    const chrome = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] })
    try {
      const page = await chrome.newPage({ viewport: { width: 1280, height: 800 } })
      await page.goto(`${a.url}/fleet/`)
      await page.waitForFunction(() => document.body.dataset.connection === "Open")
      await page.waitForFunction(() => (window as any).fleetvisorFleet.peer() === "node-b")
      const press = async (robot: string) => {
        await page.click(`#robots tr[data-id="${robot}"]`)
        await page.waitForSelector("#detail:not([hidden])")
        await page.click("#estop-one")
        await page.waitForFunction((robot) => document.querySelector("#message")?.textContent === `Stopped ${robot}`, robot)
        await page.waitForFunction(() => document.body.dataset.peerStop === "ok:node-b")
      }
      await press(pressed)
      expect(await page.evaluate(() => document.body.dataset.stopPath)).toBe("gateway")
      await until("the pressed stop audited on both nodes", 5_000, async () =>
        recordsOf(a, pressed).stops.length === 1 && recordsOf(b, pressed).stops.length === 1)
      expect(recordsOf(a, pressed).stops.map((row) => JSON.parse(row.params))).toEqual([{}])
      expect(recordsOf(b, pressed).stops.map((row) => JSON.parse(row.params))).toEqual([{ copyOf: "node-a" }])
      await until("the pressed AGV paused", 5_000, async () => (await Effect.runPromise(sim.agvs[2]!.state)).paused === true)

      // Redis stopped: each copy still goes out.
      await cluster.redis.stop()
      const other = ids[1]!
      const withoutRedis = await stopOnBoth(b, "node-b", a, other)
      expect(withoutRedis.map((report) => report?.reached)).toEqual([[other], [other]])
      await until("the second AGV paused", 5_000, async () => (await Effect.runPromise(sim.agvs[1]!.state)).paused === true)

      // Redis stopped and the page's own node killed: the page's stop still goes out, through its copy.
      a.child.kill("SIGKILL")
      await a.exited
      const last = ids[3]!
      const before = recordsOf(b, last).stops.length
      await press(last)
      await until("the last AGV paused", 5_000, async () => (await Effect.runPromise(sim.agvs[3]!.state)).paused === true)
      await until("the last stop audited on b", 5_000, async () => recordsOf(b, last).stops.length === before + 1)
      expect(JSON.parse(recordsOf(b, last).stops.at(-1)!.params)).toEqual({ copyOf: "node-a" })
    } finally {
      await chrome.close()
    }
    process.stdout.write(
      `[dashboard stops] one stop sent to two nodes: reached from both; latched on a at ${onA.since}, on b at ${onB.since} ` +
        `(${Math.abs(onA.since - onB.since)} ms apart), Redis kept ${inRedis.since}; audited on a ${JSON.stringify(recordsOf(a, robot).stops)}, on b ${JSON.stringify(recordsOf(b, robot).stops)}\n`
    )
  }, 90_000)
})
