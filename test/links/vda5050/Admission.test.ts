/**
 * Discovery admits AGVs, it does not just accept them (`MqttLink`'s admission, on the real
 * Mosquitto under a prefix of each test's own): a cap on AGV links, a rate of new AGVs that
 * known AGVs never wait for, an allow-list of manufacturers, a bound on names; refusals counted by
 * reason and logged sampled with excerpts; and a link started for an AGV the fleet did not know
 * publishes nothing until the AGV reports, and is let go if it never does.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Queue from "effect/Queue"
import * as Mqtt from "mqtt"
import { PubSub, Registry, TestKit } from "../../../src/actors/index.js"
import * as LogSampler from "../../../src/actors/LogSampler.js"
import * as LinkEvent from "../../../src/links/LinkEvent.js"
import * as AgvLink from "../../../src/links/vda5050/AgvLink.js"
import * as AgvSimulator from "../../../src/links/vda5050/AgvSimulator.js"
import * as MqttLink from "../../../src/links/vda5050/MqttLink.js"
import { DynamicSupervisor } from "../../../src/supervisors/index.js"
import { eventually } from "../rmi/eventually.js"
import { next } from "../support/nextEvent.js"
import * as AgvLinks from "./support/AgvLinks.js"
import * as FleetProbe from "./support/FleetProbe.js"

/** Log lines, captured instead of printed. */
const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ cause, message }) => {
    const text = (Array.isArray(message) ? message : [message]).map(String).join(" ")
    lines.push(cause._tag === "Empty" ? text : `${text} ${String(cause)}`)
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** `links` and `mqtt` with an admission of their own, and every link event of the fleet. */
const setup = (
  admission: MqttLink.Admission,
  agvOptions: Partial<AgvLink.AgvLinkOptions> = {}
) =>
  Effect.gen(function*() {
    const prefix = FleetProbe.uniquePrefix()
    const hub = yield* PubSub.make()
    const events = yield* PubSub.subscribeQueue<LinkEvent.LinkEvent>(hub, LinkEvent.FleetTopic, { bufferSize: 100_000 })
    const registry = yield* Registry.make<string, any>({ keys: "unique" })
    const system = yield* TestKit.system()
    const started: Array<{ robot: string; known: boolean }> = []
    const { links, mqtt } = yield* AgvLinks.start({
      system,
      hub,
      registry,
      url: FleetProbe.MOSQUITTO_URL,
      prefix,
      agvOptions,
      admission,
      linksMaxRestarts: 1,
      onStart: (robot, known) => started.push({ robot, known })
    })
    yield* eventually(mqtt.ask(MqttLink.getStats), (s) => s.connected)
    const raw = yield* Effect.acquireRelease(
      Effect.promise(() => Mqtt.connectAsync(FleetProbe.MOSQUITTO_URL)),
      (client) => Effect.promise(() => client.endAsync())
    )
    const retained: Array<string> = []
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => Promise.all(retained.map((topic) => raw.publishAsync(topic, "", { retain: true, qos: 1 }))))
    )
    /** A fake AGV says ONLINE (retained, as the specification has it), and nothing else. */
    const online = (manufacturer: string, serialNumber: string) => {
      const topic = `${prefix}/${manufacturer}/${serialNumber}/connection`
      retained.push(topic)
      return Effect.promise(() =>
        raw.publishAsync(
          topic,
          JSON.stringify({ headerId: 0, timestamp: new Date().toISOString(), version: "2.0.0", manufacturer, serialNumber, connectionState: "ONLINE" }),
          { retain: true, qos: 1 }
        )
      )
    }
    const agvLinks = Effect.map(Effect.orDie(DynamicSupervisor.whichChildren(links)), (children) => children.length)
    return { prefix, hub, events, registry, system, links, mqtt, raw, online, agvLinks, started }
  })

