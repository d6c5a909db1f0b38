import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Actor, PubSub, TestKit } from "../../../src/actors/index.js"
import type { ActorRef } from "../../../src/actors/ActorRef.js"
import type { ActorSystem } from "../../../src/actors/ActorSystem.js"
import * as Fleet from "../../../src/apps/fleet/Fleet.js"
import * as FleetConfig from "../../../src/apps/fleet/FleetConfig.js"
import * as FleetState from "../../../src/apps/fleet/FleetState.js"
import type { Encoded } from "../../../src/actors/Encoded.js"
import * as RmiSimulator from "../../../src/links/rmi/RmiSimulator.js"
import * as AgvSimulator from "../../../src/links/vda5050/AgvSimulator.js"
import type { FleetUpdate, RobotView } from "../../../src/protocol/FleetRpcs.js"
import { Backoff, Supervisor } from "../../../src/supervisors/index.js"
import { AuditLog, layer as auditLayer } from "../../../src/store/AuditLog.js"
import * as Database from "../../../src/store/Database.js"
import { layer as telemetryLayer, TelemetryLog } from "../../../src/store/TelemetryLog.js"
import * as SqlClient from "@effect/sql/SqlClient"
import { eventually } from "../../links/rmi/eventually.js"
import * as FleetProbe from "../../links/vda5050/support/FleetProbe.js"

const idle = Actor.make<unknown, null>({ name: "session", init: () => null, receive: (s) => s })

/** A stand-in for a gateway session actor: the holder of leases. */
const session = (system: ActorSystem, id: string) =>
  Effect.map(system.spawn(idle, { name: `session:${id}` }), (ref) => ({
    holder: { session: id, user: `user-${id}`, ref: ref as ActorRef<never> } satisfies Fleet.Holder,
    ref
  }))

/** One simulated arm and the fleet over it (no MQTT), in a system of the test. */
const armFleet = (
  extra: Partial<FleetConfig.FleetSettings> = {},
  auditLog?: AuditLog["Type"],
  telemetryLog?: TelemetryLog["Type"]
) =>
  Effect.gen(function*() {
    const sim = yield* RmiSimulator.make({ port: 0, timeScale: 5 })
    const system = yield* TestKit.system()
    const hub = yield* PubSub.make()
    const settings = FleetConfig.make({
      rmiRobots: [{ id: "arm-1", host: "127.0.0.1", port: sim.port }],
      pollHz: 25,
      ...extra
    })
    const fleet = yield* Fleet.make({
      settings,
      hub,
      system,
      auditLog,
      telemetryLog,
      linkBackoff: Backoff.exponential({ min: "100 millis", max: "1 second" })
    })
    const view = (id: string) =>
      Effect.map(fleet.state, (state) => state.robots.find((robot) => robot.id === id) as RobotView)
    yield* eventually(view("arm-1"), (robot) => robot.status === "online")
    return { sim, system, hub, fleet, view }
  })

const move = { _tag: "MoveLinear", position: { x: 520, y: 10, z: 300, w: 180, p: 0, r: 0 }, speed: 500 } as const

