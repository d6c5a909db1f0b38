/**
 * A robot commanded through the node that runs it (issue #16), with two service processes on a
 * Redis of the test's own and their real node link: node `a` runs a simulated arm; a session on
 * node `b` takes its lease (a session on `a` is then refused), moves it and stops it through `a`.
 * Then `a` is killed with SIGKILL: `b` runs the arm, the session on `b` still holds its lease, and
 * after a Reset it moves the arm on its own node.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { describe, expect, it } from "vitest"
import * as FleetvisorClient from "../../src/client/FleetvisorClient.js"
import * as RmiSimulator from "../../src/links/rmi/RmiSimulator.js"
import { type ServiceProcess, startProcess } from "../service/support/ServiceProcess.js"
import { clusterFixture, linksOf, until } from "./support/Cluster.js"

const cluster = clusterFixture()
const { running, scope } = cluster

/** A client of `service`'s gateway (one session) for the life of `scope`. */
const clientOf = (service: ServiceProcess, scope: Scope.Scope) =>
  Effect.runPromise(Effect.gen(function*() {
    const client = yield* FleetvisorClient.make({ url: `${service.url.replace(/^http/, "ws")}/ws`, wire: "msgpack", disableTracing: true })
    yield* client.ready
    return client
  }).pipe(Scope.extend(scope), Effect.provide(NodeSocket.layerWebSocketConstructor)))

describe("a robot another node runs", () => {
  it("is held, moved and stopped from a session on any node, and its lease outlives the node that ran it", async () => {
    const arm = await Effect.runPromise(RmiSimulator.make({ port: 0, timeScale: 5 }).pipe(Scope.extend(scope)))
    const env = {
      CANVAS: "off",
      FLEET_DEMO: "off",
      FLEET_RMI_ROBOTS: `arm-1=127.0.0.1:${arm.port}`,
      FLEET_MQTT_URL: "mqtt://127.0.0.1:1",
      REDIS_URL: cluster.redis.url,
      CLUSTER_LEASE_TTL_MS: "1500"
    }
    // a alone first: it takes the arm (placement is sticky).
    const a = await startProcess({ ...env, NODE_ID: "node-a" })
    running.push(a)
    await until("the arm's link on a", 20_000, async () => (await linksOf(a)).has("robot:arm-1"))
    const b = await startProcess({ ...env, NODE_ID: "node-b" })
    running.push(b)
    const sessions = Effect.runSync(Scope.make())
    const onB = await clientOf(b, sessions)
    const onA = await clientOf(a, sessions)
    const stats = () => Effect.runPromise(arm.stats)
    const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)

    // b hears of the arm from a's views, online.
    await until("the arm online on b", 10_000, async () => {
      const first = await run(onB.rpc.FleetSubscribe({}).pipe(Stream.runHead, Effect.timeout("5 seconds"), Effect.option))
      return Option.isSome(first) && Option.isSome(first.value) &&
        first.value.value.robots.some((robot) => robot.id === "arm-1" && robot.connection === "online")
    })
    await run(onB.rpc.FleetAcquire({ robot: "arm-1", ttlMs: 60_000 }))
    const held = await run(Effect.flip(onA.rpc.FleetAcquire({ robot: "arm-1" })))
    expect(held._tag).toBe("ControlHeld")

    // b's session moves the arm a runs.
    const accepted = (await stats()).instructionsAccepted
    await run(onB.rpc.FleetCommand({ robot: "arm-1", command: { _tag: "MoveJoint", joints: [15, 0, 0, 0, 0, 0], speed: 20 } }))
    await until("the motion at the controller", 5_000, async () => (await stats()).instructionsAccepted > accepted)

    // A stop sent to b aborts the arm on a.
    const aborts = (await stats()).abortsReceived
    const report = await run(onB.rpc.FleetEmergencyStop({ robot: "arm-1" }))
    expect(report?.reached).toEqual(["arm-1"])
    expect((await stats()).abortsReceived).toBeGreaterThan(aborts)

    // a dies: b runs the arm, and its session still holds it.
    a.child.kill("SIGKILL")
    await until("the arm's link on b", 10_000, async () => (await linksOf(b)).has("robot:arm-1"))
    await run(Effect.retry(onB.rpc.FleetCommand({ robot: "arm-1", command: { _tag: "Reset" } }), {
      times: 40,
      schedule: Schedule.spaced("250 millis")
    }))
    const before = (await stats()).instructionsAccepted
    await run(onB.rpc.FleetCommand({ robot: "arm-1", command: { _tag: "MoveJoint", joints: [0, 0, 0, 0, 0, 0], speed: 20 } }))
    await until("the motion from b at the controller", 5_000, async () => (await stats()).instructionsAccepted > before)
    await run(Scope.close(sessions, Exit.void))
  }, 90_000)
})
