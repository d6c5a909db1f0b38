/**
 * `fleet/state` crashes again and again while an operator holds leases and the AGVs report: it
 * keeps nothing that matters (leases, latches and the roster live above it), so every lease
 * survives, every live robot is online and commandable again within a second of each restart
 * (the figure is printed), an emergency stop sent while it is down still reaches its robot, and
 * nothing else in the tree restarts with it, the stop channel included. A dashboard subscribed
 * throughout keeps receiving updates after each restart.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Stream from "effect/Stream"
import { performance } from "node:perf_hooks"
import type { ActorRef } from "../../src/actors/ActorRef.js"
import * as Inspection from "../../src/actors/Inspection.js"
import * as Registry from "../../src/actors/Registry.js"
import * as TestKit from "../../src/actors/TestKit.js"
import * as FleetNode from "../service/support/FleetNode.js"

const rounds = 4

describe("fleet/state restarting", () => {
  it.scopedLive("keeps every lease; every live robot is online and commandable within 1 s of each restart; a stop meanwhile still lands", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 3, env: { FLEET_STOP_PORT: "0", FLEET_LEASE_TTL_MS: "600000" } })
      const { fleet, service } = node
      const [arm] = node.arms
      const [agv, bystander] = node.agvs
      const robots = [...node.arms, ...node.agvs]
      const operator = yield* FleetNode.connect(service)
      yield* operator.rpc.FleetAcquire({ robot: arm })
      yield* operator.rpc.FleetAcquire({ robot: agv })
      const stateRef = () => Registry.unsafeWhereis(fleet.registry, "state") as ActorRef<never> | undefined
      const dashboard = yield* FleetNode.connect(service)
      const frames: Array<number> = []
      yield* dashboard.rpc.FleetSubscribe({}).pipe(
        Stream.runForEach(() => Effect.sync(() => frames.push(performance.now()))),
        Effect.forkScoped
      )

      const recoveries: Array<number> = []
      for (let round = 0; round < rounds; round++) {
        const old = stateRef()!
        yield* service.system.crash(old, "chaos")
        if (round === 0) {
          // An emergency stop while `state` is down: it needs nobody but the link.
          const report = yield* operator.rpc.FleetEmergencyStop({ robot: bystander })
          expect(report).toEqual({ reached: [bystander], latchedOnly: [] })
        }
        yield* TestKit.awaitUntil(Effect.sync(() => stateRef() !== undefined && stateRef() !== old), {
          timeoutMillis: 10_000,
          waitedFor: "fleet/state restarted"
        })
        const restartedAt = performance.now()
        yield* TestKit.awaitUntil(
          Effect.map(fleet.state, (view) =>
            robots.every((id) => view.robots.find((robot) => robot.id === id)?.connection === "online")),
          { timeoutMillis: 5_000, waitedFor: "every robot online again" }
        )
        recoveries.push(Math.round(performance.now() - restartedAt))
        yield* TestKit.awaitUntil(Effect.sync(() => frames.some((at) => at > restartedAt)), {
          timeoutMillis: 3_000,
          waitedFor: "the dashboard's first update from the restarted fleet/state"
        })

        const view = yield* fleet.state
        expect(view.robots.find((robot) => robot.id === arm)?.controlledBy).toBe("127.0.0.1")
        expect(view.robots.find((robot) => robot.id === agv)?.controlledBy).toBe("127.0.0.1")
        expect(view.robots.find((robot) => robot.id === bystander)).toMatchObject({ status: "estop", safety: "stopped" })
        yield* operator.rpc.FleetRenew({ robot: arm })
        yield* operator.rpc.FleetCommand({ robot: agv, command: { _tag: "StateRequest" } })
        yield* operator.rpc.FleetCommand({ robot: arm, command: { _tag: "Pause" } })
        yield* operator.rpc.FleetCommand({ robot: arm, command: { _tag: "Continue" } })
      }
      console.log(JSON.stringify({ test: "StateRestart", rounds, recoveryMs: recoveries, maxMs: Math.max(...recoveries) }))
      expect(Math.max(...recoveries)).toBeLessThan(1_000)

      // Only `state` restarted; the operator can still reset the robot stopped while it was down.
      const nodes = yield* service.system.snapshot
      expect(Inspection.find(nodes, "state")?.restarts).toBe(rounds)
      for (const name of ["fleet", "links", "mqtt", "arms", "stop", "control", "telemetry", `robot:${arm}`, `agv:${agv}`]) {
        expect(Inspection.find(nodes, name)?.restarts, name).toBe(0)
      }
      yield* operator.rpc.FleetAcquire({ robot: bystander })
      yield* TestKit.awaitUntil(
        Effect.map(Effect.exit(operator.rpc.FleetCommand({ robot: bystander, command: { _tag: "Reset" } })), Exit.isSuccess),
        { waitedFor: `${bystander} reset once it confirmed the stop` }
      )
    }), { timeout: 60_000 })
})
