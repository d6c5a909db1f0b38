/**
 * An AGV's emergency stop from any node (issue #16): two service processes share 6 simulated
 * AGVs through a Redis of the test's own (TTL 3 s) and the run's Mosquitto. A stop sent to the
 * node that does not run the AGV's link goes straight to the broker (a raw subscriber sees the
 * `instantActions`), the AGV's headerIds keep increasing across both nodes' messages, the AGV
 * shows latched on both nodes, and an order on its owner is refused until a Reset there (which
 * clears the latch on the other node too). With Redis stopped, a stop from the non-owner still
 * reaches the AGV.
 */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { describe, expect, it } from "vitest"
import * as AgvSimulator from "../../src/links/vda5050/AgvSimulator.js"
import * as FleetProbe from "../links/vda5050/support/FleetProbe.js"
import { type ServiceProcess, startProcess } from "../service/support/ServiceProcess.js"
import { type Heard, listenInstantActions } from "./support/InstantActions.js"
import { withClient } from "./support/Dashboards.js"
import { agvLinksOf, agvNodeEnv, clusterFixture, until, untilEachAgvOnOne } from "./support/Cluster.js"

const cluster = clusterFixture()
const { running, scope } = cluster

/** Resolves once `service`'s fleet view shows `robot` with `safety` (`stopped` while latched). */
const safetyOn = (service: ServiceProcess, robot: string, test: (safety: string | undefined) => boolean) =>
  withClient(service, (client) =>
    client.rpc.FleetSubscribe({}).pipe(
      Stream.scan(new Map<string, string | undefined>(), (robots, event) => {
        if (event._tag === "FleetSnapshot") robots.clear()
        for (const view of event.robots) robots.set(view.id, view.safety)
        return robots
      }),
      Stream.filter((robots) => robots.has(robot) && test(robots.get(robot))),
      Stream.runHead,
      Effect.timeout("10 seconds")
    ))

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

