/**
 * The stop channel of a node stops an AGV another node runs (issue #16: "a stop over the stop
 * channel from any node … 100 % delivered with Redis stopped"): two service processes with their
 * stop channels share 4 simulated AGVs through a Redis of the test's own and the run's Mosquitto.
 * With Redis stopped, a stop sent on the channel of the node that does not run the AGV's link is
 * published by that channel's own thread (its answer says when it wrote it), reaches a plain
 * subscriber of the AGV's `instantActions` with a headerId above every one the owner used, and
 * pauses the AGV.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import { describe, expect, it } from "vitest"
import WebSocket from "ws"
import * as FleetvisorClient from "../../src/client/FleetvisorClient.js"
import * as AgvSimulator from "../../src/links/vda5050/AgvSimulator.js"
import * as FleetProbe from "../links/vda5050/support/FleetProbe.js"
import { type ServiceProcess, startProcess } from "../service/support/ServiceProcess.js"
import { agvLinksOf, agvNodeEnv, clusterFixture, until, untilEachAgvOnOne } from "./support/Cluster.js"
import { listenInstantActions } from "./support/InstantActions.js"

const cluster = clusterFixture()
const { running, scope } = cluster

/** Sends one stop of `robot` on `service`'s stop channel; resolves with the channel's answer. */
const stopOverChannel = async (service: ServiceProcess, robot: string): Promise<Record<string, unknown>> => {
  const { port, protocol } = (await (await fetch(`${service.url}/fleet/stop-channel`)).json()) as { port: number; protocol: string }
  const socket = new WebSocket(`ws://127.0.0.1:${port}`, protocol)
  await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject))
  try {
    const answer = new Promise<Record<string, unknown>>((resolve) => socket.once("message", (data) => resolve(JSON.parse(data.toString()))))
    socket.send(JSON.stringify({ id: 1, robot }))
    return await answer
  } finally {
    socket.close()
  }
}

describe("the stop channel across nodes", () => {
  it("stops an AGV another node runs from its own thread, above the owner's headerIds, with Redis stopped", async () => {
    const prefix = FleetProbe.uniquePrefix()
    const sim = await Effect.runPromise(
      AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 4, stateIntervalMs: 500 }).pipe(Scope.extend(scope))
    )
    const { close, heard } = await listenInstantActions(FleetProbe.MOSQUITTO_URL, prefix)
    try {
      const ids = sim.agvs.map((agv) => `${agv.manufacturer}/${agv.serialNumber}`)
      const env = agvNodeEnv(cluster.redis.url, prefix, { FLEET_STOP_PORT: "0" })
      const nodes = await Promise.all([startProcess({ ...env, NODE_ID: "node-a" }), startProcess({ ...env, NODE_ID: "node-b" })])
      running.push(...nodes)
      await untilEachAgvOnOne(nodes, ids, 20_000)
      // `owner` runs `robot`'s link, `other` does not.
      const onFirst = await agvLinksOf(nodes[0]!)
      const robot = ids.find((id) => onFirst.has(id)) ?? ids[0]!
      const [owner, other] = onFirst.has(robot) ? [nodes[0]!, nodes[1]!] : [nodes[1]!, nodes[0]!]
      // The owner's link asked for a state, and five more: its ids 0–5 are on the AGV's topic.
      await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const client = yield* FleetvisorClient.make({ url: `${owner.url.replace(/^http/, "ws")}/ws`, wire: "msgpack", disableTracing: true })
        yield* client.ready
        yield* client.rpc.FleetAcquire({ robot })
        for (let i = 0; i < 5; i++) yield* client.rpc.FleetCommand({ robot, command: { _tag: "StateRequest" } })
      })).pipe(Effect.provide(NodeSocket.layerWebSocketConstructor)))
      await until("the owner's requests heard", 5_000, async () => heard.filter((h) => h.robot === robot).length >= 6)
      const ownersLatest = Math.max(...heard.filter((h) => h.robot === robot).map((h) => h.headerId))

      await cluster.redis.stop()
      const count = heard.length
      const answer = await stopOverChannel(other, robot)
      // Published by the channel's thread (writtenAt), not handed to the main thread.
      expect(answer).toMatchObject({ ok: true, reached: [robot], latchedOnly: [] })
      expect(typeof answer.writtenAt).toBe("number")
      await until("the stop at the subscriber", 2_000, async () => heard.slice(count).some((h) => h.robot === robot && h.cancelId !== undefined))
      const stop = heard.slice(count).find((h) => h.robot === robot && h.cancelId !== undefined)!
      expect(stop.types).toEqual(["startPause", "cancelOrder"])
      expect(stop.headerId).toBeGreaterThan(ownersLatest)
      const agv = sim.agvs[ids.indexOf(robot)]!
      await until("the AGV paused", 5_000, async () => (await Effect.runPromise(agv.state)).paused === true)
      // Still running on its owner, which adopted the stop: its next ids come after the channel's.
      expect((await agvLinksOf(owner)).has(robot)).toBe(true)
      const stats = (await (await fetch(`${other.url}/metrics`)).text())
      process.stdout.write(
        `[cluster stop channel] owner's latest headerId ${ownersLatest}, the other node's channel stop ${stop.headerId}; ` +
          `${stats.split("\n").filter((line) => line.startsWith("fleetvisor_stop_channel_published")).join(" ")}\n`
      )
    } finally {
      await close()
    }
  }, 60_000)
})
