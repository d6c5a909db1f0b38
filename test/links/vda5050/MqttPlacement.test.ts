/**
 * `fleet/mqtt` with a placement (several nodes share the fleet), on the real Mosquitto: an AGV
 * this node does not own gets no link (its messages are dropped and counted, the AGV managed once);
 * an AGV given to the node gets its link at once; one taken away has its link stopped, and its
 * next messages start nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { PubSub, Registry, TestKit } from "../../../src/actors/index.js"
import type * as Placement from "../../../src/links/Placement.js"
import * as AgvSimulator from "../../../src/links/vda5050/AgvSimulator.js"
import * as MqttLink from "../../../src/links/vda5050/MqttLink.js"
import { eventually } from "../rmi/eventually.js"
import * as AgvLinks from "./support/AgvLinks.js"
import * as FleetProbe from "./support/FleetProbe.js"

/** A placement the test moves by hand. */
const handPlacement = () => {
  const owned = new Set<string>()
  const managed: Array<string> = []
  const listeners = new Set<(robot: string, owned: boolean) => void>()
  const placement: Placement.Placement = {
    node: "test",
    owns: (robot) => owned.has(robot),
    owned: () => [...owned],
    manage: (robots) => Effect.sync(() => void managed.push(...robots)),
    watch: (listener) => {
      listeners.add(listener)
      return () => void listeners.delete(listener)
    }
  }
  const set = (robot: string, own: boolean) => {
    if (own) owned.add(robot)
    else owned.delete(robot)
    for (const listener of listeners) listener(robot, own)
  }
  return { placement, managed, set }
}

describe("MqttLink with a placement", () => {
  it.scopedLive("runs the links of the AGVs it owns only, starting and stopping them as the placement moves", () =>
    Effect.gen(function*() {
      const prefix = FleetProbe.uniquePrefix()
      const hub = yield* PubSub.make()
      const registry = yield* Registry.make<string, any>({ keys: "unique" })
      const system = yield* TestKit.system()
      const { managed, placement, set } = handPlacement()
      const { mqtt } = yield* AgvLinks.start({ system, hub, registry, url: FleetProbe.MOSQUITTO_URL, prefix, placement })
      yield* eventually(mqtt.ask(MqttLink.getStats), (s) => s.connected, "5 seconds")
      yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 2, visualizationHz: 10 })
      const links = Effect.sync(() => [...Registry.all(registry)].map((entry) => entry.key).filter((key) => key.startsWith("agv:")).sort())

      // Owned by another node: dropped, counted, managed once each; no link.
      const heard = yield* eventually(mqtt.ask(MqttLink.getStats), (s) => s.notOwned >= 20, "5 seconds")
      expect(heard.discovered).toBe(0)
      expect([...managed].sort()).toEqual(["fleetvisor/sim-0001", "fleetvisor/sim-0002"])
      expect(yield* links).toEqual([])

      // Given: its link starts at once; the other AGV still has none.
      set("fleetvisor/sim-0001", true)
      yield* eventually(links, (keys) => keys.length === 1, "2 seconds")
      expect(yield* links).toEqual(["agv:fleetvisor/sim-0001"])
      expect(yield* mqtt.ask(MqttLink.getStats)).toMatchObject({ placedLinks: 1, displacedLinks: 0, discovered: 0 })

      // Taken away: its link stops, and its next messages start nothing.
      set("fleetvisor/sim-0001", false)
      yield* eventually(links, (keys) => keys.length === 0, "2 seconds")
      yield* Effect.sleep("500 millis")
      expect(yield* links).toEqual([])
      const after = yield* mqtt.ask(MqttLink.getStats)
      expect(after).toMatchObject({ placedLinks: 1, displacedLinks: 1 })
      expect(managed.length).toBe(2)
    }))
})
