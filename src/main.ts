/**
 * The fleetvisor service: configuration, the store, the RPC bridge, the actor tree, systemd
 * notifications and the graceful shutdown.
 *
 * ```text
 * root (one_for_one)
 * ├─ store running mailbox=0 restarts=0
 * ├─ fleet (rest_for_one)
 * │  ├─ links (dynamic, 15/∞)     robot:<arm> and agv:<manufacturer>/<serial>
 * │  ├─ mqtt running mailbox=0 restarts=0
 * │  ├─ arms running mailbox=0 restarts=0
 * │  ├─ state running mailbox=0 restarts=0
 * │  ├─ control running mailbox=0 restarts=0
 * │  └─ telemetry running mailbox=0 restarts=0
 * ├─ canvas running mailbox=0 restarts=0
 * └─ gateway (rest_for_one)
 *    ├─ listener running mailbox=0 restarts=0
 *    ├─ sessions (dynamic, 0/20000)   session:<id>, one per /ws WebSocket
 *    ├─ foxglove (dynamic, 0/64)      foxglove:<n>, one per /foxglove client (with the fleet)
 *    └─ streams (dynamic, 0/1000)     stream:<n>, one per Server-Sent Events stream
 * ```
 *
 * With nothing configured (no `FLEET_RMI_ROBOTS`, no `FLEET_MQTT_URL`), the fleet is a demo:
 * simulated arms and AGVs on an embedded MQTT broker, so the dashboard at `/fleet/` is alive at
 * once. `FLEET=off` runs the node without a fleet (its RPCs answer from an empty one).
 *
 * Shutdown (SIGTERM or SIGINT): `/readyz` turns 503 and upgrades are refused, systemd hears
 * STOPPING=1, every session and Foxglove client closes with 1001 and every event stream ends
 * (`Gateway.drain`), the tree stops youngest first (the store flushes
 * the telemetry log), the database closes, and the process exits 0. If that takes longer than
 * `SHUTDOWN_TIMEOUT` the process exits 1; a second signal exits at once.
 *
 * SIGHUP reloads: the TLS certificate and key (`TLS_CERT_FILE`) are read again and served to new
 * handshakes on both ports; open connections stay. A reload that fails keeps the certificate in use.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import type { IncomingMessage } from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import { fileURLToPath } from "node:url"
import { bundle } from "../web/build.js"
import type * as Actor from "./actors/Actor.js"
import * as ActorError from "./actors/ActorError.js"
import type { ActorRef as ActorRefOf, Reply } from "./actors/ActorRef.js"
import * as ActorSystem from "./actors/ActorSystem.js"
import * as ExitReason from "./actors/ExitReason.js"
import * as Registry from "./actors/Registry.js"
import { Canvas, CanvasConfig, CanvasHandlers, CanvasStream } from "./apps/canvas/index.js"
import * as FleetApp from "./apps/fleet/index.js"
import * as FleetConfig from "./apps/fleet/FleetConfig.js"
import * as FleetMetrics from "./apps/fleet/FleetMetrics.js"
import type { StopChannelAccess } from "./apps/fleet/StopChannel.js"
import * as LinkEvent from "./links/LinkEvent.js"
import * as AdminRoutes from "./http/AdminRoutes.js"
import * as CanvasUnavailable from "./http/CanvasUnavailable.js"
import * as Authenticator from "./http/Authenticator.js"
import * as FleetHandlers from "./http/FleetHandlers.js"
import * as FleetStream from "./http/FleetStream.js"
import * as Foxglove from "./http/Foxglove.js"
import * as Gateway from "./http/Gateway.js"
import type * as Listener from "./http/Listener.js"
import * as GatewayMetrics from "./http/GatewayMetrics.js"
import * as HealthRoutes from "./http/HealthRoutes.js"
import * as HostCheck from "./http/HostCheck.js"
import * as LoginRoutes from "./http/LoginRoutes.js"
import * as Route from "./http/Route.js"
import * as SdNotify from "./http/SdNotify.js"
import * as ServerSentEvents from "./http/ServerSentEvents.js"
import * as ServiceConfig from "./http/ServiceConfig.js"
import * as SystemHandlers from "./http/SystemHandlers.js"
import * as TelemetryRoutes from "./http/TelemetryRoutes.js"
import * as TlsFiles from "./http/TlsFiles.js"
import { FleetvisorRpcs } from "./protocol/FleetvisorRpcs.js"
import * as Rejection from "./protocol/Rejection.js"
import * as RpcBridge from "./protocol/RpcBridge.js"
import * as Store from "./store/Store.js"
import * as StoreHealth from "./store/StoreHealth.js"
import * as TelemetryLog from "./store/TelemetryLog.js"
import * as TelemetryReader from "./store/TelemetryReader.js"
import * as ChildSpec from "./supervisors/ChildSpec.js"
import * as Supervisor from "./supervisors/Supervisor.js"

const root = fileURLToPath(new URL("..", import.meta.url))

const serverVersion = (): string => {
  try {
    return JSON.parse(fs.readFileSync(`${root}/package.json`, "utf8")).version ?? "0.0.0"
  } catch {
    return "0.0.0"
  }
}

/** The `store` actor: the store's place in the tree. Stopping it flushes the telemetry log. */
const storeActor = (telemetry: TelemetryLog.TelemetryLog["Type"], timeout: Duration.Duration): Actor.Behaviour<
  { readonly _tag: "Flush"; readonly reply: Reply<void> },
  null