describe("Fleet", () => {
  it.scopedLive("renders the fleet subtree with the arm's link under links", () =>
    Effect.gen(function*() {
      const { system } = yield* armFleet()
      yield* TestKit.awaitTree(system, `
        fleet (rest_for_one)
        ├─ links (dynamic, 1/∞)
        │  └─ robot:arm-1 running mailbox=0 restarts=0
        ├─ arms running mailbox=0 restarts=0
        ├─ control running mailbox=0 restarts=0
        └─ state running mailbox=0 restarts=0`)
    }))

  it.scopedLive("nests under the node's root supervisor when started unstarted (DESIGN.md's tree)", () =>
    Effect.gen(function*() {
      const sim = yield* RmiSimulator.make({ port: 0 })
      const system = yield* TestKit.system()
      const fleet = yield* Fleet.makeUnstarted({
        settings: FleetConfig.make({ rmiRobots: [{ id: "arm-1", host: "127.0.0.1", port: sim.port }] }),
        hub: yield* PubSub.make()
      })
      yield* system.spawn(Supervisor.make({ children: [fleet.child] }), { name: "root" })
      yield* eventually(fleet.state, (state) => state.robots[0]?.status === "online")
      yield* TestKit.awaitTree(system, `
        root (one_for_one)
        └─ fleet (rest_for_one)
           ├─ links (dynamic, 1/∞)
           │  └─ robot:arm-1 running mailbox=0 restarts=0
           ├─ arms running mailbox=0 restarts=0
           ├─ control running mailbox=0 restarts=0
           └─ state running mailbox=0 restarts=0`)
    }))

  it.scopedLive("control lease: one holder at a time, typed errors for the others, commands only for the holder", () =>
    Effect.gen(function*() {
      const { fleet, sim, system, view } = yield* armFleet()
      const a = yield* session(system, "a")
      const b = yield* session(system, "b")

      const lease = yield* fleet.acquire("arm-1", a.holder)
      expect(lease.robot).toBe("arm-1")
      expect(yield* Effect.flip(fleet.acquire("arm-1", b.holder))).toMatchObject({ _tag: "ControlHeld", holder: "user-a" })
      expect(yield* Effect.flip(fleet.command("arm-1", b.holder, move))).toMatchObject({ _tag: "NotController" })
      expect(yield* Effect.flip(fleet.renew("arm-1", b.holder))).toMatchObject({ _tag: "NotController" })
      expect(yield* Effect.flip(fleet.release("arm-1", b.holder))).toMatchObject({ _tag: "NotController" })
      expect(yield* Effect.flip(fleet.acquire("arm-9", a.holder))).toMatchObject({ _tag: "UnknownRobot" })
      expect(yield* Effect.flip(fleet.command("arm-1", a.holder, { _tag: "CancelOrder" }))).toMatchObject({
        _tag: "CommandNotSupported"
      })

      yield* fleet.command("arm-1", a.holder, move)
      yield* eventually(sim.snapshot, (s) => Math.abs(s.position.X - 520) < 0.01)
      yield* eventually(view("arm-1"), (robot) => robot.controlledBy === "user-a")

      yield* fleet.release("arm-1", a.holder)
      yield* fleet.acquire("arm-1", b.holder)
      expect(yield* Effect.flip(fleet.command("arm-1", a.holder, move))).toMatchObject({ _tag: "NotController" })
    }))

  it.scopedLive("a lease is released when its holder's session actor dies (monitor), and when its TTL passes", () =>
    Effect.gen(function*() {
      const { fleet, system, view } = yield* armFleet()
      const a = yield* session(system, "a")
      const b = yield* session(system, "b")
      yield* fleet.acquire("arm-1", a.holder)
      yield* system.crash(a.ref, "socket gone")
      yield* eventually(view("arm-1"), (robot) => robot.controlledBy === undefined)
      yield* fleet.acquire("arm-1", b.holder, 1_000)
      const c = yield* session(system, "c")
      expect(yield* Effect.flip(fleet.acquire("arm-1", c.holder))).toMatchObject({ _tag: "ControlHeld" })
      yield* eventually(Effect.exit(fleet.acquire("arm-1", c.holder)), Exit.isSuccess)
    }))

  it.scopedLive("emergency stop: allowed to anyone, aborts the arm; the holder's Reset clears it", () =>
    Effect.gen(function*() {
      const { fleet, sim, system, view } = yield* armFleet()
      const a = yield* session(system, "a")
      yield* fleet.acquire("arm-1", a.holder)
      yield* fleet.emergencyStop(undefined, "somebody")
      yield* eventually(sim.snapshot, (s) => s.program === "aborted")
      yield* eventually(view("arm-1"), (robot) => robot.status === "estop")
      expect(yield* Effect.flip(fleet.emergencyStop("arm-9", "somebody"))).toMatchObject({ _tag: "UnknownRobot" })

      yield* fleet.command("arm-1", a.holder, { _tag: "Reset" })
      yield* eventually(view("arm-1"), (robot) => robot.status === "online")
      yield* fleet.command("arm-1", a.holder, move)
      yield* eventually(sim.snapshot, (s) => Math.abs(s.position.X - 520) < 0.01)
    }))

  it.scopedLive("publishes conflated view updates with consecutive ticks, encoded once", () =>
    Effect.gen(function*() {
      const { fleet, hub } = yield* armFleet()
      const updates = yield* PubSub.subscribeQueue<Encoded<typeof FleetUpdate.Type>>(hub, FleetState.ViewsTopic)
      const first = yield* Queue.take(updates)
      const second = yield* Queue.take(updates)
      expect(second.value.tick).toBe(first.value.tick + 1)
      expect(second.value.robots.map((r) => r.id)).toEqual(["arm-1"])
      expect((yield* fleet.state).tick).toBeGreaterThanOrEqual(second.value.tick)
    }))

  it.scopedLive("writes every control action to the audit log: who, which robot, what, and how it ended", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-fleet-"))),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      )
      const store = yield* Layer.build(
        auditLayer.pipe(Layer.provide(Database.layer({ filename: path.join(dir, "audit.db") })))
      )
      const log = Context.get(store, AuditLog)
      const { fleet, system } = yield* armFleet({}, log)
      const a = yield* session(system, "a")
      yield* fleet.acquire("arm-1", a.holder)
      yield* fleet.command("arm-1", a.holder, move)
      yield* Effect.flip(fleet.command("arm-1", a.holder, { _tag: "SendOrder", nodes: [{ nodeId: "n", x: 0, y: 0, mapId: "m" }] }))
      yield* fleet.emergencyStop("arm-1", "user-b")
      yield* Effect.flip(fleet.renew("arm-1", a.holder, 10 ** 15))
      yield* fleet.renew("arm-1", a.holder)
      yield* fleet.release("arm-1", a.holder)
      const rows = yield* log.query({ robot: "arm-1", limit: 10 })
      expect(rows.map(({ command, message, result, who }) => ({ who, command, result, message })).reverse()).toEqual([
        { who: "user-a", command: "Acquire", result: "ok", message: undefined },
        { who: "user-a", command: "MoveLinear", result: "ok", message: undefined },
        { who: "user-a", command: "SendOrder", result: "error", message: "CommandNotSupported" },
        { who: "user-b", command: "EmergencyStop", result: "ok", message: undefined },
        { who: "user-a", command: "Renew", result: "error", message: "InvalidRequest" },
        { who: "user-a", command: "Renew", result: "ok", message: undefined },
        { who: "user-a", command: "Release", result: "ok", message: undefined }
      ])
    }))

  it.scopedLive("records the arms' telemetry in the TelemetryLog, off the event loop", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-fleet-"))),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      )
      const store = yield* Layer.build(
        telemetryLayer().pipe(Layer.provideMerge(Database.layer({ filename: path.join(dir, "telemetry.db") })))
      )
      const log = Context.get(store, TelemetryLog)
      const { system } = yield* armFleet({}, undefined, log)
      expect(yield* system.render).toContain("├─ telemetry running")
      const rows = yield* eventually(
        Effect.zipRight(
          log.flush,
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            sql<{ robot: string; kind: string; payload: string }>`SELECT robot, kind, payload FROM telemetry`)
        ).pipe(Effect.provide(store)),
        (rows) => rows.length >= 5
      )
      expect(rows[0]).toMatchObject({ robot: "arm-1", kind: "arm" })
      expect(JSON.parse(rows[0].payload)).toMatchObject({ programStatus: "running", position: { X: 500 } })
    }))

  it.scopedLive("AGVs over Mosquitto: discovered into the fleet, commanded by the holder, stopped by anyone", () =>
    Effect.gen(function*() {
      const prefix = FleetProbe.uniquePrefix()
      const probe = yield* FleetProbe.make(FleetProbe.MOSQUITTO_URL, prefix)
      const system = yield* TestKit.system()
      const fleet = yield* Fleet.make({
        settings: FleetConfig.make({ mqttUrl: FleetProbe.MOSQUITTO_URL, mqttPrefix: prefix, agvGraceMs: 300 }),
        hub: yield* PubSub.make(),
        system
      })
      const sim = yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 2, visualizationHz: 10 })
      const [agv, other] = sim.agvs
      const id = `fleetvisor/${agv.serialNumber}`
      const view = (robot: string) =>
        Effect.map(fleet.state, (state) => state.robots.find((r) => r.id === robot))
      yield* eventually(view(id), (robot) => robot?.status === "online")

      const a = yield* session(system, "a")
      yield* fleet.acquire(id, a.holder)
      yield* fleet.command(id, a.holder, { _tag: "Pause" })
      yield* probe.waitFor(agv.serialNumber, "state", (s) => s.paused === true)
      yield* eventually(view(id), (robot) => robot?.status === "paused")
      yield* fleet.command(id, a.holder, { _tag: "Resume" })
      yield* probe.waitFor(agv.serialNumber, "state", (s) => s.paused === false)

      yield* fleet.emergencyStop(id, "user-b")
      yield* probe.waitFor(agv.serialNumber, "state", (s) => s.paused === true)
      yield* eventually(view(id), (robot) => robot?.status === "estop")

      yield* other.kill
      yield* eventually(view(`fleetvisor/${other.serialNumber}`), (robot) => robot?.status === "disconnected")
      yield* TestKit.awaitTree(system, `
        fleet (rest_for_one)
        ├─ links (dynamic, 1/∞)
        │  └─ agv:fleetvisor/sim-0001 running mailbox=0 restarts=0
        ├─ mqtt running mailbox=0 restarts=0
        ├─ arms running mailbox=0 restarts=0
        ├─ control running mailbox=0 restarts=0
        └─ state running mailbox=0 restarts=0
        session:a running mailbox=0 restarts=0`)
    }))
})