describe("AGV admission", () => {
  it.scopedLive("caps the AGV links: past FLEET_MAX_AGVS an AGV is refused, counted, and logged once with a count", () =>
    Effect.gen(function*() {
      const logs = captureLogs()
      yield* Effect.gen(function*() {
        const { agvLinks, mqtt, online } = yield* setup({ maxAgvs: 3 })
        for (let i = 0; i < 20; i++) yield* online("fake", `fake-${i}`)
        const stats = yield* eventually(mqtt.ask(MqttLink.getStats), (s) => s.refused.cap >= 17)
        expect(stats.refused).toEqual({ cap: 17, rate: 0, manufacturer: 0, name: 0 })
        expect(stats.agvLinks).toBe(3)
        expect(yield* agvLinks).toBe(3)
        const refusals = logs.lines.filter((line) => line.includes("refused"))
        expect(refusals).toHaveLength(1)
        expect(refusals[0]).toMatch(/^AGV fake\/fake-\d+ refused: the AGV links are at FLEET_MAX_AGVS$/)
      }).pipe(Effect.provide(logs.layer))
    }))

  it.scopedLive("rate-limits new AGVs, but never a known one; an AGV refused by the rate gets in on a later message", () =>
    Effect.gen(function*() {
      const { agvLinks, mqtt, online, prefix, registry, started } = yield* setup({
        perSecond: 2,
        known: (robot) => robot === "fleetvisor/sim-0001"
      })
      for (let i = 0; i < 30; i++) yield* online("fake", `fake-${i}`)
      yield* eventually(mqtt.ask(MqttLink.getStats), (s) => s.refused.rate >= 25)
      // The bucket is empty: a known AGV still gets its link at once.
      const startedAt = Date.now()
      yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 1, visualizationHz: 5 })
      yield* eventually(Registry.lookup(registry, "agv:fleetvisor/sim-0001"), (entries) => entries.length === 1)
      const admittedAfter = Date.now() - startedAt
      expect(started.find((s) => s.robot === "fleetvisor/sim-0001")).toEqual({ robot: "fleetvisor/sim-0001", known: true })
      const stats = yield* mqtt.ask(MqttLink.getStats)
      // 2 tokens at the start, and about 2 a second since: far fewer than 30.
      expect(stats.discovered).toBeLessThanOrEqual(2 + Math.ceil(((Date.now() - startedAt) / 1000 + 2) * 2) + 1)
      expect(yield* agvLinks).toBe(stats.discovered)
      expect(admittedAfter).toBeLessThan(2_000)
      console.log(JSON.stringify({ test: "Admission.rate", refusedRate: stats.refused.rate, discovered: stats.discovered, knownAdmittedMs: admittedAfter }))

      // A refused AGV that speaks again after the bucket refilled is admitted then.
      yield* Effect.sleep("1100 millis")
      yield* online("fake", "fake-29")
      yield* eventually(Registry.lookup(registry, "agv:fake/fake-29"), (entries) => entries.length === 1)
    }))

  it.scopedLive("refuses a manufacturer outside the allow-list, and an AGV whose name is absurdly long, logging only an excerpt", () =>
    Effect.gen(function*() {
      const logs = captureLogs()
      yield* Effect.gen(function*() {
        const { agvLinks, mqtt, online, prefix, registry } = yield* setup({ manufacturers: new Set(["fleetvisor"]) })
        yield* online("acme", "agv-1")
        const long = "x".repeat(60_000)
        yield* online("fleetvisor", long)
        yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 1, visualizationHz: 5 })
        yield* eventually(Registry.lookup(registry, "agv:fleetvisor/sim-0001"), (entries) => entries.length === 1)
        const stats = yield* eventually(mqtt.ask(MqttLink.getStats), (s) => s.refused.manufacturer >= 1 && s.refused.name >= 1)
        expect(stats.refused).toMatchObject({ manufacturer: 1, name: 1, cap: 0, rate: 0 })
        expect(yield* agvLinks).toBe(1)
        expect(logs.lines.some((line) => /^AGV acme\/agv-1 refused: its manufacturer is not in FLEET_AGV_MANUFACTURERS$/.test(line))).toBe(true)
        const named = logs.lines.find((line) => line.includes("longer than"))!
        expect(named.length).toBeLessThan(LogSampler.excerptLength + 200)
        expect(named).toContain("(60,011 characters)")
        expect(Math.max(...logs.lines.map((line) => line.length))).toBeLessThan(1_000)
      }).pipe(Effect.provide(logs.layer))
    }))

  it.scopedLive("a new AGV that never reports is never listed and is let go after its grace period; one that reports is listed", () =>
    Effect.gen(function*() {
      const { events, mqtt, online, prefix, registry, system } = yield* setup({}, { grace: "1500 millis" })
      yield* online("fake", "ghost")
      yield* eventually(Registry.lookup(registry, "agv:fake/ghost"), (entries) => entries.length === 1)
      yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 1, visualizationHz: 5 })
      // The simulator reports: listed (LinkUp), though the fleet did not know it.
      yield* next(events, "LinkUp", (e) => e.robot === "fleetvisor/sim-0001")
      yield* TestKit.awaitUntil(
        Effect.map(Registry.lookup(registry, "agv:fake/ghost"), (entries) => entries.length === 0),
        { timeoutMillis: 5_000, waitedFor: "the ghost's link to be let go", describe: system.render }
      )
      // Not one event about the ghost reached the fleet: it never entered its view.
      const all = yield* Queue.takeAll(events)
      expect([...all].filter((e) => e.robot === "fake/ghost")).toEqual([])
      expect((yield* mqtt.ask(MqttLink.getStats)).discovered).toBe(2)
      expect(yield* system.render).toMatch(/agv:fleetvisor\/sim-0001 running mailbox=\d+ restarts=0/)
    }))
})