> => ({
  name: "store",
  init: () => null,
  receive: (state, message) =>
    Effect.as(
      Effect.tap(Effect.either(telemetry.flush), () => Effect.sync(() => message.reply.succeed())),
      state
    ),
  terminate: () => Effect.ignore(Effect.timeout(telemetry.flush, timeout))
})

/** The canvas's settings (read by `CanvasConfig`), for `--help` and the flags. */
export const canvasSettings: ReadonlyArray<ServiceConfig.Setting> = [
  ServiceConfig.setting("CANVAS", "on", "`off` runs the node without the canvas (its RPCs answer Unavailable, pages hide it)."),
  ServiceConfig.setting("CANVAS_WIDTH", "1000", "Board width in pixels (1–65536). Fixed once the database holds a board."),
  ServiceConfig.setting("CANVAS_HEIGHT", "1000", "Board height in pixels (1–65536)."),
  ServiceConfig.setting("CANVAS_PALETTE", "16 r/place colours", "Comma-separated `#rrggbb` colours, 2 to 256."),
  ServiceConfig.setting("CANVAS_COOLDOWN", "5 seconds", "Least time between two pixels of one user (a client address); 0 turns it off."),
  ServiceConfig.setting("CANVAS_TICK", "33 millis", "Broadcast period: the pixels of one tick are committed and sent as one frame."),
  ServiceConfig.setting(
    "CANVAS_CLIENT_BACKLOG",
    "1048576",
    "Bytes a socket may hold unsent beyond one snapshot before the slow-client policy applies."
  ),
  ServiceConfig.setting("CANVAS_SLOW_CLIENT", "disconnect", "`disconnect` (reconnect to a fresh snapshot) or `dropping` (skip frames)."),
  ServiceConfig.setting("CANVAS_SSE_BUFFER", "256", "Update events an SSE client may hold unsent before its stream ends.")
]

