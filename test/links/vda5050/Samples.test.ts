import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Mqtt from "mqtt"
import type { ActorRef } from "../../../src/actors/ActorRef.js"
import { PubSub, Registry, TestKit } from "../../../src/actors/index.js"
import * as LinkEvent from "../../../src/links/LinkEvent.js"
import * as SampleColumns from "../../../src/links/SampleColumns.js"
import * as AgvLink from "../../../src/links/vda5050/AgvLink.js"
import * as MqttLink from "../../../src/links/vda5050/MqttLink.js"
import { eventually } from "../rmi/eventually.js"
import { next } from "../support/nextEvent.js"
import * as AgvLinks from "./support/AgvLinks.js"
import * as FleetProbe from "./support/FleetProbe.js"

/** The body of a VDA 5050 `state` of an idle AGV, its battery at 80 % + `headerId`. */
const stateBody = (headerId: number) => ({
  orderId: "",
  orderUpdateId: 0,
  lastNodeId: "",
  lastNodeSequenceId: 0,
  driving: false,
  operatingMode: "AUTOMATIC",
  nodeStates: [],
  edgeStates: [],
  actionStates: [],
  batteryState: { batteryCharge: 80 + headerId, charging: false },
  errors: [],
  safetyState: { eStop: "NONE", fieldViolation: false }
})

/**
 * Samples and events, on the real Mosquitto: an AGV's `visualization`s are written to its slot
 * of the sample columns by the thread that parsed them and never reach its link's mailbox, while
 * its events (`connection`, `state`) still reach the link, in order. Both ways of parsing: on the
 * broker connection's actor, and on the ingest thread.
 */
const setup = (ingestThread: boolean, agvOptions: Partial<AgvLink.AgvLinkOptions> = {}, ingestThreads?: number) =>
  Effect.gen(function*() {
    const prefix = FleetProbe.uniquePrefix()
    const hub = yield* PubSub.make()
    const events = yield* PubSub.subscribeQueue<LinkEvent.LinkEvent>(hub, LinkEvent.FleetTopic, { bufferSize: 100_000 })
    const registry = yield* Registry.make<string, any>({ keys: "unique" })
    const system = yield* TestKit.system()
    const samples = SampleColumns.makeDirectory(16)
    const { mqtt } = yield* AgvLinks.start({
      system,
      hub,
      registry,
      url: FleetProbe.MOSQUITTO_URL,
      prefix,
      ingestThread,
      ingestThreads,
      samples,
      agvOptions
    })
    yield* eventually(mqtt.ask(MqttLink.getStats), (s) => s.connected)
    const client = yield* Effect.acquireRelease(
      Effect.promise(() => Mqtt.connectAsync(FleetProbe.MOSQUITTO_URL, { clientId: `agv-${prefix}` })),
      (c) => Effect.promise(() => c.endAsync())
    )
    const topic = (name: string) => `${prefix}/fleetvisor/agv-1/${name}`
    const header = (headerId: number) => ({
      headerId,
      timestamp: new Date().toISOString(),
      version: "2.0.0",
      manufacturer: "fleetvisor",
      serialNumber: "agv-1"
    })
    const send = (name: string, body: object) => Effect.promise(() => client.publishAsync(topic(name), JSON.stringify(body)))
    const visualization = (headerId: number) =>
      send("visualization", {
        ...header(headerId),
        agvPosition: { x: headerId, y: 2, theta: 0.5, mapId: "hall", positionInitialized: true },
        velocity: { vx: 1, vy: 0, omega: 0 }
      })
    const state = (headerId: number) => send("state", { ...header(headerId), ...stateBody(headerId) })
    const sample = new Float64Array(SampleColumns.fieldCount)
    const slotSample = Effect.sync(() => {
      const slot = samples.slotOf("fleetvisor/agv-1")
      return slot === undefined || SampleColumns.read(samples.columns, slot, sample) <= 0 ? undefined : sample
    })
    const agvRef = Effect.map(
      eventually(Registry.lookup(registry, "agv:fleetvisor/agv-1"), (entries) => entries.length === 1),
      (entries) => entries[0].ref as ActorRef<AgvLink.AgvLinkMessage>
    )
    return { prefix, client, events, mqtt, system, samples, send, visualization, state, slotSample, agvRef }
  })

