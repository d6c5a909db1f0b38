/**
 * The fleet as a feature of the node (see `src/http/Feature.ts`): the `fleet` subtree under
 * `root` (with the demo's simulators when nothing real is configured), the fleet's RPC handlers
 * with their role checks, the dashboard at `/fleet/`, the event streams (`/stream`), the
 * telemetry reads behind the plots (`/api/telemetry`), where the stop channel listens
 * (`/fleet/stop-channel`), the other nodes a dashboard also sends its stops to (`/fleet/nodes`), Foxglove at `/foxglove`, its metrics and a readiness check. Off
 * (`FLEET=off`), its handlers answer from an empty fleet.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { IncomingMessage } from "node:http"
import type * as Backplane from "../../actors/Backplane.js"
import * as Registry from "../../actors/Registry.js"
import * as Authenticator from "../../http/Authenticator.js"
import type * as Connections from "../../http/Connections.js"
import type * as FoxgloveConnection from "../../http/foxglove/Connection.js"
import * as Feature from "../../http/Feature.js"
import * as EmptyFleet from "../../http/FleetHandlers.js"
import * as FleetStream from "../../http/FleetStream.js"
import * as Foxglove from "../../http/Foxglove.js"
import type * as GatewayMetrics from "../../http/GatewayMetrics.js"
import * as HostCheck from "../../http/HostCheck.js"
import * as PageBundle from "../../http/PageBundle.js"
import * as Route from "../../http/Route.js"
import * as ServiceConfig from "../../http/ServiceConfig.js"
import * as TelemetryRoutes from "../../http/TelemetryRoutes.js"
import type { TlsCertificate } from "../../http/TlsFiles.js"
import * as LinkEvent from "../../links/LinkEvent.js"
import * as Placement from "../../links/Placement.js"
import * as TelemetryReader from "../../store/TelemetryReader.js"
import * as Demo from "./Demo.js"
import * as FleetRemote from "./FleetRemote.js"
import * as SharedLeases from "./SharedLeases.js"
import { Fleet, FleetHub, type FleetService, layerUnstarted } from "./Fleet.js"
import { FleetConfig, type FleetSettings } from "./FleetConfig.js"
import { AccessPolicy, layer as handlersLayer } from "./FleetHandlers.js"
import * as FleetMetrics from "./FleetMetrics.js"
import type { StopChannelAccess } from "./StopChannel.js"
import * as StopLatches from "./StopLatches.js"

/** The RPC handlers the fleet feature provides, on or off. */
export type Handlers = Layer.Layer.Success<typeof EmptyFleet.emptyFleet>

/** What the fleet needs from the node around it. */
export interface Node {
  readonly config: ServiceConfig.ServiceConfig
  /** The TLS certificate of the node, served on the stop channel's port too. */
  readonly certificate: TlsCertificate | undefined
  readonly auth: Authenticator.Authenticator
  readonly metrics: GatewayMetrics.GatewayMetrics
  /** The gateway's `foxglove` supervisor, where `/foxglove` clients run. */
  readonly foxglove: Connections.Connections<FoxgloveConnection.ConnectionMessage> | undefined
  /** Whether the node is shutting down (upgrades are then refused). */
  readonly draining: () => boolean
  /** Which robots this node runs, when several nodes share the fleet; none: every one. */
  readonly placement?: Placement.Placement | undefined
  /** Where the nodes' views cross between nodes, with a `placement` (its node id is the placement's). */
  readonly backplane?: Backplane.Backplane | undefined
  /** The cluster-wide stop latches, when several nodes share the fleet. */
  readonly latchExchange?: StopLatches.Exchange | undefined
  /** The cluster-wide control leases, when several nodes share the fleet. */
  readonly sharedLeases?: SharedLeases.SharedLeases | undefined
  /** The other nodes, for commands and stops of the robots they run. */
  readonly peers?: FleetRemote.Peers | undefined
  /** The other live nodes browsers can reach directly (`CLUSTER_PUBLIC_URL`), when several nodes share the fleet. */
  readonly publicPeers?: (() => ReadonlyArray<{ readonly id: string; readonly url: string }>) | undefined
}

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
        return { code: Authenticator.closeCodeOf(error), reason: error.message }
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

/**
 * The fleet's service over its settings, recording into the store's `AuditLog` and `TelemetryLog`.
 * The demo's simulators start here and stop with the scope; the `fleet` subtree is the caller's
 * to start.
 */
