/**
 * The fleetvisor service: configuration, the store, the RPC bridge, the actor tree, systemd
 * notifications and the graceful shutdown. What the node serves beyond its gateway comes from its
 * features (`apps/fleet/FleetFeature.ts`, `apps/canvas/CanvasFeature.ts`, see `http/Feature.ts`):
 * `start` folds their subtrees, handlers, routes, upgrades and readiness checks into one node.
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
 * With `REDIS_URL`, the node is one of several sharing the fleet (`cluster/ClusterNode.ts`): it
 * joins the membership as `NODE_ID`, each robot's link runs on the one node that owns it
 * (the fleet's `Placement`), and the fleet's hub shares the nodes' views on the node's Redis
 * backplane, so every dashboard sees every robot; `/admin/cluster` shows what this node runs,
 * `/metrics` the leases and the backplane.
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
import * as Prometheus from "prom-client"
import * as fs from "node:fs"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import { fileURLToPath } from "node:url"
import * as ActorError from "./actors/ActorError.js"
import type { ActorRef as ActorRefOf } from "./actors/ActorRef.js"
import * as ActorSystem from "./actors/ActorSystem.js"
import * as ExitReason from "./actors/ExitReason.js"
import { Canvas, CanvasConfig } from "./apps/canvas/index.js"
import * as CanvasFeature from "./apps/canvas/CanvasFeature.js"
import * as FleetFeature from "./apps/fleet/FleetFeature.js"
import * as FleetApp from "./apps/fleet/index.js"
import * as FleetConfig from "./apps/fleet/FleetConfig.js"
import * as ClusterConfig from "./cluster/ClusterConfig.js"
import * as ClusterNode from "./cluster/ClusterNode.js"
import type * as NodeLink from "./cluster/NodeLink.js"
import type * as ControlLeases from "./cluster/ControlLeases.js"
import type * as RedisBackplane from "./cluster/RedisBackplane.js"
import * as ScrapedMetric from "./node/ScrapedMetric.js"
import * as Setting from "./node/Setting.js"
import * as Authenticator from "./http/Authenticator.js"
import * as Foxglove from "./http/Foxglove.js"
import * as Gateway from "./http/Gateway.js"
import * as NodeRoutes from "./http/NodeRoutes.js"
import * as GatewayMetrics from "./http/GatewayMetrics.js"
import * as SdNotify from "./http/SdNotify.js"
import * as ServiceConfig from "./http/ServiceConfig.js"
import * as SystemHandlers from "./http/SystemHandlers.js"
import * as TlsFiles from "./http/TlsFiles.js"
import { FleetvisorRpcs } from "./protocol/FleetvisorRpcs.js"
import * as RpcBridge from "./protocol/RpcBridge.js"
import * as Store from "./store/Store.js"
import * as StoreHealth from "./store/StoreHealth.js"
import * as StoreActor from "./store/StoreActor.js"
import * as TelemetryLog from "./store/TelemetryLog.js"
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

/** Every setting of the service process, in the order of `--help` and docs/service.md. */
export const allSettings: ReadonlyArray<Setting.Setting<unknown>> = [
  ...ServiceConfig.settings,
  ...CanvasConfig.settings,
  ...FleetConfig.settings,
  ...ClusterConfig.settings
]

