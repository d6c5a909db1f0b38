/**
 * `fleet/mqtt` with a placement (several nodes share the fleet), on the real Mosquitto: an AGV
 * this node does not own gets no link (heard through its `connection` only, the AGV managed once);
 * an AGV given to the node gets its link at once; one taken away has its link stopped, and its
 * next messages start nothing. Two nodes side by side (on this actor's connection, and on the
 * ingest thread) each hear only their own AGVs' `state` and `visualization` (subscribed by name),
 * an AGV moved from one to the other is heard by the new one only, and a node started late
 * discovers the AGVs already connected (their retained `connection`).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as MqttConnection from "../../../src/links/mqtt/MqttConnection.js"
import * as Header from "../../../src/links/vda5050/Header.js"
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

      // Owned by another node: heard through `connection` only, managed once each; no link.
      yield* eventually(Effect.sync(() => managed.length), (n) => n === 2, "5 seconds")
      yield* Effect.sleep("500 millis")
      const heard = yield* mqtt.ask(MqttLink.getStats)
      expect(heard.discovered).toBe(0)
      // Two retained ONLINEs, nothing of their 10 visualizations a second.
      expect(heard.notOwned).toBeLessThanOrEqual(4)
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

/** A node for the tests below: `fleet/mqtt` and its links in a system of their own, with a hand placement. */
const node = (prefix: string, name: string, ingestThread: boolean, owned: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const hub = yield* PubSub.make()
    const registry = yield* Registry.make<string, any>({ keys: "unique" })
    const system = yield* TestKit.system()
    const hand = handPlacement()
    for (const robot of owned) hand.set(robot, true)
    const { mqtt } = yield* AgvLinks.start({ system, hub, registry, url: FleetProbe.MOSQUITTO_URL, prefix, placement: hand.placement, ingestThread })
    yield* eventually(mqtt.ask(MqttLink.getStats), (s) => s.connected, "5 seconds")
    const links = Effect.sync(() =>
      [...Registry.all(registry)].map((entry) => entry.key).filter((key) => key.startsWith("agv:")).map((key) => key.slice(4)).sort()
    )
    return { name, mqtt, links, stats: mqtt.ask(MqttLink.getStats), ...hand }
  })

const robot = (n: number) => `fleetvisor/sim-000${n}`

for (const ingestThread of [false, true]) {
  describe(`two nodes with placements (${ingestThread ? "ingest thread" : "the actor's own connection"})`, () => {
    it.scopedLive("each hears only its own AGVs' messages, follows an AGV that moves, and a late node finds the AGVs already there", () =>
      Effect.gen(function*() {
        const prefix = FleetProbe.uniquePrefix()
        // Quiet AGVs: ONLINE, a state when asked, nothing else; the test publishes their visualizations itself.
        yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 4, visualizationHz: 0, stateIntervalMs: 600_000, patrol: false })
        const a = yield* node(prefix, "a", ingestThread, [robot(1), robot(2)])
        const b = yield* node(prefix, "b", ingestThread, [robot(3), robot(4)])
        yield* eventually(Effect.zip(a.links, b.links), ([onA, onB]) => onA.length === 2 && onB.length === 2, "5 seconds")
        expect(yield* a.links).toEqual([robot(1), robot(2)])
        expect(yield* b.links).toEqual([robot(3), robot(4)])
        // Each heard of the other's AGVs through their `connection`, and manages them.
        yield* eventually(Effect.sync(() => [a.managed.length, b.managed.length]), ([x, y]) => x === 2 && y === 2, "5 seconds")
        expect([...a.managed].sort()).toEqual([robot(3), robot(4)])
        expect([...b.managed].sort()).toEqual([robot(1), robot(2)])

        const publisher = yield* MqttConnection.connect({ url: FleetProbe.MOSQUITTO_URL, clientId: `placement-test-${Date.now()}` })
        let headerId = 0
        /** Publishes `count` visualizations of each of `robots`, in turn. */
        const visualizations = (robots: ReadonlyArray<string>, count: number) =>
          Effect.forEach(Array.from({ length: count }), () =>
            Effect.forEach(robots, (id) => {
              const [manufacturer, serialNumber] = id.split("/") as [string, string]
              const payload = JSON.stringify({ ...Header.make({ manufacturer, serialNumber }, headerId++, Date.now()), velocity: { vx: 0, vy: 0, omega: 0 } })
              return publisher.publish(`${prefix}/${id}/visualization`, payload, { qos: 0, retain: false })
            }), { discard: true })
        /** What `messages` did to each node's counters: messages received, and dropped as another node's. */
        const delta = (messages: Effect.Effect<void, unknown>, expectA: number, expectB: number) =>
          Effect.gen(function*() {
            yield* Effect.sleep("300 millis")
            const [a0, b0] = [yield* a.stats, yield* b.stats]
            yield* messages
            yield* eventually(Effect.zip(a.stats, b.stats), ([sa, sb]) =>
              sa.received - a0.received >= expectA && sb.received - b0.received >= expectB, "5 seconds")
            // Whatever else would have come is behind these.
            yield* Effect.sleep("300 millis")
            const [a1, b1] = [yield* a.stats, yield* b.stats]
            return {
              a: { received: a1.received - a0.received, notOwned: a1.notOwned - a0.notOwned },
              b: { received: b1.received - b0.received, notOwned: b1.notOwned - b0.notOwned }
            }
          })

        // 20 visualizations of every AGV: each node parses its own 40, none of the others'.
        const all = [robot(1), robot(2), robot(3), robot(4)]
        expect(yield* delta(visualizations(all, 20), 40, 40)).toEqual({ a: { received: 40, notOwned: 0 }, b: { received: 40, notOwned: 0 } })

        // AGV 2 moves from a to b: b subscribes to its topics before its link starts, a unsubscribes.
        a.set(robot(2), false)
        b.set(robot(2), true)
        yield* eventually(Effect.zip(a.links, b.links), ([onA, onB]) => onA.length === 1 && onB.length === 3, "5 seconds")
        expect(yield* a.links).toEqual([robot(1)])
        expect(yield* b.links).toEqual([robot(2), robot(3), robot(4)])
        expect(yield* delta(visualizations([robot(2)], 20), 0, 20)).toEqual({ a: { received: 0, notOwned: 0 }, b: { received: 20, notOwned: 0 } })
        expect(yield* delta(visualizations(all, 10), 10, 30)).toEqual({ a: { received: 10, notOwned: 0 }, b: { received: 30, notOwned: 0 } })

        // A node started now learns of the four AGVs from their retained `connection`, and hears an AGV it is given.
        const c = yield* node(prefix, "c", ingestThread, [])
        yield* eventually(Effect.sync(() => c.managed.length), (n) => n === 4, "5 seconds")
        expect([...c.managed].sort()).toEqual(all)
        expect(yield* c.links).toEqual([])
        a.set(robot(1), false)
        c.set(robot(1), true)
        yield* eventually(c.links, (onC) => onC.length === 1, "5 seconds")
        const c0 = yield* c.stats
        yield* visualizations([robot(1)], 5)
        yield* eventually(c.stats, (s) => s.received - c0.received >= 5, "5 seconds")
        expect(yield* a.links).toEqual([])
      }), 30_000)
  })
}