const { Field } = SampleColumns

describe.each([{ ingestThread: false }, { ingestThread: true }])("samples and events (ingest thread: $ingestThread)", ({ ingestThread }) => {
  it.scopedLive("visualizations go to the AGV's slot, not its link; its states still reach the link, in order", () =>
    Effect.gen(function*() {
      const { agvRef, events, mqtt, slotSample, state, visualization } = yield* setup(ingestThread)
      yield* state(0)
      yield* next(events, "LinkUp", (e) => e.robot === "fleetvisor/agv-1")
      yield* agvRef
      for (let i = 0; i < 200; i++) {
        yield* visualization(i)
        if (i % 50 === 49) yield* state(1 + Math.floor(i / 50))
      }
      const last = yield* eventually(slotSample, (s) => s !== undefined && s[Field.headerId] === 199)
      expect([last![Field.x], last![Field.y], last![Field.theta], last![Field.poseKnown], last![Field.vx]]).toEqual([199, 2, 0.5, 1, 1])
      // The last state may still be on its way from the ingest thread when the last sample is in its slot.
      const stats = yield* eventually(mqtt.ask(MqttLink.getStats), (s) => s.received - s.published >= 205)
      // The link asked for the first sample as a message; the rest went to the columns only.
      expect(stats.sampled).toBeGreaterThanOrEqual(195)
      expect(stats.gaps).toBe(0)
      // Every message counted once: its 205, and the instant actions its link sent, which come back under the prefix.
      expect(stats.received - stats.published).toBe(205)
      const telemetry = (yield* Queue.takeAll(events)).pipe((all) => [...all]).filter(
        (e): e is LinkEvent.AgvTelemetry => e._tag === "AgvTelemetry" && e.robot === "fleetvisor/agv-1"
      )
      expect(telemetry.filter((e) => e.state !== undefined).map((e) => e.state!.headerId)).toEqual([0, 1, 2, 3, 4])
      expect(telemetry.filter((e) => e.visualization !== undefined).length).toBeLessThanOrEqual(5)
      const info = yield* Effect.flatMap(agvRef, (ref) => ref.ask(AgvLink.getInfo))
      expect(info.state?.headerId).toBe(4)
    }))

  it.scopedLive("an AGV heard only through its samples stays up; once silent it is down, and its next sample brings it up", () =>
    Effect.gen(function*() {
      const { events, send, visualization } = yield* setup(ingestThread, { silenceDeadline: "400 millis" })
      yield* send("connection", { ...{ headerId: 0, timestamp: new Date().toISOString(), version: "2.0.0" }, manufacturer: "fleetvisor", serialNumber: "agv-1", connectionState: "ONLINE" })
      yield* visualization(0)
      yield* next(events, "LinkUp", (e) => e.robot === "fleetvisor/agv-1")
      for (let i = 1; i < 30; i++) {
        yield* visualization(i)
        yield* Effect.sleep("50 millis")
      }
      const meanwhile = [...(yield* Queue.takeAll(events))].filter((e) => e.robot === "fleetvisor/agv-1")
      expect(meanwhile.filter((e) => e._tag === "LinkDown" || e._tag === "Alarm")).toEqual([])
      const silent = yield* next(events, "Alarm", (e) => e.robot === "fleetvisor/agv-1")
      expect(silent.code).toBe("LINK-SILENT")
      yield* next(events, "LinkDown", (e) => e.robot === "fleetvisor/agv-1")
      yield* visualization(30)
      yield* next(events, "LinkUp", (e) => e.robot === "fleetvisor/agv-1")
    }))

  it.scopedLive("a link let go gives its slot back to events: the AGV's next sample starts a link again", () =>
    Effect.gen(function*() {
      const { events, send, system, visualization } = yield* setup(ingestThread, { grace: "300 millis" })
      yield* visualization(0)
      yield* next(events, "LinkUp", (e) => e.robot === "fleetvisor/agv-1")
      yield* send("connection", { headerId: 1, timestamp: new Date().toISOString(), version: "2.0.0", manufacturer: "fleetvisor", serialNumber: "agv-1", connectionState: "OFFLINE" })
      yield* TestKit.awaitTree(system, `
        links (dynamic, 0/∞)
        mqtt running mailbox=0 restarts=0`)
      yield* visualization(1)
      yield* next(events, "LinkUp", (e) => e.robot === "fleetvisor/agv-1")
      const tree = yield* system.render
      expect(tree).toContain("agv:fleetvisor/agv-1 running")
    }))
})

