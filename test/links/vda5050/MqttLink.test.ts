import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Queue from "effect/Queue"
import * as Mqtt from "mqtt"
import type { ActorRef } from "../../../src/actors/ActorRef.js"
import { PubSub, Registry, TestKit } from "../../../src/actors/index.js"
import * as LinkEvent from "../../../src/links/LinkEvent.js"
import * as AgvLink from "../../../src/links/vda5050/AgvLink.js"
import * as AgvSimulator from "../../../src/links/vda5050/AgvSimulator.js"
import * as IngestThread from "../../../src/links/vda5050/IngestThread.js"
import * as MqttLink from "../../../src/links/vda5050/MqttLink.js"
import * as OfficialSchemas from "../../../src/links/vda5050/OfficialSchemas.js"
import * as Order from "../../../src/links/vda5050/Order.js"
import * as SimMap from "../../../src/links/vda5050/SimMap.js"
import { DynamicSupervisor } from "../../../src/supervisors/index.js"
import { eventually } from "../rmi/eventually.js"
import * as FleetProbe from "./support/FleetProbe.js"
import { next } from "../support/nextEvent.js"
import * as AgvLinks from "./support/AgvLinks.js"
import { fixturesDir } from "./support/officialSchemas.js"

/**
 * The VDA 5050 half of the fleet on the real Mosquitto, under a prefix of its own: a links
 * supervisor, the broker connection that discovers AGVs into it, and a probe (a second master
 * control) that sees every message on the prefix, ours included.
 */
const setup = (
  agvOptions: Partial<AgvLink.AgvLinkOptions> = {},
  ingestThread = false,
  officialSchemas?: OfficialSchemas.OfficialSchemas
) =>
  Effect.gen(function*() {
    const prefix = FleetProbe.uniquePrefix()
    const hub = yield* PubSub.make()
    const events = yield* PubSub.subscribeQueue<LinkEvent.LinkEvent>(hub, LinkEvent.FleetTopic, { bufferSize: 100_000 })
    const registry = yield* Registry.make<string, any>({ keys: "unique" })
    const system = yield* TestKit.system()
    const probe = yield* FleetProbe.make(FleetProbe.MOSQUITTO_URL, prefix)
    const { links, mqtt } = yield* AgvLinks.start({
      system,
      hub,
      registry,
      url: FleetProbe.MOSQUITTO_URL,
      prefix,
      agvOptions,
      ingestThread,
      officialSchemas
    })
    // With the ingest thread, connected waits for the thread to be bundled, started (its schemas compiled) and subscribed:
    // seconds when other tests and benchmarks share the two cores.
    yield* eventually(mqtt.ask(MqttLink.getStats), (s) => s.connected, ingestThread ? "20 seconds" : "5 seconds")
    const agvRef = (serial: string) =>
      Effect.map(
        eventually(Registry.lookup(registry, `agv:fleetvisor/${serial}`), (entries) => entries.length === 1),
        (entries) => entries[0].ref as ActorRef<AgvLink.AgvLinkMessage>
      )
    return { prefix, hub, events, registry, system, probe, links, mqtt, agvRef }
  })