const startFleet = (settings: FleetSettings, node: Node) =>
  Effect.gen(function*() {
    const { backplane, latchExchange, peers, placement, sharedLeases } = node
    const resolved = settings.demo ? yield* Demo.start(settings) : settings
    const fleet = layerUnstarted.pipe(
      Layer.provide(Context.empty().pipe(
        (context) => placement === undefined ? context : Context.add(context, Placement.Placement, placement),
        (context) => latchExchange === undefined ? context : Context.add(context, StopLatches.Exchange, latchExchange),
        (context) => sharedLeases === undefined ? context : Context.add(context, SharedLeases.SharedLeases, sharedLeases),
        (context) => peers === undefined ? context : Context.add(context, FleetRemote.Peers, peers),
        Layer.succeedContext
      ))
    )
    const hub = placement === undefined || backplane === undefined ? FleetHub.layer : FleetHub.shared(backplane, placement.node)
    const context = yield* Layer.build(
      fleet.pipe(Layer.provide(Layer.mergeAll(Layer.succeed(FleetConfig, resolved), hub)))
    )
    const service = Context.get(context, Fleet)
    if (resolved.demo) {
      yield* Demo.animate(service, resolved.rmiRobots.map((robot) => robot.id).filter((id) => id.startsWith("demo-arm-")))
    }
    return service
  })

/** The routes of a running fleet. */
const routes = (fleet: FleetService, reader: TelemetryReader.TelemetryReader, node: Node): ReadonlyArray<Route.Route> => [
  ...FleetStream.routes(fleet),
  // Where the dashboard sends emergency stops when the stop channel runs (its host is the page's).
  Route.make("GET", "/fleet/stop-channel", (_, response) => {
    const port = fleet.stopChannel?.port()
    if (port === undefined) Route.json(response, 404, { error: "the stop channel is off (FLEET_STOP_PORT)" })
    else Route.json(response, 200, { port, protocol: "fleetvisor.stop.v1" })
  }),
  // The other nodes the dashboard sends a second copy of each stop to (none on a single node).
  Route.make("GET", "/fleet/nodes", (_, response) => {
    Route.json(response, 200, { node: node.placement?.node ?? null, peers: node.publicPeers?.() ?? [] })
  }),
  ...PageBundle.routes(PageBundle.packageRoot, "fleet"),
  // The dashboard's plots read the telemetry log on a thread of their own.
  ...TelemetryRoutes.routes(reader)
]

/** The fleet feature of a node that does not run the fleet: its handlers answer from an empty fleet. */
export const off = { feature: Feature.off("fleet", EmptyFleet.emptyFleet), fleet: Option.none<FleetService>() }

/** The fleet feature over its settings (`None`: off), with the running fleet's service when on. */
export const make = (
  settings: Option.Option<FleetSettings>,
  node: Node
) =>
  Option.match(settings, {
    onNone: () => Effect.succeed(off),
    onSome: (settings) =>
      Effect.gen(function*() {
        const { auth, certificate, config, metrics } = node
        const fleet = yield* startFleet({
          ...settings,
          // The stop channel's port checks clients as the listener does.
          edge: {
            allowedHosts: HostCheck.forService(config.host, config.allowedHosts).allowedHosts,
            allowedOrigins: config.allowedOrigins,
            tls: certificate,
            access: auth.mode === "none" ? undefined : stopChannelAccess(auth, metrics)
          }
        }, node)
        FleetMetrics.register(metrics.registry, fleet)
        yield* fleet.serveRemote
        const reader = yield* TelemetryReader.make({ filename: ServiceConfig.databaseFile(config) })
        // Foxglove Studio and Lichtblick see the fleet at /foxglove (read-only).
        const foxglove = node.foxglove === undefined ? undefined : yield* Foxglove.make(
          { ...fleet, eventsTopic: LinkEvent.robotTopic },
          {
            connections: node.foxglove,
            draining: node.draining,
            allowedOrigins: config.foxgloveAllowedOrigins,
            trustedProxies: config.trustedProxies,
            onRefused: metrics.foxgloveRefused
          }
        )
        const feature: Feature.Feature<Handlers> = {
          name: "fleet",
          enabled: true,
          children: [fleet.child],
          handlers: handlersLayer.pipe(
            Layer.provide(Layer.succeed(Fleet, fleet)),
            Layer.provide(Layer.succeed(AccessPolicy, {
              stopRole: config.auth.stopRole,
              onRefused: (error) => metrics.authRefused(error._tag === "Forbidden" ? "forbidden" : "expired", "rpc")
            }))
          ),
          routes: routes(fleet, reader, node),
          upgrades: foxglove === undefined
            ? []
            : [["/foxglove", (request, socket, head, opened) => foxglove.handleUpgrade(request, socket, head, opened)]],
          readiness: {
            fleet: Effect.sync(() => Registry.unsafeWhereis(fleet.registry, "state") !== undefined ? undefined : "fleet/state not running")
          },
          home: "/fleet/"
        }
        return { feature, fleet: Option.some(fleet) }
      })
  })
