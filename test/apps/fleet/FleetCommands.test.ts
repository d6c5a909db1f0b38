import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Actor, ActorSystem, PubSub, TestKit } from "../../../src/actors/index.js"
import type { ActorRef } from "../../../src/actors/ActorRef.js"
import * as FleetvisorClient from "../../../src/client/FleetvisorClient.js"
import * as Fleet from "../../../src/apps/fleet/Fleet.js"
import * as FleetApp from "../../../src/apps/fleet/index.js"
import * as FleetConfig from "../../../src/apps/fleet/FleetConfig.js"
import * as RmiSimulator from "../../../src/links/rmi/RmiSimulator.js"
import * as AgvSimulator from "../../../src/links/vda5050/AgvSimulator.js"
import {
  CommandNotSupported,
  Lease,
  NotController,
  RobotCommand,
  RobotId,
  RobotOffline,
  type RobotView,
  UnknownRobot
} from "../../../src/protocol/FleetRpcs.js"
import { AuditLog, layer as auditLayer } from "../../../src/store/AuditLog.js"
import * as Database from "../../../src/store/Database.js"
import { Backoff } from "../../../src/supervisors/index.js"
import { eventually } from "../../links/rmi/eventually.js"
import * as FleetProbe from "../../links/vda5050/support/FleetProbe.js"
import * as TestClients from "../../protocol/support/TestClients.js"
import * as TestGateway from "../../protocol/support/TestGateway.js"
import * as ArmFleet from "./support/ArmFleet.js"

const idle = Actor.make<unknown, null>({ name: "session", init: () => null, receive: (s) => s })

/** A lease holder with a session actor of its own. */
const holder = (system: ActorSystem.ActorSystem, id: string) =>
  Effect.map(system.spawn(idle, { name: `session:${id}` }), (ref) =>
    ({ session: id, user: `user-${id}`, ref: ref as ActorRef<never> }) satisfies Fleet.Holder)

/** An audit log in a fresh SQLite file, removed with the scope. */
const auditLog = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-commands-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  const store = yield* Layer.build(auditLayer.pipe(Layer.provide(Database.layer({ filename: path.join(dir, "audit.db") }))))
  return Context.get(store, AuditLog)
})

/** One simulated arm, the fleet over it with an audit log, and a holder of its lease. */
const armFleet = Effect.gen(function*() {
  const sim = yield* RmiSimulator.make({ port: 0, timeScale: 5 })
  const system = yield* TestKit.system()
  const log = yield* auditLog
  const fleet = yield* Fleet.make({
    settings: FleetConfig.make({ rmiRobots: [{ id: "arm-1", host: "127.0.0.1", port: sim.port }], pollHz: 25 }),
    hub: yield* PubSub.make(),
    system,
    auditLog: log,
    linkBackoff: Backoff.exponential({ min: "100 millis", max: "1 second" })
  })
  const view = Effect.map(fleet.state, (state) => state.robots.find((robot) => robot.id === "arm-1") as RobotView)
  yield* eventually(view, (robot) => robot.status === "online")
  const a = yield* holder(system, "a")
  yield* fleet.acquire("arm-1", a)
  return { sim, fleet, log, view, a }
})

const target = [30, 20, -30, 10, -20, 15] as const

describe("arm commands the controller refuses", () => {
  it.scopedLive("an RMI refusal is a CommandRefused with the RMIT code, and the audit log records it", () =>
    Effect.gen(function*() {
      const { a, fleet, log, sim } = yield* armFleet
      const notPaused = yield* Effect.flip(fleet.command("arm-1", a, { _tag: "Continue" }))
      expect(notPaused).toMatchObject({
        _tag: "CommandRefused",
        robot: "arm-1",
        command: "Continue",
        code: "RMIT-010",
        reason: "FRC_Continue refused: RMIT-010 TP Program is Not Paused (2556938)"
      })

      yield* fleet.emergencyStop("arm-1", "user-b")
      yield* eventually(sim.snapshot, (s) => s.program === "aborted")
      expect(yield* Effect.flip(fleet.command("arm-1", a, { _tag: "Pause" }))).toMatchObject({
        _tag: "CommandRefused",
        command: "Pause",
        code: "RMIT-009"
      })
      expect(yield* Effect.flip(fleet.command("arm-1", a, { _tag: "MoveJoint", joints: [1, 2, 3], speed: 50 })))
        .toEqual(expect.objectContaining({ _tag: "InvalidRequest", field: "joints", reason: expect.stringMatching(/6 to 9/) }))

      const rows = yield* log.query({ robot: "arm-1", limit: 10 })
      expect(rows.map(({ command, message, result }) => ({ command, result, message })).reverse()).toEqual([
        { command: "Acquire", result: "ok", message: undefined },
        { command: "Continue", result: "error", message: "CommandRefused" },
        { command: "EmergencyStop", result: "ok", message: undefined },
        { command: "Pause", result: "error", message: "CommandRefused" },
        { command: "MoveJoint", result: "error", message: "InvalidRequest" }
      ])
    }))

  it.scopedLive("MoveJoint moves the simulated arm's joints to the target, and the view shows them", () =>
    Effect.gen(function*() {
      const { a, fleet, sim, view } = yield* armFleet
      yield* fleet.command("arm-1", a, { _tag: "MoveJoint", joints: target, speed: 100 })
      const near = (joints: ReadonlyArray<number>) => target.every((angle, i) => Math.abs(joints[i] - angle) < 0.01)
      const done = yield* eventually(sim.snapshot, (s) => near(Object.values(s.joints)))
      expect(done.outstanding).toBe(0)
      yield* eventually(view, (robot) => robot.kind === "arm" && near(robot.joints))
    }))
})

