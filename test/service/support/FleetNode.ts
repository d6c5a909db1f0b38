/**
 * The real service with its fleet, started in the test's process on 127.0.0.1 (ephemeral port):
 * a small demo fleet (simulated arms over TCP, simulated AGVs on the test run's real Mosquitto
 * under a topic prefix of the test's own), a SQLite file in a temp directory,
 * and a graceful shutdown when the test's scope closes.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as TestKit from "../../../src/actors/TestKit.js"
import type { FleetService } from "../../../src/apps/fleet/index.js"
import * as FleetvisorClient from "../../../src/client/FleetvisorClient.js"
import * as ServiceConfig from "../../../src/http/ServiceConfig.js"
import * as Main from "../../../src/main.js"
import * as FleetProbe from "../../links/vda5050/support/FleetProbe.js"
import type { FleetEvent, RobotView } from "../../../src/protocol/FleetRpcs.js"

/** A started node and its fleet. */
export interface FleetNode {
  readonly service: Main.Service
  readonly fleet: FleetService
  /** The demo's AGV ids (`fleetvisor/demo-0001`, …) and arm ids (`demo-arm-1`, …). */
  readonly agvs: ReadonlyArray<string>
  readonly arms: ReadonlyArray<string>
}

/**
 * Starts the node with a demo of `arms` arms and `agvs` AGVs; `env` overrides any setting.
 * Resolves once every demo robot is in the fleet's state.
 */
export const start = (
  options: {
    readonly arms?: number
    readonly agvs?: number
    readonly env?: Record<string, string>
    /** Where the node's log lines go; absent: nowhere. */
    readonly logger?: Logger.Logger<unknown, void> | undefined
  } = {}
): Effect.Effect<FleetNode, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-fleet-"))),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )
    const arms = options.arms ?? 2
    const agvCount = options.agvs ?? 3
    const loaded = ServiceConfig.loadConfig(Main.config, new Map(), {
      PORT: "0",
      HOST: "127.0.0.1",
      DATA_DIR: dir,
      CANVAS: "off",
      FLEET_DEMO: "on",
      FLEET_DEMO_ARMS: String(arms),
      FLEET_DEMO_AGVS: String(agvCount),
      FLEET_MQTT_URL: FleetProbe.MOSQUITTO_URL,
      FLEET_MQTT_PREFIX: `fv${process.pid}${Math.random().toString(36).slice(2, 8)}/v2`,
      ...options.env
    })
    if (Either.isLeft(loaded)) throw new Error(loaded.left.join("; "))
    const { canvas, fleet: fleetSettings, service: settings } = loaded.right
    const service = yield* Main.start(settings, canvas, fleetSettings)
    yield* Effect.addFinalizer(() => service.shutdown.pipe(Effect.timeout(Duration.seconds(10)), Effect.ignore))
    const fleet = Option.getOrThrow(service.fleet)
    const armIds = Array.from({ length: arms }, (_, i) => `demo-arm-${i + 1}`)
    const agvIds = Array.from({ length: agvCount }, (_, i) => `fleetvisor/demo-${String(i + 1).padStart(4, "0")}`)
    yield* TestKit.awaitUntil(
      Effect.map(fleet.state, (view) =>
        [...armIds, ...agvIds].every((id) => view.robots.some((r) => r.id === id && r.status === "online"))),
      { timeoutMillis: 12_000, waitedFor: "every demo robot online" }
    )
    return { service, fleet, agvs: agvIds, arms: armIds }
  }).pipe(Effect.provide(
    options.logger === undefined ? Logger.minimumLogLevel(LogLevel.None) : Logger.replace(Logger.defaultLogger, options.logger)
  ))

/** `ws://host:port/ws` of a service. */
export const wsUrl = (service: Main.Service): string => `${service.url.replace(/^http/, "ws")}/ws`

/** A typed client of the service, open; it closes with the scope. */
export const connect = (service: Main.Service) =>
  Effect.gen(function*() {
    const client = yield* FleetvisorClient.make({
      url: wsUrl(service),
      wire: "msgpack",
      disableTracing: true,
      reconnect: { initialDelay: "20 millis", maxDelay: "100 millis" }
    })
    yield* client.ready
    return client
  }).pipe(Effect.provide(NodeSocket.layerWebSocketConstructor))

/** The robots of a `FleetSubscribe` stream, folded: the latest view of each. */
export const latest = (events: ReadonlyArray<FleetEvent>): Map<string, RobotView> => {
  const robots = new Map<string, RobotView>()
  for (const event of events) {
    if (event._tag === "FleetSnapshot") robots.clear()
    for (const robot of event.robots) robots.set(robot.id, robot)
  }
  return robots
}

/** Collects a stream's items into an array, in a fiber of the scope. */
export const collect = <A, E>(stream: Stream.Stream<A, E>) =>
  Effect.gen(function*() {
    const items: Array<A> = []
    yield* stream.pipe(Stream.runForEach((item) => Effect.sync(() => items.push(item))), Effect.forkScoped)
    return items
  })
