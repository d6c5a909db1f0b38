import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { Action } from "../../../src/links/vda5050/Action.js"
import * as AgvSimulator from "../../../src/links/vda5050/AgvSimulator.js"
import type { MessageOf } from "../../../src/links/vda5050/MessageCodec.js"
import * as Order from "../../../src/links/vda5050/Order.js"
import * as OrderId from "../../../src/links/vda5050/OrderId.js"
import type { TopicName } from "../../../src/links/vda5050/Topic.js"
import * as FleetProbe from "./support/FleetProbe.js"
import { officialSchema, violations } from "./support/officialSchemas.js"

let actionCount = 0
const instant = (actionType: string): Action => ({ actionType, actionId: `ia-${++actionCount}`, blockingType: "HARD" })

const finished = (action: Action) => (state: MessageOf<"state">) =>
  state.actionStates.some((s) => s.actionId === action.actionId && s.actionStatus === "FINISHED")

/** A probe (master control) and a simulated fleet on the real Mosquitto, under a prefix of their own. */
const fleet = (options: Partial<AgvSimulator.AgvSimulatorOptions> = {}) =>
  Effect.gen(function* () {
    const prefix = FleetProbe.uniquePrefix()
    const probe = yield* FleetProbe.make(FleetProbe.MOSQUITTO_URL, prefix)
    const sim = yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 1, ...options })
    return { probe, sim, agv: sim.agvs[0] }
  })

/** The decoded messages from `serialNumber` on `topic` in the probe's log after index `from`. */
const since = <T extends TopicName>(probe: FleetProbe.FleetProbe, serialNumber: string, topic: T, from: number) =>
  probe.log
    .slice(from + 1)
    .filter((r) => r.topic.serialNumber === serialNumber && r.topic.topic === topic)
    .map((r) => Either.getOrThrow(r.decoded) as MessageOf<T>)

