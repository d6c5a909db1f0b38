/**
 * An emergency stop survives `kill -9` of the service: the process is killed between the stop
 * and the next motion, restarted on the same data directory, and neither the arm (the strict
 * RMI simulator, which counts every motion accepted after FRC_Abort without FRC_Reset) nor the
 * AGV (on the real Mosquitto; every message to it is watched) moves until the lease holder's
 * Reset. The service runs as a child process, as systemd runs it.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import * as TestKit from "../../src/actors/TestKit.js"
import * as FleetvisorClient from "../../src/client/FleetvisorClient.js"
import * as RmiSimulator from "../../src/links/rmi/RmiSimulator.js"
import * as AgvSimulator from "../../src/links/vda5050/AgvSimulator.js"
import * as FleetProbe from "../links/vda5050/support/FleetProbe.js"
import { startProcess, type ServiceProcess } from "./support/ServiceProcess.js"

const running: Array<ServiceProcess> = []
afterEach(async () => {
  await Promise.all(running.splice(0).map((service) => service.dispose()))
})

type Client = FleetvisorClient.FleetvisorClient["Type"]

const connect = (service: ServiceProcess) =>
  Effect.gen(function*() {
    const client = yield* FleetvisorClient.make({
      url: `${service.url.replace(/^http/, "ws")}/ws`,
      wire: "msgpack",
      disableTracing: true
    })
    yield* client.ready
    return client
  }).pipe(Effect.provide(NodeSocket.layerWebSocketConstructor))

/** Waits until the service lists every robot in `ids` with a live connection. */
const online = (client: Client, ids: ReadonlyArray<string>) =>
  client.rpc.FleetSubscribe({}).pipe(
    Stream.scan(new Map<string, string | undefined>(), (robots, event) => {
      if (event._tag === "FleetSnapshot") robots.clear()
      for (const robot of event.robots) robots.set(robot.id, robot.connection)
      return robots
    }),
    Stream.filter((robots) => ids.every((id) => robots.get(id) === "online")),
    Stream.runHead,
    Effect.timeout("15 seconds")
  )

const failureTag = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" ? (exit.cause.error as { _tag: string })._tag : Exit.isSuccess(exit) ? "Success" : "Defect"

const move = (x: number) =>
  ({ _tag: "MoveLinear", position: { x, y: 0, z: 300, w: 180, p: 0, r: 0 }, speed: 1_000 }) as const

describe("an emergency stop across kill -9", () => {
  it("holds after the restart: no motion reaches the arm and no order the AGV, until Reset", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-stopkill-"))
    const prefix = FleetProbe.uniquePrefix()
    const scope = Effect.runSync(Scope.make())
    const { agvId, probe, serial, sim } = await Effect.runPromise(
      Effect.gen(function*() {
        const sim = yield* RmiSimulator.make({ port: 0, timeScale: 5 })
        const probe = yield* FleetProbe.make(FleetProbe.MOSQUITTO_URL, prefix)
        const agvs = yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 1 })
        const serial = agvs.agvs[0].serialNumber
        return { sim, probe, serial, agvId: `${agvs.agvs[0].manufacturer}/${serial}` }
      }).pipe(Scope.extend(scope))
    )
    try {
      const env = {
        CANVAS: "off",
        FLEET_DEMO: "off",
        FLEET_RMI_ROBOTS: `arm=127.0.0.1:${sim.port}`,
        FLEET_MQTT_URL: FleetProbe.MOSQUITTO_URL,
        FLEET_MQTT_PREFIX: prefix
      }
      const first = await startProcess(env, { dataDir })
      running.push(first)
      const stopIndex = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const client = yield* connect(first)
        yield* online(client, ["arm", agvId])
        yield* client.rpc.FleetAcquire({ robot: "arm" })
        yield* client.rpc.FleetCommand({ robot: "arm", command: move(520) })
        yield* TestKit.awaitUntil(Effect.map(sim.snapshot, (s) => Math.abs(s.position.X - 520) < 0.01))
        const report = yield* client.rpc.FleetEmergencyStop({})
        expect(report).toEqual({ reached: expect.arrayContaining(["arm", agvId]), latchedOnly: [] })
        return probe.log.length
      })))
      first.child.kill("SIGKILL")
      expect(await first.exited).toBe("SIGKILL")

      const second = await startProcess(env, { dataDir })
      running.push(second)
      await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const client = yield* connect(second)
        yield* online(client, ["arm", agvId])
        const snapshot = yield* client.rpc.FleetSubscribe({}).pipe(Stream.runHead)
        const robots = snapshot._tag === "Some" ? snapshot.value.robots : []
        for (const id of ["arm", agvId]) {
          expect(robots.find((robot) => robot.id === id), id).toMatchObject({ status: "estop", safety: "stopped", stop: { by: "127.0.0.1" } })
        }
        yield* client.rpc.FleetAcquire({ robot: "arm" })
        yield* client.rpc.FleetAcquire({ robot: agvId })
        expect(failureTag(yield* Effect.exit(client.rpc.FleetCommand({ robot: "arm", command: move(560) })))).toBe("RobotStopped")
        expect(failureTag(yield* Effect.exit(client.rpc.FleetCommand({ robot: "arm", command: { _tag: "Continue" } })))).toBe("RobotStopped")
        expect(failureTag(yield* Effect.exit(client.rpc.FleetCommand({
          robot: agvId,
          command: { _tag: "SendOrder", nodes: [{ nodeId: "n1", x: 1, y: 1, mapId: "map" }] }
        })))).toBe("RobotStopped")
        // The restarted link reconnected without starting the arm's RMI program.
        expect(yield* sim.snapshot).toMatchObject({ connected: true, program: "aborted" })
        expect((yield* sim.stats).motionsAfterAbort).toBe(0)
        expect(probe.log.slice(stopIndex).filter((m) => m.topic.serialNumber === serial && m.topic.topic === "order")).toEqual([])

        // Reset by the holder, and only then does anything move.
        yield* client.rpc.FleetCommand({ robot: "arm", command: { _tag: "Reset" } })
        yield* client.rpc.FleetCommand({ robot: "arm", command: move(560) })
        yield* TestKit.awaitUntil(Effect.map(sim.snapshot, (s) => Math.abs(s.position.X - 560) < 0.01))
        expect((yield* sim.stats).motionsAfterAbort).toBe(0)
        yield* TestKit.awaitUntil(
          Effect.map(Effect.exit(client.rpc.FleetCommand({ robot: agvId, command: { _tag: "Reset" } })), Exit.isSuccess),
          { waitedFor: "the AGV reset once it confirmed the stop" }
        )
        yield* client.rpc.FleetCommand({
          robot: agvId,
          command: { _tag: "SendOrder", nodes: [{ nodeId: "n1", x: 1, y: 1, mapId: "map" }] }
        })
        yield* probe.waitFor(serial, "order", () => true, stopIndex)
      })))
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      fs.rmSync(dataDir, { recursive: true, force: true })
    }
  }, 60_000)
})