/** The fleet's settings (read by `FleetConfig`), for `--help` and the flags. */
export const fleetSettings: ReadonlyArray<ServiceConfig.Setting> = [
  ServiceConfig.setting("FLEET", "on", "`off` runs the node without the fleet (its RPCs answer from an empty fleet, `/fleet/` and `/stream` are 404)."),
  ServiceConfig.setting(
    "FLEET_RMI_ROBOTS",
    "(none)",
    "FANUC arms over RMI: `arm-1=10.0.0.5:16001,arm-2=10.0.0.6` (port 16001 when left out)."
  ),
  ServiceConfig.setting("FLEET_RMI_POLL_HZ", "10", "Polls per second of each arm's status, position and joints (10–125)."),
  ServiceConfig.setting(
    "FLEET_MQTT_URL",
    "(none)",
    "The VDA 5050 broker, e.g. `mqtt://127.0.0.1:1883`. None: no AGVs, or the demo's embedded broker on 127.0.0.1:18830."
  ),
  ServiceConfig.setting("FLEET_MQTT_PREFIX", "uagv/v2", "`interfaceName/majorVersion` of the AGV topics."),
  ServiceConfig.setting("FLEET_MQTT_USERNAME", "(none)", "User name at the broker, for every broker connection of the node (main, ingest thread, stop channel, demo simulators)."),
  ServiceConfig.setting(
    "FLEET_MQTT_PASSWORD_FILE",
    "(none)",
    "File whose content (one trailing newline removed) is the broker password, read at each connect and reconnect (systemd: `LoadCredential=` and `%d/…`)."
  ),
  ServiceConfig.setting("FLEET_MQTT_CA_FILE", "(none)", "PEM CA bundle the `mqtts://` or `wss://` broker's certificate must chain to (a private CA); read at each (re)connect."),
  ServiceConfig.setting("FLEET_MQTT_CERT_FILE", "(none)", "PEM client certificate for brokers that require one; with `FLEET_MQTT_KEY_FILE` (both or neither)."),
  ServiceConfig.setting("FLEET_MQTT_KEY_FILE", "(none)", "PEM private key of `FLEET_MQTT_CERT_FILE`; read at each (re)connect."),
  ServiceConfig.setting(
    "FLEET_MQTT_INGEST_THREAD",
    "off",
    "Parse and check AGV messages on a thread of their own, with a second broker connection (for fleets of thousands of messages a second); off: on the main thread."
  ),
  ServiceConfig.setting(
    "FLEET_DEMO",
    "on when neither arms nor a broker are set",
    "Simulated arms (RMI over TCP) and AGVs (over the broker, or an embedded one), so the dashboard moves at once."
  ),
  ServiceConfig.setting("FLEET_DEMO_ARMS", "3", "Simulated arms of the demo (0–100)."),
  ServiceConfig.setting("FLEET_DEMO_AGVS", "12", "Simulated AGVs of the demo (0–10000)."),
  ServiceConfig.setting("FLEET_LEASE_TTL_MS", "30000", "A control lease's default time to live; the dashboard renews it while held."),
  ServiceConfig.setting(
    "FLEET_LEASE_LOST_ARM",
    "pause",
    "What an arm does when its lease ends by its TTL or its holder's death: `pause` (FRC_Pause) or `none`."
  ),
  ServiceConfig.setting(
    "FLEET_LEASE_LOST_AGV",
    "none",
    "What an AGV does when its lease ends by its TTL or its holder's death: `none` (its order runs on) or `pause` (startPause)."
  ),
  ServiceConfig.setting(
    "FLEET_ARM_MAX_SPEED",
    "2000",
    "Highest tool speed (mm/s) of a linear motion to an arm without limits of its own; faster is refused with InvalidRequest."
  ),
  ServiceConfig.setting(
    "FLEET_ARM_LIMITS",
    "(none)",
    "Per-arm limits: `arm-1:speed=1500,x=-800..800,y=-800..800,z=0..1200;arm-2:speed=500` (mm/s, mm in the user frame); a target outside is refused."
  ),
  ServiceConfig.setting(
    "FLEET_ARM_BASES",
    "(none; the demo's arms stand beside its AGVs)",
    "Where arms stand on the dashboard's map, meters: `arm-1=6,1.5;arm-2=12,1.5`. An arm without one is listed, not drawn."
  ),
  ServiceConfig.setting(
    "FLEET_AGV_GRACE_MS",
    "60000",
    "How long an OFFLINE, CONNECTIONBROKEN or silent AGV keeps its link before the link is let go (the AGV stays listed, offline, until the service restarts); also how long a new AGV may go without a state or visualization."
  ),
  ServiceConfig.setting(
    "FLEET_MAX_AGVS",
    "2000",
    "Most AGV links at once; an AGV past it is refused (counted in fleetvisor_mqtt_agvs_refused_total, logged sampled) until links are let go."
  ),
  ServiceConfig.setting(
    "FLEET_AGV_DISCOVERY_RATE",
    "50",
    "New AGVs (not in the roster, not latched) admitted per second, one second's worth at once; known AGVs never wait."
  ),
  ServiceConfig.setting(
    "FLEET_AGV_MANUFACTURERS",
    "(any)",
    "Comma-separated manufacturers whose AGVs may be admitted, e.g. `acme,kit`; others are refused."
  ),
  ServiceConfig.setting(
    "FLEET_LINK_MAX_RESTARTS",
    "10000",
    "Crashes (bugs) of robot links within a minute before `fleet/links` gives up and `fleet` restarts it; a robot's silence, garbage or dropped connection never counts."
  ),
  ServiceConfig.setting(
    "FLEET_CONTROL_LOOP_REALTIME_PRIORITY",
    "off",
    "SCHED_FIFO priority (1–99) of the control loop's thread, so it runs on time when the cores are busy. Needs CAP_SYS_NICE or LimitRTPRIO=; refused, a warning is logged and it runs at normal priority."
  ),
  ServiceConfig.setting(
    "FLEET_STOP_PORT",
    "off",
    "Port of the stop channel: emergency stops over a WebSocket served by a thread of its own, published to AGVs without waiting for the main thread (0 picks a free port). The dashboard uses it when it is on."
  ),
  ServiceConfig.setting("FLEET_STOP_HOST", "127.0.0.1", "Address the stop channel listens on."),
  ServiceConfig.setting(
    "FLEET_STOP_REALTIME_PRIORITY",
    "off",
    "SCHED_FIFO priority (1–99) of the stop channel's thread, as for the control loop."
  )
]