describe("ingest partitioned over threads", () => {
  it.scopedLive("each AGV is heard on one thread, subscribed by name: its samples in order, none twice, its states to its link", () =>
    Effect.gen(function*() {
      const { client, events, mqtt, prefix, samples } = yield* setup(true, {}, 3)
      // Three threads to bundle and start: slow on a loaded machine, and not what this test is about.
      yield* eventually(mqtt.ask(MqttLink.getStats), (s) => s.ingestSampled.length === 3, "20 seconds")
      const serials = ["agv-1", "agv-2", "agv-3", "agv-4", "agv-5", "agv-6", "agv-7", "agv-8"]
      const header = (serial: string, headerId: number) => ({
        headerId,
        timestamp: new Date().toISOString(),
        version: "2.0.0",
        manufacturer: "fleetvisor",
        serialNumber: serial
      })
      const publish = (serial: string, topic: string, body: object) =>
        Effect.promise(() => client.publishAsync(`${prefix}/fleetvisor/${serial}/${topic}`, JSON.stringify(body)))
      // Discovery by the connection topic; a link starts once its thread's subscription is acknowledged.
      for (const serial of serials) yield* publish(serial, "connection", { ...header(serial, 0), connectionState: "ONLINE" })
      const up = new Set<string>()
      while (up.size < serials.length) up.add((yield* next(events, "LinkUp")).robot)
      for (let i = 0; i < 100; i++) {
        for (const serial of serials) {
          yield* publish(serial, "visualization", { ...header(serial, i), agvPosition: { x: i, y: 0, theta: 0, mapId: "m", positionInitialized: true } })
        }
      }
      const sample = new Float64Array(SampleColumns.fieldCount)
      const lastHeaderId = (serial: string) =>
        Effect.sync(() => {
          const slot = samples.slotOf(`fleetvisor/${serial}`)
          return slot === undefined || SampleColumns.read(samples.columns, slot, sample) <= 0 ? -1 : sample[SampleColumns.Field.headerId]
        })
      for (const serial of serials) yield* eventually(lastHeaderId(serial), (id) => id === 99)
      const stats = yield* mqtt.ask(MqttLink.getStats)
      // A sample heard twice (two threads subscribed to one AGV) would repeat a headerId: a gap.
      expect(stats.gaps).toBe(0)
      expect(stats.discovered).toBe(serials.length)
      expect(stats.sampled).toBeGreaterThanOrEqual(serials.length * 99)
      expect(stats.ingestSampled.reduce((a, b) => a + b, 0)).toBe(stats.sampled)
      expect(stats.ingestSampled.filter((n) => n > 0).length).toBeGreaterThan(1)
      // Events still go to the links: a state of each AGV, heard on its thread.
      for (const serial of serials) {
        yield* publish(serial, "state", { ...header(serial, 1), ...stateBody(1) })
      }
      const heard = new Set<string>()
      while (heard.size < serials.length) heard.add((yield* next(events, "AgvTelemetry", (e) => e.state?.headerId === 1)).robot)
    }))
})