/** The node's configuration: the service's, and the canvas's and the fleet's when they run. */
export const config = Config.all({
  service: ServiceConfig.config,
  canvas: Config.zipWith(
    CanvasConfig.enabled,
    CanvasConfig.config,
    (enabled, settings) => (enabled ? Option.some(settings) : Option.none())
  ),
  fleet: Config.zipWith(
    FleetConfig.enabled,
    FleetConfig.config,
    (enabled, settings) => (enabled ? Option.some(settings) : Option.none())
  ),
  cluster: ClusterConfig.config
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

/** Registers the cluster's metrics (membership, ownership, backplane, node link, control leases) in `registry`, read from `cluster` at scrape time. */
const registerClusterMetrics = (registry: Prometheus.Registry, cluster: ClusterNode.ClusterNode) => {
  const gauge = (name: string, help: string, read: () => number) => ScrapedMetric.gauge(registry, name, help, read)
  const counter = (name: string, help: string, value: (counts: ReturnType<typeof cluster.ownership.counts>) => number) =>
    ScrapedMetric.counter(registry, name, help, () => value(cluster.ownership.counts()))
  const backplaneCounter = (name: string, help: string, value: (stats: RedisBackplane.Stats) => number) =>
    ScrapedMetric.counter(registry, name, help, () => value(cluster.backplane.unsafeStats()))
  gauge("fleetvisor_cluster_owned_robots", "Robots whose lease this node holds (their links run here).", () => cluster.owned().length)
  gauge("fleetvisor_cluster_live_nodes", "Live nodes as this node last polled them.", () => cluster.membership.unsafeLive().length)
  counter("fleetvisor_cluster_lease_acquisitions_total", "Robot leases granted to this node.", (c) => c.acquisitions)
  counter("fleetvisor_cluster_lease_handovers_total", "Leases this node took from another node.", (c) => c.handovers)
  counter("fleetvisor_cluster_lease_renewals_total", "Lease renewal batches Redis answered.", (c) => c.renewals)
  counter("fleetvisor_cluster_leases_lost_total", "Leases this node lost (taken, gone, or lapsed while Redis was silent).", (c) => c.lost)
  counter("fleetvisor_cluster_redis_errors_total", "Ownership commands Redis did not answer.", (c) => c.redisErrors)
  const control = (name: string, help: string, value: (counts: ControlLeases.Counts) => number) =>
    ScrapedMetric.counter(registry, name, help, () => value(cluster.controlLeases.counts()))
  control("fleetvisor_cluster_control_leases_granted_total", "Control leases Redis granted to this node's sessions.", (c) => c.granted)
  control("fleetvisor_cluster_control_leases_held_total", "Control leases refused here because a session (of any node) held the robot.", (c) => c.held)
  control("fleetvisor_cluster_control_leases_swept_total", "Control leases of departed nodes this node deleted.", (c) => c.swept)
  control("fleetvisor_cluster_control_leases_rewritten_total", "Control leases written again after Redis came back empty.", (c) => c.rewritten)
  backplaneCounter("fleetvisor_backplane_published_total", "Frames this node published on the backplane that Redis accepted.", (s) => s.published)
  backplaneCounter(
    "fleetvisor_backplane_publish_dropped_total",
    "Broadcasts whose copy to the other nodes was dropped (Redis down, too many in flight).",
    (s) => s.publishDropped
  )
  backplaneCounter("fleetvisor_backplane_received_total", "Frames of other nodes handed to this node's hubs.", (s) => s.received)
  backplaneCounter("fleetvisor_backplane_gaps_total", "Skips in another node's numbering of its frames.", (s) => s.gaps)
  backplaneCounter("fleetvisor_backplane_resyncs_total", "Resyncs this node raised (gaps, reconnects, its own requests).", (s) => s.resyncs)
  gauge("fleetvisor_backplane_connected", "1 while both backplane connections to Redis are up.", () => (cluster.backplane.unsafeStats().connected ? 1 : 0))
  const link = (name: string, help: string, value: (counts: NodeLink.Counts) => number) =>
    ScrapedMetric.counter(registry, name, help, () => value(cluster.link.counts()))
  link("fleetvisor_cluster_link_requests_sent_total", "Requests this node sent to other nodes over its node links.", (c) => c.requestsSent)
  link("fleetvisor_cluster_link_requests_served_total", "Requests of other nodes this node answered.", (c) => c.requestsServed)
  ScrapedMetric.labeledCounter(
    registry,
    "fleetvisor_cluster_link_failures_total",
    "Requests of this node to others (or itself) that failed, by error: NodeDown (nothing sent), RemoteTimeout (outcome unknown), IncompatibleNode, RemoteDefect.",
    "error",
    () => cluster.link.counts().failures
  )
  link("fleetvisor_cluster_link_connections_opened_total", "Node-link connections this node opened to others.", (c) => c.connectionsOpened)
  link("fleetvisor_cluster_link_connections_accepted_total", "Connections to this node's link port.", (c) => c.connectionsAccepted)
  gauge("fleetvisor_cluster_link_connections", "Node-link connections open now, both directions.", () => cluster.link.counts().connectionsOpen)
  link("fleetvisor_cluster_link_bad_frames_total", "Node-link connections closed for a frame this node could not read.", (c) => c.badFrames)
  link(
    "fleetvisor_cluster_link_refused_hellos_total",
    "Peers this node refused in the hello (versions that do not overlap, a wrong secret, no hello in time).",
    (c) => c.refusedHellos
  )
}

/** Registers the shared canvas's metrics (who writes the board, forwarding, relaying), read at scrape time. */
const registerCanvasMetrics = (registry: Prometheus.Registry, canvas: Canvas.Canvas["Type"]) => {
  const counter = (name: string, help: string, value: (stats: Canvas.CanvasStats) => number) =>
    ScrapedMetric.counter(registry, name, help, () => value(canvas.stats()))
  ScrapedMetric.gauge(registry, "fleetvisor_canvas_board_owner", "1 while this node holds the canvas board's lease (it writes the board).", () =>
    canvas.owns() ? 1 : 0)
  counter("fleetvisor_canvas_refused_at_entry_total", "Placements refused by this node's checks of bounds and colour.", (s) => s.refusedAtEntry)
  counter("fleetvisor_canvas_forwarded_total", "Placements this node forwarded to the board's owner.", (s) => s.forwarded)
  counter("fleetvisor_canvas_forward_timeouts_total", "Forwarded placements the owner did not answer in time.", (s) => s.forwardTimeouts)
  counter("fleetvisor_canvas_forwards_received_total", "Other nodes' placements this node received as the board's owner.", (s) => s.forwardsReceived)
  counter("fleetvisor_canvas_relayed_ticks_total", "The owner's ticks this node applied to its replica and relayed.", (s) => s.relayedTicks)
  counter("fleetvisor_canvas_gaps_total", "Ticks that did not follow this node's board (a whole board was asked for).", (s) => s.gaps)
  counter("fleetvisor_canvas_boards_adopted_total", "Whole boards this node took from another node.", (s) => s.adopted)
  counter("fleetvisor_canvas_takeovers_total", "Times this node was given the board.", (s) => s.takeovers)
}

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
  /** This node in its cluster, with `REDIS_URL`. */
  readonly cluster: Option.Option<ClusterNode.ClusterNode>
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
 * the fleet. `clusterSettings` with a Redis joins a cluster (none by default: a single node).
 */
export const start = (
  config: ServiceConfig.ServiceConfig,
  canvasSettings: Option.Option<CanvasConfig.CanvasSettings> = Option.some(CanvasConfig.defaults),
  fleetSettings: Option.Option<FleetApp.FleetSettings> = Option.none(),
  clusterSettings: ClusterConfig.ClusterSettings | undefined = undefined
) =>
  Effect.gen(function*() {
    const notifier = SdNotify.make()
    // First: unreadable or mismatched TLS files stop the start before anything opens.
    const certificate = Option.getOrUndefined(
      yield* Effect.transposeOption(Option.map(config.tls, TlsFiles.make))
    )
    // Before the tree: the fleet's links start only where their robots are owned.
    const cluster = clusterSettings === undefined || Option.isNone(clusterSettings.redisUrl)
      ? undefined
      : yield* ClusterNode.start({
        redisUrl: clusterSettings.redisUrl.value,
        nodeId: clusterSettings.nodeId,
        ttl: clusterSettings.leaseTtlMs,
        link: {
          port: clusterSettings.port,
          bind: clusterSettings.bind,
          advertise: clusterSettings.advertise,
          secretFile: Option.getOrUndefined(clusterSettings.secretFile)
        },
        publicUrl: Option.getOrUndefined(clusterSettings.publicUrl),
        supervised: true
      })
    const node = cluster?.node ?? os.hostname()
    // The database, when a feature keeps anything in it: the gateway alone needs none.
    const store = Option.isSome(canvasSettings) || Option.isSome(fleetSettings)
      ? Option.some(
        yield* Layer.build(Store.layer({
          database: { filename: ServiceConfig.databaseFile(config) },
          canvas: Option.getOrUndefined(Option.map(canvasSettings, CanvasConfig.storeOptions))
        }))
      )
      : Option.none()
    const system = yield* ActorSystem.make({ name: "fleetvisor" })
    // Foxglove Studio and Lichtblick see the fleet at /foxglove.
    const registries = Gateway.registries(
      Gateway.limitsOf(config, Option.isSome(fleetSettings) ? Foxglove.defaultMaxConnections : undefined)
    )
    const metrics = yield* GatewayMetrics.make(system, () => Gateway.sessionsOf(registries))
    if (cluster !== undefined) registerClusterMetrics(metrics.registry, cluster)
    // Who may connect (AUTH); a token file or key that cannot be read stops the start.
    const auth = config.auth.mode === "none"
      ? Authenticator.none
      : yield* Authenticator.make(
        { ...config.auth, adminToken: config.adminToken },
        { onClosed: (reason, endpoint) => metrics.authRefused(reason, endpoint) }
      )

    let draining = false
    const withStore = <A, E, R>(effect: Effect.Effect<A, E, R>, off: A) =>
      Option.match(store, {
        onNone: () => Effect.succeed(off),
        onSome: (context) => effect.pipe(Effect.provide(context), Effect.provideService(ActorSystem.ActorSystem, system))
      })
    // With several nodes the board is a singleton: one node writes it, the others forward and replicate.
    const board = cluster === undefined || Option.isNone(canvasSettings) ? undefined : yield* cluster.singleton("canvas")
    const canvas = yield* withStore(
      CanvasFeature.make(canvasSettings, cluster === undefined || board === undefined ? undefined : {
        node: cluster.node,
        backplane: cluster.backplane,
        owns: board.owns,
        token: board.token,
        watch: board.watch
      }),
      CanvasFeature.off
    )
    if (board !== undefined && Option.isSome(canvas.canvas)) registerCanvasMetrics(metrics.registry, canvas.canvas.value)
    const fleet = yield* withStore(FleetFeature.make(fleetSettings, {
      config,
      certificate,
      auth,
      metrics,
      foxglove: registries.connections.foxglove,
      draining: () => draining,
      placement: cluster,
      backplane: cluster?.backplane,
      latchExchange: cluster?.latches,
      sharedLeases: cluster?.controlLeases,
      peers: cluster === undefined ? undefined : {
        transport: cluster.transport,
        others: () => cluster.membership.unsafeLive().map((member) => member.id).filter((id) => id !== cluster.node)
      },
      publicPeers: cluster?.publicPeers
    }), FleetFeature.off)
    // In the order of DESIGN.md's tree: the fleet's subtree before the canvas's.
    const features = [fleet.feature, canvas.feature]
    const running = features.filter((feature) => feature.enabled)
    const handlers = Layer.mergeAll(
      SystemHandlers.layer({ serverVersion: serverVersion(), node, features: running.map((feature) => feature.name).sort() }),
      fleet.feature.handlers,
      canvas.feature.handlers
    )
    const bridge = yield* RpcBridge.make(FleetvisorRpcs, {
      disableTracing: true,
      onReject: (_, rejection) => metrics.rejected(GatewayMetrics.reasonOf(rejection))
    }).pipe(Effect.provide(handlers))

    const listening = yield* Deferred.make<AddressInfo>()
    // The store's place in the tree (first, so it stops last and flushes the telemetry log) and its health.
    const storeParts = Option.match(store, {
      onNone: () => ({ children: [], readiness: {} }),
      onSome: (context) => ({
        children: [ChildSpec.make("store", StoreActor.make(Context.get(context, TelemetryLog.TelemetryLog), config.shutdownTimeout))],
        readiness: {
          store: Effect.map(Context.get(context, StoreHealth.StoreHealth).get, (status) =>
            status._tag === "Ok" ? undefined : `degraded: ${status.error.message}`)
        }
      })
    })
    const routes = NodeRoutes.make({
      config,
      system,
      node,
      auth,
      metrics,
      readiness: {
        draining: Effect.sync(() => (draining ? "shutting down" : undefined)),
        sessions: Effect.sync(() => Option.isSome(Gateway.sessionsOf(registries)) ? undefined : "sessions supervisor not running"),
        ...storeParts.readiness
      },
      cluster: cluster === undefined ? undefined : {
        view: cluster.view,
        drain: () =>
          Effect.runPromise(cluster.ownership.drain.pipe(
            Effect.zipRight(board?.release ?? Effect.void),
            Effect.as(undefined),
            Effect.catchAll((error) => Effect.succeed(error.message))
          ))
      },
      features: running
    })

    // The cluster's loops first, so that robots are owned (and links placed) as the fleet starts;
    // their state stays in `cluster`, above the tree, so a restart of theirs releases nothing.
    const clusterChildren = cluster === undefined ? [] : [
      ChildSpec.make("cluster", Supervisor.make({
        strategy: "one_for_one",
        maxRestarts: 10,
        period: "60 seconds",
        children: cluster.children.map((child) => ChildSpec.make(child.id, child.behaviour))
      }))
    ]
    const tree = Supervisor.make({
      strategy: "one_for_one",
      children: [
        ...clusterChildren,
        ...storeParts.children,
        ...running.flatMap((feature) => feature.children),
        Gateway.childSpec({
          ...Gateway.settingsOf(config),
          routes,
          upgrades: new Map(running.flatMap((feature) => feature.upgrades)),
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
    const url = `${scheme}://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`
    yield* Effect.annotateLogs(Effect.logInfo("ready"), {
      url: `${url}/`,
      port: address.port,
      // The gateway alone opens no database.
      database: Option.isSome(store) ? ServiceConfig.databaseFile(config) : "none",
      auth: auth.mode,
      node: cluster === undefined ? "alone" : cluster.node
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
    return {
      config,
      address,
      url,
      system,
      root: rootRef,
      registries,
      metrics,
      auth,
      canvas: canvas.canvas,
      fleet: fleet.fleet,
      cluster: Option.fromNullable(cluster),
      crashed: Effect.flatMap(system.awaitExit(rootRef), (reason) =>
        Effect.logError(`the actor tree stopped (${ExitReason.format(reason)}); shutting down`)),
      shutdown,
      reload: TlsFiles.reloadLogged(certificate)
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
  reloads: Stream.Stream<void> = Stream.never,
  cluster?: ClusterConfig.ClusterSettings
) =>
  Effect.scoped(Effect.gen(function*() {
    const service = yield* start(config, canvas, fleet, cluster)
    yield* Effect.forkScoped(Stream.runForEach(reloads, () => service.reload))
    yield* Effect.raceFirst(stop, service.crashed)
    yield* service.shutdown
  }))

/** Starts the service from `argv` and the environment; resolves with the exit code. */
export const main = async (argv: ReadonlyArray<string> = process.argv.slice(2)): Promise<number> => {
  let flags: Map<string, string> | "help"
  try {
    flags = Setting.parseFlags(argv, allSettings)
  } catch (error) {
    process.stderr.write(`fleetvisor: ${(error as Error).message}\n`)
    return 64
  }
  if (flags === "help") {
    process.stdout.write(`${Setting.usage(allSettings)}\n`)
    return 0
  }
  const loaded = ServiceConfig.loadConfig(config, flags, process.env)
  if (Either.isLeft(loaded)) {
    process.stderr.write(`fleetvisor: invalid configuration\n${loaded.left.map((line) => `  ${line}`).join("\n")}\n`)
    return 78
  }
  const { canvas, cluster, fleet, service } = loaded.right

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
    run(service, canvas, Deferred.await(stopped), fleet, Stream.fromQueue(hangups), cluster).pipe(
      Effect.provide(Logger.json),
      Effect.provide(Logger.minimumLogLevel(service.logLevel))
    )
  )
  if (Exit.isSuccess(exit)) return 0
  process.stderr.write(`fleetvisor: ${rootCause(exit.cause)}\n`)
  const configurationError = new Set([
    "CanvasShapeMismatch",
    "TlsFilesInvalid",
    "AuthSetupFailed",
    "OfficialSchemasInvalid",
    "InvalidNodeId",
    "InvalidSettings"
  ])
  return Option.exists(Cause.failureOption(exit.cause), (error) => configurationError.has((error as { _tag?: string })._tag ?? ""))
    ? 78
    : 1
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) {
  main().then((code) => process.exit(code))
}