describe("MqttLink and AgvLink on Mosquitto", () => {
  it.scopedLive("discovers each AGV on its first message and starts its link under links", () =>
    Effect.gen(function*() {
      const { agvRef, events, prefix, system } = yield* setup()
      yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 2, visualizationHz: 10 })
      yield* next(events, "LinkUp", (e) => e.robot === "fleetvisor/sim-0001")
      yield* next(events, "AgvTelemetry", (e) => e.robot === "fleetvisor/sim-0002" && e.state !== undefined)
      const info = yield* Effect.flatMap(agvRef("sim-0001"), (ref) => ref.ask(AgvLink.getInfo))
      expect(info).toMatchObject({ robot: "fleetvisor/sim-0001", connection: "ONLINE" })
      expect(info.state?.agvPosition?.mapId).toBeDefined()
      const tree = yield* system.render
      expect(tree).toContain("links (dynamic, 2/∞)")
      expect(tree).toContain("agv:fleetvisor/sim-0001 running")
      expect(tree).toContain("agv:fleetvisor/sim-0002 running")
    }))

  it.scopedLive("handles the last will: disconnected at once, the link let go after the grace period", () =>
    Effect.gen(function*() {
      const { agvRef, events, prefix, system } = yield* setup({ grace: "1200 millis" })
      const sim = yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 2, visualizationHz: 5 })
      const [first, second] = sim.agvs
      yield* agvRef("sim-0001")
      yield* agvRef("sim-0002")

      yield* first.kill
      const down = yield* next(events, "LinkDown", (e) => e.robot === "fleetvisor/sim-0001")
      expect(down).toMatchObject({ status: "disconnected", reason: "CONNECTIONBROKEN" })
      yield* TestKit.awaitTree(system, `
        links (dynamic, 1/∞)
        └─ agv:fleetvisor/sim-0002 running mailbox=0 restarts=0
        mqtt running mailbox=0 restarts=0`)

      yield* second.goOffline
      expect(yield* next(events, "LinkDown", (e) => e.robot === "fleetvisor/sim-0002")).toMatchObject({
        status: "offline",
        reason: "OFFLINE"
      })
      yield* second.reconnect
      yield* next(events, "LinkUp", (e) => e.robot === "fleetvisor/sim-0002")
      // Past the grace period it was given while OFFLINE, the link is still there.
      yield* Effect.sleep("1500 millis")
      expect(yield* system.render).toContain("agv:fleetvisor/sim-0002 running")
    }))

  it.scopedLive("counts and logs invalid messages, and the link keeps working", () =>
    Effect.gen(function*() {
      const { agvRef, events, mqtt, prefix } = yield* setup()
      const sim = yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 1, visualizationHz: 0 })
      const agv = sim.agvs[0]
      const link = yield* agvRef("sim-0001")
      yield* agv.publishRaw("state", "{ not json")
      yield* agv.publishRaw("state", JSON.stringify({ headerId: 1, orderId: 7 }))
      yield* agv.publishRaw("visualization", JSON.stringify({ agvPosition: { x: "far" } }))
      const stats = yield* eventually(mqtt.ask(MqttLink.getStats), (s) => s.invalid >= 3)
      expect(stats.invalidByTopic).toEqual({ state: 2, visualization: 1 })
      expect(stats.lastInvalid?.reason).toMatch(/^Visualization: agvPosition\.x: Expected number, actual "far"/)
      expect(link.isAlive()).toBe(true)
      const before = (yield* link.ask(AgvLink.getInfo)).received
      yield* Queue.takeAll(events)
      yield* link.ask(AgvLink.instantAction("stateRequest"))
      yield* next(events, "AgvTelemetry", (e) => e.state !== undefined)
      expect((yield* link.ask(AgvLink.getInfo)).received).toBeGreaterThan(before)
    }))

  it.scopedLive("sends instant actions and orders with a headerId per topic; emergency stop pauses and cancels", () =>
    Effect.gen(function*() {
      const { agvRef, probe, prefix } = yield* setup()
      const sim = yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 1, visualizationHz: 0 })
      const agv = sim.agvs[0]
      const link = yield* agvRef("sim-0001")

      yield* link.ask(AgvLink.instantAction("startPause"))
      yield* probe.waitFor(agv.serialNumber, "state", (s) => s.paused === true)
      yield* link.ask(AgvLink.instantAction("stopPause"))
      yield* probe.waitFor(agv.serialNumber, "state", (s) => s.paused === false)

      const [a, b] = sim.map.nodes
      const body = Order.fromPath({
        orderId: "order-1",
        path: [a, b].map((node) => ({ nodeId: node.nodeId, nodePosition: SimMap.nodePosition(sim.map, node) }))
      })
      yield* link.ask(AgvLink.order({ orderId: body.orderId, nodes: body.nodes, edges: body.edges }))
      yield* probe.waitFor(agv.serialNumber, "state", (s) => s.orderId === "order-1")

      yield* link.ask(AgvLink.emergencyStop, { urgent: true })
      const stopped = yield* probe.waitFor(agv.serialNumber, "instantActions", (m) => m.actions.length === 2)
      expect(stopped.message.actions.map((x) => x.actionType)).toEqual(["startPause", "cancelOrder"])
      yield* probe.waitFor(agv.serialNumber, "state", (s) => s.paused === true && s.orderId === "order-1" && s.nodeStates.length === 0)

      const ours = probe.log.filter((r) => r.topic.topic === "instantActions").map((r) => (JSON.parse(r.raw) as { headerId: number }).headerId)
      expect(ours).toEqual(ours.map((_, i) => i))
      const orders = probe.log.filter((r) => r.topic.topic === "order").map((r) => JSON.parse(r.raw) as { headerId: number; orderUpdateId: number })
      expect(orders).toMatchObject([{ headerId: 0, orderUpdateId: 0 }])
    }))

  it.scopedLive("an AGV silent past its deadline is shown disconnected with an alarm and asked for a state; its link is never restarted", () =>
    Effect.gen(function*() {
      const { events, links, prefix, probe } = yield* setup({ silenceDeadline: "400 millis" })
      yield* AgvSimulator.make({
        brokerUrl: FleetProbe.MOSQUITTO_URL,
        prefix,
        count: 1,
        visualizationHz: 0,
        patrol: false,
        stateIntervalMs: 60_000
      })
      yield* next(events, "AgvTelemetry", (e) => e.state !== undefined)
      const asked = probe.log.filter((r) => r.topic.topic === "instantActions").length
      const alarm = yield* next(events, "Alarm", (e) => e.code === "LINK-SILENT")
      expect(alarm).toMatchObject({ robot: "fleetvisor/sim-0001", level: "warning" })
      expect(yield* next(events, "LinkDown")).toMatchObject({ status: "disconnected", reason: "silent" })
      // Asked for a state at once: the AGV answers, and is up again (which clears the alarm in the fleet's view).
      yield* next(events, "AgvTelemetry", (e) => e.state !== undefined)
      yield* next(events, "LinkUp")
      const requests = probe.log.slice(asked).filter((r) => r.topic.topic === "instantActions")
      expect(requests.map((r) => (JSON.parse(r.raw) as { actions: Array<{ actionType: string }> }).actions[0].actionType)).toContain("stateRequest")
      const [child] = yield* DynamicSupervisor.whichChildren(links)
      expect(child.restarts).toBe(0)
    }))

  it.scopedLive("an AGV that stays silent is asked again with backoff, then let go after its grace period", () =>
    Effect.gen(function*() {
      const { events, links, prefix, probe, system } = yield* setup({ silenceDeadline: "300 millis", grace: "2500 millis" })
      const raw = yield* Effect.acquireRelease(
        Effect.promise(() => Mqtt.connectAsync(FleetProbe.MOSQUITTO_URL)),
        (client) => Effect.promise(() => client.endAsync())
      )
      const header = (headerId: number) => ({
        headerId,
        timestamp: new Date().toISOString(),
        version: "2.0.0",
        manufacturer: "fleetvisor",
        serialNumber: "mute-1"
      })
      const topic = `${prefix}/fleetvisor/mute-1`
      // Says ONLINE, one visualization, then nothing: it answers no stateRequest.
      yield* Effect.promise(() => raw.publishAsync(`${topic}/connection`, JSON.stringify({ ...header(0), connectionState: "ONLINE" })))
      yield* Effect.promise(() =>
        raw.publishAsync(`${topic}/visualization`, JSON.stringify({ ...header(0), agvPosition: { x: 1, y: 2, theta: 0, mapId: "m", positionInitialized: true } }))
      )
      yield* next(events, "LinkUp", (e) => e.robot === "fleetvisor/mute-1")
      const silentAt = Date.now()
      yield* next(events, "Alarm", (e) => e.code === "LINK-SILENT")
      expect(yield* next(events, "LinkDown")).toMatchObject({ status: "disconnected", reason: "silent" })
      yield* TestKit.awaitUntil(Effect.map(Effect.orDie(DynamicSupervisor.whichChildren(links)), (children) => children.length === 0), {
        timeoutMillis: 6_000,
        waitedFor: "the silent AGV's link to be let go",
        describe: system.render
      })
      const lifetime = Date.now() - silentAt
      expect(lifetime).toBeGreaterThanOrEqual(2_500)
      // At once, after 1 s, after 2 s more: three stateRequests in the 2.5 s of grace, and no restart on the way.
      const requests = probe.log.filter((r) => r.topic.serialNumber === "mute-1" && r.topic.topic === "instantActions")
      expect(requests.length).toBeGreaterThanOrEqual(3)
      expect(requests.length).toBeLessThanOrEqual(5)
      yield* Effect.promise(() => raw.publishAsync(`${topic}/connection`, "", { retain: true }))
    }))
})

