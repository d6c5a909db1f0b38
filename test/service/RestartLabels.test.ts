/**
 * Restart counters are labelled by behaviour, never by a robot's name (an AGV's serial number is
 * whatever the broker carries): a crashed arm's link counts as `robot`, an AGV's as `agv`.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestKit from "../../src/actors/TestKit.js"
import * as FleetNode from "./support/FleetNode.js"

describe("restart counters", () => {
  it.scopedLive("label robot links by kind, not by id", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 1 })
      yield* TestKit.crashChild(node.service.system, "robot:demo-arm-1", "a bug")
      yield* TestKit.crashChild(node.service.system, "agv:fleetvisor/demo-0001", "a bug")
      const series = () =>
        Effect.map(node.service.metrics.text, (text) =>
          text.split("\n").filter((line) => line.startsWith("fleetvisor_actor_restarts_total{")))
      const lines = yield* TestKit.awaitUntil(
        Effect.map(series(), (lines) => lines.length >= 2),
        { waitedFor: "both restarts counted" }
      ).pipe(Effect.zipRight(series()))
      expect(lines.sort()).toEqual([
        'fleetvisor_actor_restarts_total{child="agv"} 1',
        'fleetvisor_actor_restarts_total{child="robot"} 1'
      ])
    }), { timeout: 30_000 })
})
