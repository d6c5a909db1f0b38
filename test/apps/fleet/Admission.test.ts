/**
 * The fleet's admission of AGVs across a restart of `links` (real Mosquitto): the AGVs the fleet
 * knows (its roster, above the tree) are admitted again at once from their retained `connection`
 * messages, even while the discovery rate is exhausted by unknown ones; and a robot's silence is
 * its status inside its link, never a restart.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Mqtt from "mqtt"
import { Inspection, PubSub, Registry, TestKit } from "../../../src/actors/index.js"
import * as Fleet from "../../../src/apps/fleet/Fleet.js"
import * as FleetConfig from "../../../src/apps/fleet/FleetConfig.js"
import * as AgvSimulator from "../../../src/links/vda5050/AgvSimulator.js"
import * as MqttLink from "../../../src/links/vda5050/MqttLink.js"
import { Backoff } from "../../../src/supervisors/index.js"
import { eventually } from "../../links/rmi/eventually.js"
import * as FleetProbe from "../../links/vda5050/support/FleetProbe.js"

describe("AGV admission in the fleet", () => {
  it.scopedLive("after a restart of links, every known AGV is admitted again at once while unknown ones wait for the rate", () =>
    Effect.gen(function*() {
      const prefix = FleetProbe.uniquePrefix()
      const system = yield* TestKit.system()
      const fleet = yield* Fleet.make({
        settings: FleetConfig.make({ mqttUrl: FleetProbe.MOSQUITTO_URL, mqttPrefix: prefix, agvDiscoveryRate: 1, maxAgvs: 100 }),
        hub: yield* PubSub.make(),
        system,
        linkBackoff: Backoff.exponential({ min: "50 millis", max: "500 millis" })
      })
      const sim = yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 3, visualizationHz: 2 })
      const known = sim.agvs.map((agv) => `fleetvisor/${agv.serialNumber}`)
      // With 1 new AGV a second, the three simulators are listed within a few seconds.
      yield* TestKit.awaitUntil(
        Effect.map(fleet.state, (view) => known.every((id) => view.robots.some((r) => r.id === id && r.status === "online"))),
        { timeoutMillis: 10_000, waitedFor: "the three simulated AGVs online" }
      )

      // 40 fakes say ONLINE, retained: they wait for the rate (1 a second), now and after the restart.
      const raw = yield* Effect.acquireRelease(
        Effect.promise(() => Mqtt.connectAsync(FleetProbe.MOSQUITTO_URL)),
        (client) => Effect.promise(() => client.endAsync())
      )
      const fakes = Array.from({ length: 40 }, (_, i) => `${prefix}/fake/fake-${i}/connection`)
      yield* Effect.addFinalizer(() => Effect.promise(() => Promise.all(fakes.map((t) => raw.publishAsync(t, "", { retain: true, qos: 1 })))))
      for (const [i, topic] of fakes.entries()) {
        yield* Effect.promise(() =>
          raw.publishAsync(
            topic,
            JSON.stringify({ headerId: 0, timestamp: new Date().toISOString(), version: "2.0.0", manufacturer: "fake", serialNumber: `fake-${i}`, connectionState: "ONLINE" }),
            { retain: true, qos: 1 }
          )
        )
      }
      const mqtt = Effect.flatMap(Registry.whereis(fleet.registry, "mqtt"), (ref) =>
        ref._tag === "Some" ? Effect.orDie((ref.value as any).ask(MqttLink.getStats)) as Effect.Effect<MqttLink.MqttLinkStats> : Effect.dieMessage("no mqtt"))
      yield* eventually(mqtt, (s) => s.refused.rate >= 35)

      // A bug in links (a crash): fleet restarts links and everything after it, mqtt included.
      const restartedAt = Date.now()
      yield* TestKit.crashChild(system, "links", "a bug")
      yield* eventually(Effect.map(system.snapshot, (nodes) => Inspection.find(nodes, "links")?.restarts), (n) => n === 1)
      // The known AGVs' links are back at once, from their retained connection: not one a second.
      yield* TestKit.awaitUntil(
        Effect.sync(() => known.every((id) => Registry.unsafeLookup(fleet.registry, `agv:${id}`).length === 1)),
        { timeoutMillis: 5_000, waitedFor: "the known AGVs' links after the restart" }
      )
      const readmittedMs = Date.now() - restartedAt
      const stats = yield* eventually(mqtt, (s) => s.refused.rate >= 30)
      // The fakes still wait: 1 token at the start, about 1 a second since.
      expect(stats.discovered).toBeLessThanOrEqual(known.length + 1 + Math.ceil((Date.now() - restartedAt) / 1000) + 1)
      expect(readmittedMs).toBeLessThan(1_500)
      yield* TestKit.awaitUntil(
        Effect.map(fleet.state, (view) => known.every((id) => view.robots.some((r) => r.id === id && r.status === "online"))),
        { timeoutMillis: 5_000, waitedFor: "the known AGVs online again" }
      )
      // Fakes that never report are not in the fleet's view.
      expect((yield* fleet.state).robots.filter((r) => r.id.startsWith("fake/"))).toEqual([])
      console.log(JSON.stringify({ test: "Admission.readmit", known: known.length, readmittedMs, discoveredAfter: stats.discovered, refusedRate: stats.refused.rate }))
    }), { timeout: 30_000 })
})