/** Every setting of the service process. */
export const allSettings: ReadonlyArray<ServiceConfig.Setting> = [
  ...ServiceConfig.settings,
  ...canvasSettings,
  ...fleetSettings
]

/** The node's configuration: the service's, and the canvas's and the fleet's when they run. */
export const config = Config.all({
  service: ServiceConfig.config,
  canvas: Config.zipWith(
    Config.boolean("CANVAS").pipe(Config.withDefault(true)),
    CanvasConfig.config,
    (enabled, settings) => (enabled ? Option.some(settings) : Option.none())
  ),
  fleet: Config.zipWith(
    Config.boolean("FLEET").pipe(Config.withDefault(true)),
    FleetConfig.config,
    (enabled, settings) => (enabled ? Option.some(settings) : Option.none())
  )
})

/**
 * A page of `web/<name>/`: its `index.html` at `/<name>/`, and its script `main.ts` bundled with
 * esbuild on first request at `/<name>/main.js`.
 */
const pageRoutes = (name: string): ReadonlyArray<Route.Route> => [
  Route.make("GET", `/${name}/main.js`, async (_, response) => {
    const script = await bundle(`${root}/web/${name}/main.ts`)
    response.writeHead(200, {
      "content-type": "text/javascript; charset=utf-8",
      "content-length": Buffer.byteLength(script),
      "cache-control": "no-cache"
    })
    response.end(script)
  }, { access: "public" }),
  Route.make("GET", `/${name}/*`, async (request, response, url) => {
    if (url.pathname === `/${name}`) {
      response.writeHead(301, { location: `/${name}/` })
      return void response.end()
    }
    if (url.pathname !== `/${name}/`) return Route.text(response, 404, "Not found\n")
    const page = await fs.promises.readFile(`${root}/web/${name}/index.html`)
    response.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": page.length })
    response.end(request.method === "HEAD" ? undefined : page)
  }, { access: "public" })
]

/** The routes of the canvas: its page at `/canvas/` (also the home page) and its event stream. */
const canvasRoutes = (canvas: Canvas.Canvas["Type"]): ReadonlyArray<Route.Route> => [
  Route.make("GET", "/", (_, response) => {
    response.writeHead(302, { location: "/canvas/" })
    response.end()
  }, { access: "public" }),
  // An event stream of the gateway's (an actor under gateway/streams, bounded, cut off when stalled).
  // Each chunk waits for the socket to drain, so a slow client's updates wait in its
  // CANVAS_SSE_BUFFER, whose overflow ends the stream.
  Route.eventStream("/canvas/stream", (_, response) =>
    Effect.suspend(() => {
      response.writeHead(200, { ...CanvasStream.headers })
      response.flushHeaders()
      return CanvasStream.serverSentEvents.pipe(
        Stream.runForEach((chunk) => ServerSentEvents.write(response, chunk)),
        Effect.provideService(Canvas.Canvas, canvas),
        Effect.ignore
      )
    })),
  ...pageRoutes("canvas")
]

/**
 * The routes of the fleet: its dashboard at `/fleet/`, its event streams (`/stream`,
 * `/stream/{manufacturer}/{serial}`) and where its stop channel listens (`/fleet/stop-channel`).
 */
const fleetRoutes = (fleet: FleetApp.FleetService): ReadonlyArray<Route.Route> => [
  ...FleetStream.routes(fleet),
  // Where the dashboard sends emergency stops when the stop channel runs (its host is the page's).
  Route.make("GET", "/fleet/stop-channel", (_, response) => {
    const port = fleet.stopChannel?.port()
    if (port === undefined) Route.json(response, 404, { error: "the stop channel is off (FLEET_STOP_PORT)" })
    else Route.json(response, 200, { port, protocol: "fleetvisor.stop.v1" })
  }),
  ...pageRoutes("fleet")
]

/**
 * The fleet's service over its settings, recording into the store's `AuditLog` and `TelemetryLog`
 * when the context has them. The demo's simulators start here and stop with the scope; the
 * `fleet` subtree is the caller's to start.
 */
const startFleet = (settings: FleetApp.FleetSettings) =>
  Effect.gen(function*() {
    const resolved = settings.demo ? yield* FleetApp.Demo.start(settings) : settings
    const context = yield* Layer.build(
      FleetApp.layerUnstarted.pipe(
        Layer.provide(Layer.mergeAll(Layer.succeed(FleetApp.FleetConfig, resolved), FleetApp.FleetHub.layer))
      )
    )
    const service = Context.get(context, FleetApp.Fleet)
    if (resolved.demo) {
      yield* FleetApp.Demo.animate(service, resolved.rmiRobots.map((robot) => robot.id).filter((id) => id.startsWith("demo-arm-")))
    }
    return service
  })

