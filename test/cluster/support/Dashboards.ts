/**
 * Dashboards of the cluster's process tests: a session on a node's gateway (`FleetSubscribe`
 * over WebSocket, MessagePack), kept open in the background or asked once.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as FleetvisorClient from "../../../src/client/FleetvisorClient.js"
import type { RobotView } from "../../../src/protocol/FleetRpcs.js"
import type { ServiceProcess } from "../../service/support/ServiceProcess.js"

type Client = FleetvisorClient.FleetvisorClient["Type"]

const clientOf = (service: ServiceProcess) =>
  FleetvisorClient.make({ url: `${service.url.replace(/^http/, "ws")}/ws`, wire: "msgpack", disableTracing: true })

/** Runs `f` with a client of `service`'s gateway (one session, closed after). */
export const withClient = <A, E>(service: ServiceProcess, f: (client: Client) => Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const client = yield* clientOf(service)
    yield* client.ready
    return yield* f(client)
  })).pipe(Effect.provide(NodeSocket.layerWebSocketConstructor)))

/**
 * Subscribes a new dashboard to `service`'s fleet and resolves once what it shows satisfies
 * `test` (by robot id); fails after `timeoutMs`, or if a snapshot lists a robot twice.
 */
export const untilView = (
  service: ServiceProcess,
  test: (robots: ReadonlyMap<string, RobotView>) => boolean,
  timeoutMs = 10_000
): Promise<void> =>
  withClient(service, (client) =>
    client.rpc.FleetSubscribe({}).pipe(
      Stream.scan(new Map<string, RobotView>(), (robots, event) => {
        if (event._tag === "FleetSnapshot") {
          robots.clear()
          const listed = event.robots.map((robot) => robot.id)
          if (new Set(listed).size !== listed.length) throw new Error(`a robot listed twice: ${listed.join(", ")}`)
        }
        for (const robot of event.robots) robots.set(robot.id, robot)
        return robots
      }),
      Stream.filter(test),
      Stream.runHead,
      Effect.timeoutFail({ duration: timeoutMs, onTimeout: () => new Error(`a dashboard of ${service.url} waited ${timeoutMs} ms in vain`) }),
      Effect.asVoid
    ))

/** A dashboard kept open in the background: what it shows, and what it got wrong. */
export interface Dashboard {
  readonly node: string
  /** The latest view of each robot. */
  readonly robots: Map<string, RobotView>
  /** A robot listed twice in a snapshot, a tick that did not grow. */
  readonly problems: Array<string>
  /** Whether its subscription ended (its session closed, its node died). */
  readonly ended: () => boolean
  readonly close: () => Promise<void>
}

/** Opens a dashboard on `service` that keeps what it receives until `close` (or its node's end). */
export const openDashboard = (service: ServiceProcess, node: string): Dashboard => {
  const robots = new Map<string, RobotView>()
  const problems: Array<string> = []
  let ended = false
  let lastTick = -Infinity
  const fiber = Effect.runFork(Effect.scoped(Effect.gen(function*() {
    const client = yield* clientOf(service)
    yield* client.ready
    yield* client.rpc.FleetSubscribe({}).pipe(Stream.runForEach((event) =>
      Effect.sync(() => {
        if (event.tick <= lastTick) problems.push(`${node}: tick ${event.tick} after ${lastTick}`)
        lastTick = event.tick
        if (event._tag === "FleetSnapshot") {
          const listed = event.robots.map((robot) => robot.id)
          if (new Set(listed).size !== listed.length) problems.push(`${node}: a robot listed twice: ${listed.join(", ")}`)
        }
        for (const robot of event.robots) robots.set(robot.id, robot)
      })))
  })).pipe(
    Effect.provide(NodeSocket.layerWebSocketConstructor),
    Effect.ignore,
    Effect.ensuring(Effect.sync(() => void (ended = true)))
  ))
  return {
    node,
    robots,
    problems,
    ended: () => ended,
    close: () => Effect.runPromise(Fiber.interrupt(fiber)).then(() => undefined)
  }
}
