/**
 * The real service, started in the test's process on 127.0.0.1 (ephemeral port) with a SQLite
 * file in a temp directory, and shut down gracefully when the test's scope closes.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as FleetvisorClient from "../../../src/client/FleetvisorClient.js"
import * as ServiceConfig from "../../../src/http/ServiceConfig.js"
import * as Main from "../../../src/main.js"
import type * as Subprotocol from "../../../src/protocol/Subprotocol.js"

/** A fresh directory, removed when the scope closes. */
export const tempDirectory: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-service-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/**
 * The test configuration: env-style overrides on top of port 0, 127.0.0.1, a temp directory and
 * a small canvas (64×64, no cooldown).
 */
export const config = (dataDir: string, env: Record<string, string> = {}) => {
  const loaded = ServiceConfig.loadConfig(Main.config, new Map(), {
    PORT: "0",
    HOST: "127.0.0.1",
    DATA_DIR: dataDir,
    CANVAS_WIDTH: "64",
    CANVAS_HEIGHT: "64",
    CANVAS_COOLDOWN: "0 millis",
    ...env
  })
  if (Either.isLeft(loaded)) throw new Error(loaded.left.join("; "))
  return loaded.right
}

/** Starts the service; it shuts down (gracefully) when the scope closes. Logs are silenced. */
export const start = (env: Record<string, string> = {}): Effect.Effect<Main.Service, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = yield* tempDirectory
    const { canvas, service: settings } = config(dir, env)
    const service = yield* Main.start(settings, canvas)
    yield* Effect.addFinalizer(() => service.shutdown.pipe(Effect.timeout(Duration.seconds(10)), Effect.ignore))
    return service
  }).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.None)))

/** `ws://host:port/ws` of a service. */
export const wsUrl = (service: Main.Service): string => `${service.url.replace(/^http/, "ws")}/ws`

/** A typed client of the service, open. */
export const connect = (service: Main.Service, wire: Subprotocol.WireFormat = "msgpack") =>
  Effect.gen(function*() {
    const client = yield* FleetvisorClient.make({
      url: wsUrl(service),
      wire,
      disableTracing: true,
      reconnect: { initialDelay: "20 millis", maxDelay: "100 millis" }
    })
    yield* client.ready
    return client
  }).pipe(Effect.provide(NodeSocket.layerWebSocketConstructor))