/** The innermost reason of a failed start: through `InitFailed`s down to the error that began it. */
const rootCause = (cause: Cause.Cause<unknown>): string => {
  let current: Cause.Cause<unknown> = cause
  for (;;) {
    const error = Option.getOrUndefined(Cause.failureOption(current)) ?? Option.getOrUndefined(Cause.dieOption(current))
    if (error instanceof ActorError.InitFailed && error.reason._tag === "Failure") {
      current = error.reason.cause
      continue
    }
    if (error instanceof Error) return error.message
    return error === undefined ? Cause.pretty(current) : String(error)
  }
}

const rejectReason = Rejection.$match({
  WrongFrameType: () => "wrong_frame_type" as const,
  Undecodable: () => "undecodable" as const,
  MalformedMessage: () => "malformed_message" as const,
  UnknownRpc: () => "unknown_rpc" as const,
  InvalidPayload: () => "invalid_payload" as const,
  TooManyRequests: () => "requests_per_frame" as const,
  Overloaded: (rejection) => rejection.limit
})


/**
 * The stop channel's check of a connection's credential: the node's identities, needing
 * `STOP_ROLE`; refusals counted as the listener's are, closed with 4401 or 4403.
 */
const stopChannelAccess = (
  auth: Authenticator.Authenticator,
  metrics: GatewayMetrics.GatewayMetrics
): StopChannelAccess => ({
  admit: (headers, address) => {
    const credential = Authenticator.credentialOf({ headers } as IncomingMessage)
    return auth.check(credential, address, auth.stopRole).pipe(
      Effect.map((identity) => ({ user: identity.user, ticket: { identity, credential } })),
      Effect.mapError((error) => {
        metrics.authRefused(Authenticator.reasonOf(error), "stop")
        return {
          code: Authenticator.closeCodeOf(error),
          reason: error.message
        }
      })
    )
  },
  track: (admission, connection) => {
    const { credential, identity } = admission.ticket as {
      readonly identity: Authenticator.Identity
      readonly credential: Authenticator.Credential | undefined
    }
    auth.track(identity, credential, { ...connection, endpoint: "stop" })
  }
})
/** A started service. */
export interface Service {
  readonly config: ServiceConfig.ServiceConfig
  readonly address: AddressInfo
  /** `http://host:port` */
  readonly url: string
  readonly system: ActorSystem.ActorSystem
  readonly root: ActorRefOf<never>
  readonly registries: Gateway.GatewayRegistries
  readonly metrics: GatewayMetrics.GatewayMetrics
  /** Who may connect, and the connections it tracks. */
  readonly auth: Authenticator.Authenticator
  /** The canvas, when the node runs it. */
  readonly canvas: Option.Option<Canvas.Canvas["Type"]>
  /** The fleet, when the node runs it. */
  readonly fleet: Option.Option<FleetApp.FleetService>
  /** Waits until the actor tree stops by itself (it gave up restarting). */
  readonly crashed: Effect.Effect<void>
  /** The graceful shutdown, up to the database's close (which the scope does). */
  readonly shutdown: Effect.Effect<void>
  /** What SIGHUP does: reads the TLS certificate and key again (new handshakes get them); logs what it did. */
  readonly reload: Effect.Effect<void>
}

/**
 * Starts the service; it runs until `shutdown`, and closing the scope closes the database (and
 * stops the demo's simulators). `canvasSettings` of `None` runs it without the canvas;
 * `fleetSettings` of `None` (the default here; `main` reads them from the environment) without
 * the fleet.
 */