describe("AGV commands that do not validate", () => {
  it.scopedLive("an order VDA 5050 refuses is a CommandRefused with code validationError (over Mosquitto)", () =>
    Effect.gen(function*() {
      const prefix = FleetProbe.uniquePrefix()
      const system = yield* TestKit.system()
      const fleet = yield* Fleet.make({
        settings: FleetConfig.make({ mqttUrl: FleetProbe.MOSQUITTO_URL, mqttPrefix: prefix, agvGraceMs: 300 }),
        hub: yield* PubSub.make(),
        system
      })
      const sim = yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 1 })
      const id = `fleetvisor/${sim.agvs[0].serialNumber}`
      yield* eventually(fleet.state, (state) => state.robots.some((r) => r.id === id && r.status === "online"))
      const a = yield* holder(system, "a")
      yield* fleet.acquire(id, a)
      const refused = yield* Effect.flip(
        fleet.command(id, a, { _tag: "SendOrder", nodes: [{ nodeId: "n1", x: 1, y: 1, theta: 4, mapId: "map" }] })
      )
      expect(refused).toMatchObject({ _tag: "CommandRefused", robot: id, command: "SendOrder", code: "validationError" })
      expect((refused as { reason: string }).reason).toMatch(/theta/)
    }))
})

/** A simulated arm, the fleet over it, its RPC handlers behind the stand-in gateway. */
const server = ArmFleet.server()

/** A client built before `CommandRefused` existed: its `FleetCommand` knows only the v1 errors. */
class OlderFleetRpcs extends RpcGroup.make(
  Rpc.make("FleetAcquire", {
    payload: { robot: RobotId, ttlMs: Schema.optional(Schema.Int) },
    success: Lease,
    error: UnknownRobot
  }),
  Rpc.make("FleetCommand", {
    payload: { robot: RobotId, command: RobotCommand },
    error: Schema.Union(NotController, UnknownRobot, RobotOffline, CommandNotSupported)
  })
) {}

describe("CommandRefused on the wire", () => {
  it.scopedLive("reaches the client typed, with its code, in both wire formats", () =>
    Effect.gen(function*() {
      const fleet = yield* FleetApp.Fleet
      yield* eventually(fleet.state, (s) => s.robots.some((r) => r.id === "arm-1" && r.status === "online"))
      for (const wire of ["json", "msgpack"] as const) {
        const client = yield* TestClients.connect(wire)
        yield* client.rpc.FleetAcquire({ robot: "arm-1", ttlMs: 10_000 })
        const refused = yield* Effect.flip(client.rpc.FleetCommand({ robot: "arm-1", command: { _tag: "Continue" } }))
        expect(refused, wire).toMatchObject({ _tag: "CommandRefused", robot: "arm-1", command: "Continue", code: "RMIT-010" })
        yield* client.rpc.FleetRelease({ robot: "arm-1" })
      }
    }).pipe(Effect.provide(server)))

  it.scopedLive("an older client without CommandRefused sees a defect, as it did before the error existed", () =>
    Effect.gen(function*() {
      const fleet = yield* FleetApp.Fleet
      yield* eventually(fleet.state, (s) => s.robots.some((r) => r.id === "arm-1" && r.status === "online"))
      const { url } = yield* TestGateway.TestGateway
      const older = yield* FleetvisorClient.makeWith(OlderFleetRpcs, {
        url,
        wire: "json",
        disableTracing: true,
        reconnect: TestClients.fastReconnect
      })
      yield* older.ready
      yield* older.rpc.FleetAcquire({ robot: "arm-1" })
      const exit = yield* Effect.exit(older.rpc.FleetCommand({ robot: "arm-1", command: { _tag: "Continue" } }))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      // The session survives: the next command goes through.
      yield* older.rpc.FleetCommand({ robot: "arm-1", command: { _tag: "Pause" } })
    }).pipe(Effect.provide([server, NodeSocket.layerWebSocketConstructor])))
})