describe("an AGV's emergency stop from any node", () => {
  it("reaches the AGV from the node without its link, keeps headerIds increasing, latches on both nodes, also without Redis", async () => {
    const prefix = FleetProbe.uniquePrefix()
    const sim = await Effect.runPromise(
      AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 6, stateIntervalMs: 500 }).pipe(Scope.extend(scope))
    )
    const { close, heard } = await listenInstantActions(FleetProbe.MOSQUITTO_URL, prefix)
    try {
      const ids = sim.agvs.map((agv) => `${agv.manufacturer}/${agv.serialNumber}`)
      const env = agvNodeEnv(cluster.redis.url, prefix)
      const nodes = await Promise.all([startProcess({ ...env, NODE_ID: "node-a" }), startProcess({ ...env, NODE_ID: "node-b" })])
      running.push(...nodes)
      await untilEachAgvOnOne(nodes, ids, 20_000)
      // a runs `robot`'s link, b does not.
      const onFirst = await agvLinksOf(nodes[0]!)
      const robot = ids.find((id) => onFirst.has(id)) ?? ids[0]!
      const [a, b] = onFirst.has(robot) ? [nodes[0]!, nodes[1]!] : [nodes[1]!, nodes[0]!]
      const tagOfB = onFirst.has(robot) ? "node-b-" : "node-a-"
      const onA = await agvLinksOf(a)
      const other = ids.find((id) => id !== robot && onA.has(id)) ?? ids.find((id) => id !== robot)!
      const agv = sim.agvs[ids.indexOf(robot)]!
      // The owner's first message (its link's stateRequest) is on the topic before the stop.
      await until("the owner's stateRequest heard", 5_000, async () => heard.some((h) => h.robot === robot))

      // A stop sent to b, which does not run the AGV's link.
      const sentAt = performance.now()
      const report = await withClient(b, (client) => client.rpc.FleetEmergencyStop({ robot }))
      expect(report?.reached).toEqual([robot])
      await until("b's stop at the subscriber", 2_000, async () => heard.some((h) => h.robot === robot && h.cancelId?.includes(tagOfB) === true))
      const first = heard.find((h) => h.robot === robot && h.cancelId?.includes(tagOfB) === true)!
      expect(first.types).toEqual(["startPause", "cancelOrder"])
      // The AGV obeys: paused.
      await until("the AGV paused", 5_000, async () => (await Effect.runPromise(agv.state)).paused === true)
      // Latched on both nodes' views.
      await Promise.all([safetyOn(a, robot, (s) => s === "stopped"), safetyOn(b, robot, (s) => s === "stopped")])

      // Stop → instantActions at the subscriber, from the non-owner, sequentially.
      const latencies: Array<number> = []
      expect(first.at - sentAt).toBeLessThan(2_000)
      await withClient(b, (client) =>
        Effect.gen(function*() {
          for (let i = 0; i < 20; i++) {
            const count = heard.length
            const t0 = performance.now()
            yield* client.rpc.FleetEmergencyStop({ robot })
            const ofB = (h: Heard) => h.robot === robot && h.cancelId?.includes(tagOfB) === true
            yield* Effect.promise(() => until("a stop heard", 2_000, async () => heard.slice(count).some(ofB)))
            latencies.push(heard.slice(count).find(ofB)!.at - t0)
          }
        }))

      // The owner: its next message comes after b's; an order is refused until a Reset.
      const orderRefused = await withClient(a, (client) =>
        Effect.gen(function*() {
          yield* client.rpc.FleetAcquire({ robot })
          yield* client.rpc.FleetCommand({ robot, command: { _tag: "StateRequest" } })
          const order = yield* Effect.flip(client.rpc.FleetCommand({
            robot,
            command: { _tag: "SendOrder", nodes: [{ nodeId: "n1", x: 1, y: 1, mapId: sim.map.mapId }] }
          }))
          // The AGV confirms the stop (paused, its order cancelled) within a few state intervals.
          yield* Effect.retry(client.rpc.FleetCommand({ robot, command: { _tag: "Reset" } }), {
            times: 40,
            schedule: Schedule.spaced("250 millis")
          })
          return order
        }))
      expect(orderRefused._tag).toBe("RobotStopped")
      // The Reset on a clears the latch on b too (through Redis).
      await safetyOn(b, robot, (s) => s !== "stopped")
      const sequence = heard.filter((h) => h.robot === robot)
      for (let i = 1; i < sequence.length; i++) expect(sequence[i]!.headerId).toBeGreaterThan(sequence[i - 1]!.headerId)
      const lastOfB = sequence.map((h) => h.cancelId?.includes(tagOfB) === true).lastIndexOf(true)
      expect(sequence.slice(lastOfB + 1).some((h) => h.types.includes("stateRequest"))).toBe(true)

      // Redis stopped: a stop from b still reaches the AGV, whoever runs its link now.
      await cluster.redis.stop()
      const count = heard.length
      const withoutRedis = await withClient(b, (client) => client.rpc.FleetEmergencyStop({ robot: other }))
      await until("the stop without Redis at the subscriber", 2_000, async () =>
        heard.slice(count).some((h) => h.robot === other && h.types.includes("startPause")))
      expect(withoutRedis?.reached).toEqual([other])
      await safetyOn(b, other, (s) => s === "stopped")

      const sorted = [...latencies].sort((x, y) => x - y)
      process.stdout.write(
        `[cluster stops] non-owner stop → instantActions at a subscriber (RPC on an open session, ${sorted.length} sequential stops): ` +
          `p50 ${percentile(sorted, 50)!.toFixed(1)} ms, p99 ${percentile(sorted, 99)!.toFixed(1)} ms; ` +
          `headerIds ${sequence.map((h) => h.headerId).join(",")}\n`
      )
    } finally {
      await close()
    }
  }, 60_000)
})