export const start = (
  config: ServiceConfig.ServiceConfig,
  canvasSettings: Option.Option<CanvasConfig.CanvasSettings> = Option.some(CanvasConfig.defaults),
  fleetSettings: Option.Option<FleetApp.FleetSettings> = Option.none()
) =>
  Effect.gen(function*() {
    const notifier = SdNotify.make()
    // First: unreadable or mismatched TLS files stop the start before anything opens.
    const certificate = Option.getOrUndefined(
      yield* Effect.transposeOption(Option.map(config.tls, TlsFiles.make))
    )
    const node = os.hostname()
    const store = yield* Layer.build(Store.layer({
      database: { filename: ServiceConfig.databaseFile(config) },
      canvas: Option.getOrUndefined(Option.map(canvasSettings, CanvasConfig.storeOptions))
    }))
    const system = yield* ActorSystem.make({ name: "fleetvisor" })
    const registries = Gateway.registries({
      maxConnections: config.maxConnections,
      maxConnectionsPerAddress: config.maxConnectionsPerAddress,
      eventStreams: {
        maxStreams: config.maxSseStreams,
        maxStreamsPerAddress: config.maxSseStreamsPerAddress,
        stallMs: Duration.toMillis(config.sseStallTimeout)
      },
      // Foxglove Studio and Lichtblick see the fleet at /foxglove.
      foxglove: Option.isSome(fleetSettings)
        ? {
          maxConnections: Foxglove.defaultMaxConnections,
          maxConnectionsPerAddress: config.foxgloveMaxConnectionsPerAddress
        }
        : undefined
    })
    const metrics = yield* GatewayMetrics.make(system, () => Gateway.sessionsOf(registries))
    // Who may connect (AUTH); a token file or key that cannot be read stops the start.
    const auth = config.auth.mode === "none"
      ? Authenticator.none
      : yield* Authenticator.make(
        { ...config.auth, adminToken: config.adminToken },
        { onClosed: (reason, endpoint) => metrics.authRefused(reason, endpoint) }
      )

    const canvas = yield* Option.match(canvasSettings, {
      onNone: () => Effect.succeedNone,
      onSome: (settings) =>
        Layer.build(Canvas.layerUnstarted).pipe(
          Effect.map((context) => Option.some(Context.get(context, Canvas.Canvas))),
          Effect.provide(store),
          Effect.provideService(CanvasConfig.CanvasConfig, settings),
          Effect.provideService(ActorSystem.ActorSystem, system)
        )
    })
    const fleet = yield* Option.match(fleetSettings, {
      onNone: () => Effect.succeedNone,
      onSome: (settings) =>
        Effect.asSome(
          // The stop channel's port checks clients as the listener does.
          startFleet({
            ...settings,
            edge: {
              allowedHosts: HostCheck.forService(config.host, config.allowedHosts).allowedHosts,
              allowedOrigins: config.allowedOrigins,
              tls: certificate,
              access: auth.mode === "none" ? undefined : stopChannelAccess(auth, metrics)
            }
          }).pipe(Effect.provide(store))
        )
    })
    if (Option.isSome(fleet)) FleetMetrics.register(metrics.registry, fleet.value)
    const features: Array<string> = [
      ...(Option.isSome(canvas) ? ["canvas"] : []),
      ...(Option.isSome(fleet) ? ["fleet"] : [])
    ]
    const handlers = Layer.mergeAll(
      SystemHandlers.layer({ serverVersion: serverVersion(), node, features }),
      Option.match(fleet, {
        onNone: () => FleetHandlers.emptyFleet,
        onSome: (service) =>
          FleetApp.handlersLayer.pipe(
            Layer.provide(Layer.succeed(FleetApp.Fleet, service)),
            Layer.provide(Layer.succeed(FleetApp.AccessPolicy, {
              stopRole: config.auth.stopRole,
              onRefused: (error) => metrics.authRefused(error._tag === "Forbidden" ? "forbidden" : "expired", "rpc")
            }))
          )
      }),
      Option.match(canvas, {
        onNone: () => CanvasUnavailable.layer,
        onSome: (service) =>
          CanvasHandlers.layer.pipe(Layer.provide(Layer.succeed(Canvas.Canvas, service)))
      })
    )
    const bridge = yield* RpcBridge.make(FleetvisorRpcs, {
      disableTracing: true,
      onReject: (_, rejection) => metrics.rejected(rejectReason(rejection))
    }).pipe(Effect.provide(handlers))

    let draining = false
    const listening = yield* Deferred.make<AddressInfo>()
    const storeHealth = StoreHealth.StoreHealth.pipe(Effect.provide(store))
    // The dashboard's plots read the telemetry log on a thread of their own.
    const telemetryRoutes = Option.isSome(fleet)
      ? TelemetryRoutes.routes(yield* TelemetryReader.make({ filename: ServiceConfig.databaseFile(config) }))
      : []
    const routes: Array<Route.Route> = [
      ...HealthRoutes.routes({
        metrics,
        readiness: {
          draining: Effect.sync(() => (draining ? "shutting down" : undefined)),
          sessions: Effect.sync(() => Option.isSome(Gateway.sessionsOf(registries)) ? undefined : "sessions supervisor not running"),
          store: Effect.map(Effect.flatMap(storeHealth, (health) => health.get), (status) =>
            status._tag === "Ok" ? undefined : `degraded: ${status.error.message}`),
          ...Option.match(canvas, {
            onNone: () => ({}),
            onSome: (service) => ({
              canvas: Effect.match(service.actor, { onFailure: (error) => error.reason, onSuccess: () => undefined })
            })
          }),
          ...Option.match(fleet, {
            onNone: () => ({}),
            onSome: (service) => ({
              fleet: Effect.sync(() =>
                Registry.unsafeLookup(service.registry, "state").length > 0 ? undefined : "fleet/state not running"
              )
            })
          })
        }
      }),
      ...AdminRoutes.routes({
        system,
        node,
        token: config.adminToken,
        checkedByListener: auth.mode !== "none",
        pageDirectory: `${root}/web/admin`
      }),
      ...LoginRoutes.routes({
        auth,
        allowedOrigins: config.allowedOrigins,
        trustedProxies: config.trustedProxies,
        onRefused: (reason) => metrics.authRefused(reason, "login"),
        home: Option.isSome(fleet) ? "/fleet/" : Option.isSome(canvas) ? "/canvas/" : "/admin/"
      }),
      ...Option.match(canvas, {
        onNone: () => [
          Route.make("GET", "/", (_, response) => {
            response.writeHead(302, { location: "/admin/" })
            response.end()
          }, { access: "public" })
        ],
        onSome: canvasRoutes
      }),
      ...Option.match(fleet, { onNone: () => [], onSome: fleetRoutes }),
      ...telemetryRoutes
    ]

    // Foxglove Studio and Lichtblick see the fleet at /foxglove (read-only).
    const foxglove = yield* Option.match(fleet, {
      onNone: () => Effect.succeed(Option.none<Foxglove.FoxgloveEndpoint>()),
      onSome: (service) =>
        Foxglove.make({ ...service, eventsTopic: LinkEvent.robotTopic }, {
          connections: registries.connections.foxglove!,
          draining: () => draining,
          allowedOrigins: config.foxgloveAllowedOrigins,
          trustedProxies: config.trustedProxies,
          onRefused: metrics.foxgloveRefused
        }).pipe(Effect.map(Option.some))
    })
    const telemetry = yield* TelemetryLog.TelemetryLog.pipe(Effect.provide(store))
    const tree = Supervisor.make({
      strategy: "one_for_one",
      children: [
        ChildSpec.make("store", storeActor(telemetry, config.shutdownTimeout)),
        ...Option.toArray(Option.map(fleet, (service) => service.child)),
        ...Option.toArray(Option.map(canvas, (service) => service.child)),
        Gateway.childSpec({
          host: config.host,
          port: config.port,
          trustedProxies: config.trustedProxies,
          maxFrameBytes: config.maxFrameBytes,
          allowedOrigins: config.allowedOrigins,
          allowedHosts: config.allowedHosts,
          headersTimeoutMs: Duration.toMillis(config.headersTimeout),
          limits: {
            rateLimit: config.rateLimit,
            maxRequestsInFlight: config.maxRequestsInFlight,
            maxStreams: config.maxStreamsPerSession,
            heartbeatIntervalMs: Duration.toMillis(config.heartbeat.interval),
            heartbeatTimeoutMs: Duration.toMillis(config.heartbeat.timeout),
            maxBufferedBytes: 4 * 1024 * 1024
          },
          routes,
          upgrades: new Map(Option.toArray(Option.map(foxglove, (endpoint): [string, Listener.UpgradeHandler] => [
            "/foxglove",
            (request, socket, head, opened) => endpoint.handleUpgrade(request, socket, head, opened)
          ]))),
          bridge,
          metrics,
          draining: () => draining,
          auth,
          onListening: (address) => Deferred.unsafeDone(listening, Exit.succeed(address)),
          tls: certificate
        }, registries)
      ]
    })
    const scheme = certificate === undefined ? "http" : "https"
    const rootRef = yield* system.spawn(tree, { name: "root" })
    const address = yield* Deferred.await(listening)
    yield* Effect.annotateLogs(Effect.logInfo("ready"), {
      url: `${scheme}://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}/`,
      port: address.port,
      database: ServiceConfig.databaseFile(config),
      auth: auth.mode
    })
    yield* notifier.notify("READY=1", `STATUS=Listening on ${address.address}:${address.port}`, `MAINPID=${process.pid}`)
    yield* SdNotify.watchdog(notifier, () => rootRef.isAlive())

    const shutdown = Effect.gen(function*() {
      draining = true
      yield* Effect.logInfo("shutting down")
      yield* notifier.notify("STOPPING=1", "STATUS=Shutting down")
      const left = yield* Gateway.drain(registries, Duration.toMillis(config.shutdownTimeout) / 2)
      if (left > 0) yield* Effect.logWarning(`${left} connections did not close in time; stopping them`)
      yield* system.stop(rootRef)
      yield* Effect.logInfo("stopped; closing the database")
    })
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address
    return {
      config,
      address,
      url: `${scheme}://${host}:${address.port}`,
      system,
      root: rootRef,
      registries,
      metrics,
      auth,
      canvas,
      fleet,
      crashed: Effect.flatMap(system.awaitExit(rootRef), (reason) =>
        Effect.logError(`the actor tree stopped (${ExitReason.format(reason)}); shutting down`)),
      shutdown,
      reload: certificate === undefined
        ? Effect.logInfo("reload (SIGHUP): nothing to reload (no TLS_CERT_FILE)")
        : certificate.reload.pipe(
          Effect.flatMap((pair) =>
            Effect.annotateLogs(Effect.logInfo("TLS certificate reloaded"), {
              subject: pair.subject,
              fingerprint256: pair.fingerprint256,
              validTo: pair.validTo
            })
          ),
          Effect.catchTag("TlsFilesInvalid", (error) =>
            Effect.logError(`TLS certificate not reloaded, the one in use stays: ${error.message}`))
        )
    } satisfies Service
  })