describe("MqttLink with its ingest thread", () => {
  it.scopedLive("discovers AGVs, counts invalid messages by topic, and keeps each AGV's messages in order", () =>
    Effect.gen(function*() {
      const { agvRef, mqtt, prefix, system } = yield* setup({}, true)
      const sim = yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 2, visualizationHz: 0 })
      const link = yield* agvRef("sim-0001")
      yield* agvRef("sim-0002")
      expect(yield* system.render).toContain("links (dynamic, 2/∞)")

      const agv = sim.agvs[0]
      yield* agv.publishRaw("state", "{ not json")
      yield* agv.publishRaw("visualization", JSON.stringify({ agvPosition: { x: "far" } }))
      const raw = yield* Effect.acquireRelease(
        Effect.promise(() => Mqtt.connectAsync(FleetProbe.MOSQUITTO_URL)),
        (client) => Effect.promise(() => client.endAsync())
      )
      yield* Effect.promise(() => raw.publishAsync(`${prefix}/fleetvisor/sim-0001/nonsense`, "{}"))
      const stats = yield* eventually(mqtt.ask(MqttLink.getStats), (s) => s.invalid >= 3)
      expect(stats.invalidByTopic).toEqual({ state: 1, visualization: 1, topic: 1 })
      expect(stats.lastInvalid?.topic).toBe(`${prefix}/fleetvisor/sim-0001/nonsense`)
      expect(stats.ingestDropped).toBe(0)

      // A burst of 500 visualizations: the link ends on the last one, having taken every one.
      const before = (yield* link.ask(AgvLink.getInfo)).received
      for (let headerId = 1; headerId <= 500; headerId++) {
        yield* agv.publishRaw("visualization", JSON.stringify({ headerId, agvPosition: { x: headerId, y: 0, theta: 0, mapId: "m", positionInitialized: true } }))
      }
      const info = yield* eventually(link.ask(AgvLink.getInfo), (i) => i.visualization?.headerId === 500)
      expect(info.received - before).toBeGreaterThanOrEqual(500)
    }))
})

