/**
 * A stop sent to a node that does not run the AGV (issue #16, a known doubt): does that node's
 * view show `STOP-UNCONFIRMED` once the confirmation deadline has passed, although the AGV
 * confirmed the stop to its owner? Two service processes, a Redis of the test's own (TTL 3 s),
 * the run's Mosquitto, 4 simulated AGVs. The stop goes to node a, which does not run the AGV; the
 * test waits past the deadline (`stopConfirmDeadlineMs`) and reads both nodes' views: both show the
 * AGV stopped and its stop confirmed, and no view either node sent since the stop ever carried the
 * alarm.
 */
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import { describe, expect, it } from "vitest"
import { stopConfirmDeadlineMs } from "../../src/apps/fleet/FleetState.js"
import type { RobotView } from "../../src/protocol/FleetRpcs.js"
import * as AgvSimulator from "../../src/links/vda5050/AgvSimulator.js"
import * as FleetProbe from "../links/vda5050/support/FleetProbe.js"
import { startProcess } from "../service/support/ServiceProcess.js"
import { agvLinksOf, agvNodeEnv, clusterFixture, sleep, until, untilEachAgvOnOne } from "./support/Cluster.js"
import { openDashboard, untilView, withClient } from "./support/Dashboards.js"

const cluster = clusterFixture()
const { running, scope } = cluster

const unconfirmed = (view: RobotView | undefined) => view?.alarms.some((alarm) => alarm.code === "STOP-UNCONFIRMED") === true

describe("a stop sent to a node that does not run the AGV", () => {
  it("shows the owner's confirmation there too, never STOP-UNCONFIRMED, past the deadline", async () => {
    const prefix = FleetProbe.uniquePrefix()
    const sim = await Effect.runPromise(
      AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 4, stateIntervalMs: 500 }).pipe(Scope.extend(scope))
    )
    const ids = sim.agvs.map((agv) => `${agv.manufacturer}/${agv.serialNumber}`)
    const env = agvNodeEnv(cluster.redis.url, prefix)
    const nodes = await Promise.all([startProcess({ ...env, NODE_ID: "node-a" }), startProcess({ ...env, NODE_ID: "node-b" })])
    running.push(...nodes)
    await untilEachAgvOnOne(nodes, ids, 30_000)
    // b runs `robot`'s link, a does not (placement is sticky: the first node up may run every AGV).
    const robot = ids[0]!
    const [a, b] = (await agvLinksOf(nodes[0]!)).has(robot) ? [nodes[1]!, nodes[0]!] : [nodes[0]!, nodes[1]!]
    const agv = sim.agvs[0]!
    await untilView(a, (robots) => robots.get(robot)?.connection === "online")
    const boards = [openDashboard(a, "a (stopper)"), openDashboard(b, "b (owner)")]
    try {
      await until("both dashboards showing the AGV", 10_000, async () => boards.every((board) => board.robots.has(robot)))
      const seenUnconfirmed = new Set<string>()
      const watching = setInterval(() => {
        for (const board of boards) if (unconfirmed(board.robots.get(robot))) seenUnconfirmed.add(board.node)
      }, 50)

      const report = await withClient(a, (client) => client.rpc.FleetEmergencyStop({ robot }))
      expect(report?.reached).toEqual([robot])
      const stoppedAt = Date.now()
      await until("the AGV paused", 5_000, async () => (await Effect.runPromise(agv.state)).paused === true)
      await until("both views showing the stop confirmed", 10_000, async () =>
        boards.every((board) => board.robots.get(robot)?.stop?.confirmed === true))
      // Past the deadline by two of a's view ticks and a margin for the loaded machine.
      await sleep(stoppedAt + stopConfirmDeadlineMs + 2_000 - Date.now())
      clearInterval(watching)

      for (const board of boards) {
        const view = board.robots.get(robot)
        expect([board.node, view?.safety, view?.stop?.confirmed, unconfirmed(view)]).toEqual([board.node, "stopped", true, false])
      }
      expect([...seenUnconfirmed]).toEqual([])
      // A dashboard opened now on either node: the same.
      for (const node of [a, b]) {
        await untilView(node, (robots) => robots.get(robot)?.stop?.confirmed === true && !unconfirmed(robots.get(robot)))
      }
      // a still does not run the AGV: what it showed was the owner's word.
      expect((await agvLinksOf(a)).has(robot)).toBe(false)
      expect(boards.flatMap((board) => board.problems)).toEqual([])
    } finally {
      await Promise.all(boards.map((board) => board.close()))
    }
  }, 90_000)
})