/**
 * Runs the service until `stop` completes (or the tree gives up), then shuts it down gracefully;
 * each element of `reloads` (SIGHUP) runs its `reload`.
 */
export const run = (
  config: ServiceConfig.ServiceConfig,
  canvas: Option.Option<CanvasConfig.CanvasSettings>,
  stop: Effect.Effect<void>,
  fleet: Option.Option<FleetApp.FleetSettings> = Option.none(),
  reloads: Stream.Stream<void> = Stream.never
) =>
  Effect.scoped(Effect.gen(function*() {
    const service = yield* start(config, canvas, fleet)
    yield* Effect.forkScoped(Stream.runForEach(reloads, () => service.reload))
    yield* Effect.raceFirst(stop, service.crashed)
    yield* service.shutdown
  }))

/** Starts the service from `argv` and the environment; resolves with the exit code. */
export const main = async (argv: ReadonlyArray<string> = process.argv.slice(2)): Promise<number> => {
  let flags: Map<string, string> | "help"
  try {
    flags = ServiceConfig.parseFlags(argv, allSettings)
  } catch (error) {
    process.stderr.write(`fleetvisor: ${(error as Error).message}\n`)
    return 64
  }
  if (flags === "help") {
    process.stdout.write(`${ServiceConfig.usage(allSettings)}\n`)
    return 0
  }
  const loaded = ServiceConfig.loadConfig(config, flags, process.env)
  if (Either.isLeft(loaded)) {
    process.stderr.write(`fleetvisor: invalid configuration\n${loaded.left.map((line) => `  ${line}`).join("\n")}\n`)
    return 78
  }
  const { canvas, fleet, service } = loaded.right

  const stopped = Deferred.unsafeMake<void>(undefined as never)
  let signals = 0
  const onSignal = (signal: NodeJS.Signals) => {
    signals++
    if (signals > 1) {
      process.stderr.write(`fleetvisor: second ${signal}, exiting now\n`)
      process.exit(signal === "SIGINT" ? 130 : 143)
    }
    const hard = setTimeout(() => {
      process.stderr.write(`fleetvisor: shutdown took longer than ${Duration.format(service.shutdownTimeout)}, exiting\n`)
      process.exit(1)
    }, Duration.toMillis(service.shutdownTimeout))
    hard.unref()
    Deferred.unsafeDone(stopped, Exit.void)
  }
  process.on("SIGTERM", onSignal)
  process.on("SIGINT", onSignal)
  // systemd's `ExecReload=/bin/kill -HUP $MAINPID`; hangups during a reload make one more.
  const hangups = Effect.runSync(Queue.sliding<void>(1))
  process.on("SIGHUP", () => void Queue.unsafeOffer(hangups, undefined))

  const exit = await Effect.runPromiseExit(
    run(service, canvas, Deferred.await(stopped), fleet, Stream.fromQueue(hangups)).pipe(
      Effect.provide(Logger.json),
      Effect.provide(Logger.minimumLogLevel(service.logLevel))
    )
  )
  if (Exit.isSuccess(exit)) return 0
  process.stderr.write(`fleetvisor: ${rootCause(exit.cause)}\n`)
  const configurationError = new Set(["CanvasShapeMismatch", "TlsFilesInvalid", "AuthSetupFailed"])
  return Option.exists(Cause.failureOption(exit.cause), (error) => configurationError.has((error as { _tag?: string })._tag ?? ""))
    ? 78
    : 1
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) {
  main().then((code) => process.exit(code))
}