describe("MqttLink with the official schemas", () => {
  const schemas = Either.getOrThrowWith(OfficialSchemas.load(fixturesDir), (error) => new Error(error.message))

  for (const ingestThread of [false, true]) {
    it.scopedLive(`passes the simulator's messages and refuses what the schemas refuse (${ingestThread ? "on the ingest thread" : "inline"})`, () =>
      Effect.gen(function*() {
        const { agvRef, events, mqtt, prefix } = yield* setup({}, ingestThread, schemas)
        const sim = yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 1, visualizationHz: 10 })
        const link = yield* agvRef("sim-0001")
        yield* next(events, "AgvTelemetry", (e) => e.robot === "fleetvisor/sim-0001" && e.state !== undefined)
        yield* next(events, "AgvTelemetry", (e) => e.robot === "fleetvisor/sim-0001" && e.visualization !== undefined)
        expect((yield* mqtt.ask(MqttLink.getStats)).invalid).toBe(0)

        yield* sim.agvs[0].publishRaw("visualization", JSON.stringify({ headerId: 1, timestamp: "yesterday" }))
        const stats = yield* eventually(mqtt.ask(MqttLink.getStats), (s) => s.invalid >= 1)
        expect(stats.invalidByTopic).toEqual({ visualization: 1 })
        expect(stats.lastInvalid?.reason).toBe(`visualization 2.1.0: /timestamp must match format "date-time"`)
        expect(link.isAlive()).toBe(true)
      }))
  }

  it.scopedLive("fails the ingest thread's start when its folder cannot be loaded, saying why", () =>
    Effect.gen(function*() {
      const failed = yield* Effect.flip(IngestThread.start({
        url: FleetProbe.MOSQUITTO_URL,
        prefix: FleetProbe.uniquePrefix(),
        officialSchemas: "/nonexistent/vda5050",
        clientId: `schemas-${Date.now()}`,
        onBatch: () => {},
        onFailure: () => {}
      }))
      expect(failed.message).toBe("MQTT ingest thread: VDA 5050 schemas (FLEET_VDA5050_SCHEMAS): /nonexistent/vda5050: no such folder")
    }))
})