describe("AgvSimulator on Mosquitto", () => {
  it.scopedLive("announces each AGV ONLINE and sends only messages the official schemas accept", () =>
    Effect.gen(function* () {
      const { agv, probe, sim } = yield* fleet({ count: 2, visualizationHz: 20 })
      for (const { serialNumber } of sim.agvs) {
        yield* probe.waitFor(serialNumber, "connection", (c) => c.connectionState === "ONLINE")
        yield* probe.waitFor(serialNumber, "state")
        yield* probe.waitFor(serialNumber, "visualization")
      }
      yield* probe.send(agv, "instantActions", { actions: [instant("factsheetRequest")] })
      const { message: factsheet } = yield* probe.waitFor(agv.serialNumber, "factsheet")
      expect(factsheet.protocolFeatures.agvActions.map((a) => a.actionType)).toContain("startPause")

      expect(sim.agvs.map((a) => a.serialNumber)).toEqual(["sim-0001", "sim-0002"])
      expect(new Set(sim.agvs.map((a) => a.clientId)).size).toBe(2)
      for (const received of probe.log) {
        expect(Either.isRight(received.decoded)).toBe(true)
        expect(violations(officialSchema("2.0.0", received.topic.topic), JSON.parse(received.raw))).toEqual([])
      }
    })
  )

  it.scopedLive("numbers the messages of each topic one by one; the will took connection's first id", () =>
    Effect.gen(function* () {
      const { agv, probe } = yield* fleet({ visualizationHz: 50, speed: 3 })
      yield* probe.waitFor(agv.serialNumber, "visualization", (v) => v.headerId! >= 20)
      yield* probe.waitFor(agv.serialNumber, "state", (s) => s.headerId >= 2)
      const ids = (topic: TopicName) =>
        probe.log.filter((r) => r.topic.topic === topic).map((r) => (Either.getOrThrow(r.decoded) as { headerId: number }).headerId)
      for (const topic of ["state", "visualization"] as const) {
        const seen = ids(topic)
        expect(seen).toEqual(seen.map((_, i) => seen[0] + i))
      }
      expect(ids("connection")).toEqual([1])
    })
  )

  it.scopedLive("reports its state at least every stateIntervalMs while nothing happens", () =>
    Effect.gen(function* () {
      const { agv, probe } = yield* fleet({ patrol: false, stateIntervalMs: 200, visualizationHz: 0 })
      const { message } = yield* probe.waitFor(agv.serialNumber, "state", (s) => s.headerId >= 3)
      expect(message.driving).toBe(false)
      expect(message.orderId).toBe("")
      expect(probe.log.filter((r) => r.topic.topic === "visualization")).toEqual([])
    })
  )

  it.scopedLive("a killed AGV's last will arrives as CONNECTIONBROKEN; reconnected, it is ONLINE again", () =>
    Effect.gen(function* () {
      const { agv, probe } = yield* fleet()
      yield* probe.waitFor(agv.serialNumber, "connection", (c) => c.connectionState === "ONLINE")
      yield* agv.kill
      const { message: will } = yield* probe.waitFor(agv.serialNumber, "connection", (c) => c.connectionState === "CONNECTIONBROKEN")
      expect(will.headerId).toBe(0)
      expect(yield* agv.isConnected).toBe(false)

      yield* agv.reconnect
      const { message: online } = yield* probe.waitFor(agv.serialNumber, "connection", (c) => c.headerId === 2)
      expect(online.connectionState).toBe("ONLINE")
    })
  )

  it.scopedLive("goOffline publishes OFFLINE, which a late subscriber still finds retained", () =>
    Effect.gen(function* () {
      const { agv, probe } = yield* fleet()
      yield* probe.waitFor(agv.serialNumber, "connection", (c) => c.connectionState === "ONLINE")
      yield* agv.goOffline
      yield* probe.waitFor(agv.serialNumber, "connection", (c) => c.connectionState === "OFFLINE")

      const late = yield* FleetProbe.make(FleetProbe.MOSQUITTO_URL, probe.prefix)
      yield* late.waitFor(agv.serialNumber, "connection", (c) => c.connectionState === "OFFLINE")
    })
  )

  it.scopedLive("closing the simulator's scope takes every AGV OFFLINE", () =>
    Effect.gen(function* () {
      const prefix = FleetProbe.uniquePrefix()
      const probe = yield* FleetProbe.make(FleetProbe.MOSQUITTO_URL, prefix)
      const serials = yield* Effect.scoped(
        Effect.map(AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 3 }), (sim) =>
          sim.agvs.map((a) => a.serialNumber)
        )
      )
      for (const serialNumber of serials) {
        yield* probe.waitFor(serialNumber, "connection", (c) => c.connectionState === "OFFLINE")
      }
    })
  )

  it.scopedLive("startPause stops the AGV where it is and stopPause lets it drive on", () =>
    Effect.gen(function* () {
      const { agv, probe } = yield* fleet({ speed: 2, visualizationHz: 20 })
      yield* probe.waitFor(agv.serialNumber, "visualization", (v) => v.velocity!.vx! > 0)

      const pause = instant("startPause")
      yield* probe.send(agv, "instantActions", { actions: [pause] })
      const paused = yield* probe.waitFor(agv.serialNumber, "state", finished(pause))
      expect(paused.message.paused).toBe(true)
      expect(paused.message.driving).toBe(false)
      const where = paused.message.agvPosition!
      const first = yield* probe.waitFor(agv.serialNumber, "visualization", () => true, paused.index)
      yield* probe.waitFor(agv.serialNumber, "visualization", (v) => v.headerId! >= first.message.headerId! + 4, paused.index)
      const whilePaused = since(probe, agv.serialNumber, "visualization", paused.index)
      expect(whilePaused.length).toBeGreaterThanOrEqual(5)
      for (const v of whilePaused) expect([v.agvPosition!.x, v.agvPosition!.y]).toEqual([where.x, where.y])

      const resume = instant("stopPause")
      yield* probe.send(agv, "instantActions", { actions: [resume] })
      const resumed = yield* probe.waitFor(agv.serialNumber, "state", finished(resume))
      expect(resumed.message.paused).toBe(false)
      yield* probe.waitFor(
        agv.serialNumber,
        "visualization",
        (v) => v.agvPosition!.x !== where.x || v.agvPosition!.y !== where.y,
        resumed.index
      )
    })
  )

  it.scopedLive("cancelOrder stops the AGV and clears its order; with no order left it fails", () =>
    Effect.gen(function* () {
      const { agv, probe } = yield* fleet({ speed: 2 })
      yield* probe.waitFor(agv.serialNumber, "state", (s) => s.driving && s.nodeStates.length > 0)

      const cancel = instant("cancelOrder")
      yield* probe.send(agv, "instantActions", { actions: [cancel] })
      const { message: cancelled } = yield* probe.waitFor(agv.serialNumber, "state", finished(cancel))
      expect([cancelled.nodeStates, cancelled.edgeStates, cancelled.driving]).toEqual([[], [], false])

      const again = instant("cancelOrder")
      yield* probe.send(agv, "instantActions", { actions: [again] })
      const { message: refused } = yield* probe.waitFor(agv.serialNumber, "state", (s) =>
        s.actionStates.some((a) => a.actionId === again.actionId && a.actionStatus === "FAILED")
      )
      expect(refused.errors.map((e) => e.errorType)).toEqual(["noOrderToCancel"])
    })
  )

  it.scopedLive("answers stateRequest with a state at once", () =>
    Effect.gen(function* () {
      const { agv, probe } = yield* fleet({ patrol: false, stateIntervalMs: 60_000, visualizationHz: 0 })
      yield* probe.waitFor(agv.serialNumber, "state")
      const request = instant("stateRequest")
      yield* probe.send(agv, "instantActions", { actions: [request] })
      const { message } = yield* probe.waitFor(agv.serialNumber, "state", finished(request))
      expect(message.headerId).toBe(1)
    })
  )

  it.scopedLive("drives an order node by node, stops before the horizon, and drives on when an update releases it", () =>
    Effect.gen(function* () {
      const { agv, probe } = yield* fleet({ patrol: false, speed: 4, visualizationHz: 20 })
      const start = yield* agv.state
      const { x, y, mapId } = start.agvPosition!
      const beep = { actionType: "beep", actionId: "beep-1", blockingType: "NONE" } as const
      const order = Order.fromPath({
        orderId: "order-1",
        path: [
          { nodeId: start.lastNodeId, nodePosition: { x, y, mapId } },
          { nodeId: "A", nodePosition: { x: x + 2, y, mapId } },
          { nodeId: "B", nodePosition: { x: x + 2, y: y + 2, mapId }, actions: [beep] },
          { nodeId: "C", nodePosition: { x, y: y + 2, mapId } }
        ],
        released: 3
      })
      yield* probe.send(agv, "order", order)

      yield* probe.waitFor(agv.serialNumber, "state", (s) => s.orderId === "order-1" && s.lastNodeId === "A")
      const { message: atB } = yield* probe.waitFor(agv.serialNumber, "state", (s) => s.lastNodeId === "B" && !s.driving)
      expect(atB.agvPosition!.x).toBeCloseTo(x + 2, 3)
      expect(atB.agvPosition!.y).toBeCloseTo(y + 2, 3)
      expect(atB.nodeStates.map((n) => [n.nodeId, n.released])).toEqual([["C", false]])
      expect(atB.edgeStates.map((e) => [e.edgeId, e.released])).toEqual([["B-C", false]])
      expect(atB.actionStates).toContainEqual({ actionId: "beep-1", actionType: "beep", actionStatus: "FINISHED" })

      yield* probe.send(agv, "order", {
        ...order,
        orderUpdateId: 1,
        nodes: order.nodes.slice(2).map((n) => ({ ...n, released: true })),
        edges: order.edges.slice(2).map((e) => ({ ...e, released: true }))
      })
      const { message: atC } = yield* probe.waitFor(agv.serialNumber, "state", (s) => s.lastNodeId === "C" && !s.driving)
      expect([atC.orderUpdateId, atC.nodeStates, atC.edgeStates]).toEqual([1, [], []])
      expect(atC.agvPosition!.x).toBeCloseTo(x, 3)
    })
  )

  it.scopedLive("invalid payloads become typed decoding errors, on the fleet side and on the AGV side", () =>
    Effect.gen(function* () {
      const { agv, probe } = yield* fleet({ patrol: false, visualizationHz: 0 })
      yield* probe.waitFor(agv.serialNumber, "state")

      yield* agv.publishRaw("state", JSON.stringify({ headerId: 1, orderId: 42 }))
      const error = yield* probe.waitForInvalid(agv.serialNumber, "state")
      expect(error._tag).toBe("MessageDecodeError")
      expect(error.issues.map((i) => i.path)).toEqual(expect.arrayContaining(["timestamp", "orderId", "safetyState"]))

      yield* agv.publishRaw("order", "{ not an order")
      const { message } = yield* probe.waitFor(agv.serialNumber, "state", (s) => s.errors.length > 0)
      expect(message.errors[0]).toMatchObject({ errorType: "validationError", errorLevel: "WARNING" })

      yield* probe.send(agv, "order", Order.fromPath({ orderId: "nowhere", path: [{ nodeId: "X99" }] }))
      yield* probe.waitFor(agv.serialNumber, "state", (s) => s.errors.some((e) => e.errorType === "noRouteError"))
    })
  )

  it.scopedLive("flags orders from two nodes within one lease period, not orders a period apart nor one node's", () =>
    Effect.gen(function* () {
      const leasePeriodMs = 1_000
      const { agv, probe, sim } = yield* fleet({ patrol: false, visualizationHz: 0, leasePeriodMs })
      yield* probe.waitFor(agv.serialNumber, "state")
      let n = 0
      /** Sends an order as `node` would (its orderId names it) and waits for the AGV's state that follows it. */
      const orderFrom = (node: string | undefined) =>
        Effect.gen(function* () {
          const orderId = OrderId.make(node, Date.now() + n++)
          const at = probe.log.length - 1
          yield* probe.send(agv, "order", Order.fromPath({ orderId, path: [{ nodeId: sim.map.nodes[n % sim.map.nodes.length].nodeId }] }))
          yield* probe.waitFor(agv.serialNumber, "state", (s) => s.orderId === orderId, at)
        })

      // One node, then a single node's order (no node named): no duplicate.
      yield* orderFrom("node-a")
      yield* orderFrom("node-a")
      yield* orderFrom(undefined)
      expect(yield* sim.duplicateOwners).toEqual([])
      // Another node within the period: flagged, naming both.
      yield* orderFrom("node-b")
      const flagged = yield* sim.duplicateOwners
      expect(flagged.map((d) => [d.agv, d.nodes])).toEqual([[`fleetvisor/${agv.serialNumber}`, ["node-a", "node-b"]]])
      expect(flagged[0].apartMs).toBeLessThan(leasePeriodMs)
      // A period later (a handover after the lease lapsed): not flagged.
      yield* Effect.sleep(leasePeriodMs + 200)
      yield* orderFrom("node-c")
      yield* orderFrom("node-c")
      expect((yield* sim.duplicateOwners).length).toBe(1)
      expect(Object.fromEntries(yield* agv.ordersBy)).toEqual({ "node-a": 2, "node-b": 1, "node-c": 2 })
    })
  )
})
