/**
 * A drain before maintenance: `POST /admin/cluster/drain` on the node that runs the robots hands
 * every one of them to the other node, which runs each robot's link soon after (the issue asks
 * within 1 s; the bound here is looser, for a loaded machine, and the time is printed), with no
 * robot running on both nodes at any sample on the way; the drained node takes no robot back.
 */
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import * as Scope from "effect/Scope"
import { describe, expect, it } from "vitest"
import * as RmiSimulator from "../../src/links/rmi/RmiSimulator.js"
import * as AgvSimulator from "../../src/links/vda5050/AgvSimulator.js"
import * as FleetProbe from "../links/vda5050/support/FleetProbe.js"
import { startProcess } from "../service/support/ServiceProcess.js"
import { clusterFixture, linksOf, sleep, until } from "./support/Cluster.js"

const root = fileURLToPath(new URL("../..", import.meta.url))

const cluster = clusterFixture()
const { running, scope } = cluster

describe("draining a node", () => {
  it("hands every robot it runs to the other node, none run twice on the way", async () => {
    const prefix = FleetProbe.uniquePrefix()
    const arm = await Effect.runPromise(RmiSimulator.make({ port: 0, timeScale: 5 }).pipe(Scope.extend(scope)))
    const env = {
      CANVAS: "off",
      FLEET_DEMO: "off",
      FLEET_RMI_ROBOTS: `arm-1=127.0.0.1:${arm.port}`,
      FLEET_MQTT_URL: FleetProbe.MOSQUITTO_URL,
      FLEET_MQTT_PREFIX: prefix,
      REDIS_URL: cluster.redis.url,
      CLUSTER_LEASE_TTL_MS: "2000"
    }
    // The first node alone takes every robot (placement is sticky); the second joins after.
    const first = await startProcess({ ...env, NODE_ID: "node-a" })
    running.push(first)
    const agvs = await Effect.runPromise(
      AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 4, stateIntervalMs: 1_000 }).pipe(Scope.extend(scope))
    )
    const expected = new Set([...agvs.agvs.map((agv) => `agv:${agv.manufacturer}/${agv.serialNumber}`), "robot:arm-1"])
    await until("every robot on the first node", 20_000, async () => {
      const links = await linksOf(first)
      return [...expected].every((key) => links.has(key))
    })
    const second = await startProcess({ ...env, NODE_ID: "node-b" })
    running.push(second)
    await until("both nodes live", 20_000, async () => {
      const view = (await (await fetch(`${second.url}/admin/cluster`)).json()) as { readonly live: ReadonlyArray<unknown> }
      return view.live.length === 2
    })
    expect(await linksOf(second)).toEqual(new Set())

    const drainedAt = Date.now()
    const answer = await fetch(`${first.url}/admin/cluster/drain`, { method: "POST" })
    expect(answer.status).toBe(200)
    const both: Array<string> = []
    let movedAfter: number | undefined
    while (Date.now() - drainedAt < 10_000) {
      const [onFirst, onSecond] = await Promise.all([linksOf(first), linksOf(second)])
      for (const key of onFirst) if (onSecond.has(key)) both.push(key)
      if (onFirst.size === 0 && [...expected].every((key) => onSecond.has(key))) {
        movedAfter = Date.now() - drainedAt
        break
      }
      await sleep(50)
    }
    expect(both).toEqual([])
    expect(movedAfter).toBeDefined()
    expect(movedAfter!).toBeLessThan(5_000)
    process.stdout.write(`[drain] every robot's link on the other node ${movedAfter} ms after the drain (${expected.size} robots)\n`)
    // The drained node announces it and takes nothing back.
    const view = (await (await fetch(`${first.url}/admin/cluster`)).json()) as {
      readonly live: ReadonlyArray<{ readonly id: string; readonly draining: boolean }>
      readonly owned: ReadonlyArray<string>
    }
    expect(view.owned).toEqual([])
    await sleep(500)
    expect(await linksOf(first)).toEqual(new Set())
    // `fleetvisor inspect` says which node runs what.
    const inspected = await new Promise<string>((resolve, reject) =>
      execFile("npx", ["--no-install", "fleetvisor", "inspect", "--url", second.url], { cwd: root, timeout: 30_000 }, (error, stdout) =>
        error === null ? resolve(stdout) : reject(error)))
    expect(inspected).toMatch(/^cluster: this node node-b, epoch \d+$/m)
    expect(inspected).toMatch(/^live nodes: node-a \(draining\), node-b$/m)
    expect(inspected).toContain(`runs ${expected.size} robots: `)
    // The arm's controller had a session from each node, one after the other.
    expect((await Effect.runPromise(arm.stats)).sessionsOpened).toBeGreaterThanOrEqual(2)
  }, 60_000)
})
