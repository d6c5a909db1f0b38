import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import Sqlite from "better-sqlite3"
import * as path from "node:path"
import * as Inspection from "../../src/actors/Inspection.js"
import * as TestKit from "../../src/actors/TestKit.js"
import * as FleetNode from "./support/FleetNode.js"

const failureTag = <A, E>(exit: Exit.Exit<A, E>) =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" ? (exit.cause.error as { _tag: string })._tag : Exit.isSuccess(exit) ? "Success" : "Defect"

describe("the fleet in the service, over /ws", () => {
  it.scopedLive("the node's tree holds the fleet under root, before the canvas and the gateway; Hello lists the fleet", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 1 })
      const nodes = yield* node.service.system.snapshot
      const root = Inspection.find(nodes, "root")!
      expect(root.children.map((child) => child.name)).toEqual(["store", "fleet", "gateway"])
      const tree = Inspection.render([Inspection.find(nodes, "fleet")!]).replace(/mailbox=\d+/g, "mailbox=n")
      expect(tree).toBe(TestKit.dedent(`
        fleet (rest_for_one)
        ├─ links (dynamic, 2/∞)
        │  ├─ robot:demo-arm-1 running mailbox=n restarts=0
        │  └─ agv:fleetvisor/demo-0001 running mailbox=n restarts=0
        ├─ mqtt running mailbox=n restarts=0
        ├─ arms running mailbox=n restarts=0
        ├─ control running mailbox=n restarts=0
        ├─ telemetry running mailbox=n restarts=0
        └─ state running mailbox=n restarts=0
      `))
      const client = yield* FleetNode.connect(node.service)
      const hello = yield* client.rpc.Hello({ app: "test", version: "0" })
      expect(hello.features).toContain("fleet")
    }), { timeout: 20_000 })

  it.scopedLive("list, lease, command, contention, an emergency stop without the lease, and a dead holder's lease released at once", () =>
    Effect.gen(function*() {
      // A lease TTL far beyond the test: only the holder's death can free the robot in time.
      const node = yield* FleetNode.start({ arms: 2, agvs: 2, env: { FLEET_LEASE_TTL_MS: "600000" } })
      const [arm, otherArm] = node.arms
      const [agv] = node.agvs

      const holderScope = yield* Scope.make()
      const holder = yield* Scope.extend(FleetNode.connect(node.service), holderScope)
      const other = yield* FleetNode.connect(node.service)

      // Every demo robot is listed.
      const first = yield* other.rpc.FleetSubscribe({}).pipe(Stream.take(1), Stream.runCollect)
      const snapshot = [...first][0]
      expect(snapshot._tag).toBe("FleetSnapshot")
      expect(snapshot.robots.map((r) => r.id).sort()).toEqual([...node.arms, ...node.agvs].sort())
      const events = yield* FleetNode.collect(other.rpc.FleetSubscribe({ robots: [arm] }))

      // The holder takes the arm and commands it; the other client is refused.
      const lease = yield* holder.rpc.FleetAcquire({ robot: arm })
      expect(lease.robot).toBe(arm)
      yield* holder.rpc.FleetCommand({ robot: arm, command: { _tag: "Pause" } })
      yield* holder.rpc.FleetCommand({ robot: arm, command: { _tag: "Continue" } })
      const held = yield* Effect.exit(other.rpc.FleetAcquire({ robot: arm }))
      expect(failureTag(held)).toBe("ControlHeld")
      expect(Exit.isFailure(held) && held.cause._tag === "Fail" && held.cause.error).toMatchObject({ robot: arm, holder: "127.0.0.1" })
      expect(failureTag(yield* Effect.exit(other.rpc.FleetCommand({ robot: arm, command: { _tag: "Pause" } })))).toBe(
        "NotController"
      )
      expect(failureTag(yield* Effect.exit(holder.rpc.FleetCommand({ robot: agv, command: { _tag: "Pause" } })))).toBe(
        "NotController"
      )
      expect(failureTag(yield* Effect.exit(other.rpc.FleetAcquire({ robot: "no/such-robot" })))).toBe("UnknownRobot")
      yield* TestKit.awaitUntil(Effect.sync(() => FleetNode.latest(events).get(arm)?.controlledBy === "127.0.0.1"), {
        waitedFor: `${arm} shown as controlled`
      })

      // The emergency stop needs no lease: the other client stops the held arm.
      yield* other.rpc.FleetEmergencyStop({ robot: arm })
      yield* TestKit.awaitUntil(Effect.sync(() => FleetNode.latest(events).get(arm)?.status === "estop"), {
        waitedFor: `${arm} in estop`
      })
      expect((yield* node.fleet.state).robots.find((r) => r.id === otherArm)?.status).toBe("online")

      // Every command is in the node's audit log: who, which robot, what, and how it ended.
      const db = new Sqlite(path.join(node.service.config.dataDir, "fleetvisor.db"), { readonly: true })
      const audit = db.prepare("SELECT who, robot, command, result, message FROM audit_log ORDER BY id").all()
      db.close()
      expect(audit).toEqual([
        { who: "127.0.0.1", robot: arm, command: "Acquire", result: "ok", message: null },
        { who: "127.0.0.1", robot: arm, command: "Pause", result: "ok", message: null },
        { who: "127.0.0.1", robot: arm, command: "Continue", result: "ok", message: null },
        { who: "127.0.0.1", robot: arm, command: "Acquire", result: "error", message: "ControlHeld" },
        { who: "127.0.0.1", robot: arm, command: "Pause", result: "error", message: "NotController" },
        { who: "127.0.0.1", robot: agv, command: "Pause", result: "error", message: "NotController" },
        { who: "127.0.0.1", robot: "no/such-robot", command: "Acquire", result: "error", message: "UnknownRobot" },
        { who: "127.0.0.1", robot: arm, command: "EmergencyStop", result: "ok", message: null }
      ])

      // The holder's socket closes: its session dies, and the lease goes with it, long before its TTL.
      yield* Scope.close(holderScope, Exit.void)
      yield* TestKit.awaitUntil(
        Effect.map(Effect.exit(other.rpc.FleetAcquire({ robot: arm })), Exit.isSuccess),
        { timeoutMillis: 5_000, waitedFor: "the other client to get the lease of the dead holder" }
      )
      yield* other.rpc.FleetCommand({ robot: arm, command: { _tag: "Reset" } })
      yield* TestKit.awaitUntil(Effect.sync(() => FleetNode.latest(events).get(arm)?.status !== "estop"), {
        waitedFor: `${arm} out of estop after Reset`
      })
    }), { timeout: 20_000 })

  it.scopedLive("an emergency stop of every robot from a client holding no lease pauses the AGVs and stops the arms", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 2 })
      const client = yield* FleetNode.connect(node.service)
      const events = yield* FleetNode.collect(client.rpc.FleetSubscribe({}))
      yield* client.rpc.FleetEmergencyStop({})
      yield* TestKit.awaitUntil(
        Effect.sync(() => {
          const robots = FleetNode.latest(events)
          return [...node.arms, ...node.agvs].every((id) => ["estop", "paused"].includes(robots.get(id)?.status ?? ""))
        }),
        { timeoutMillis: 5_000, waitedFor: "every robot stopped" }
      )
    }), { timeout: 20_000 })
})
