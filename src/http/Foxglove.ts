/**
 * The Foxglove WebSocket endpoint: point Foxglove or Lichtblick at `ws://<host>:<port>/foxglove`
 * ("Open connection" → "Foxglove WebSocket") and every robot of the fleet shows up as two JSON
 * channels, `/robots/<id>/state` (its dashboard view, 30 Hz while it changes) and
 * `/robots/<id>/events` (every event of its link: telemetry, alarms, link up/down).
 * It speaks `foxglove.websocket.v1` and the same protocol under its newer name
 * `foxglove.sdk.v1`; it is read-only (no capabilities). See `docs/foxglove.md`.
 *
 * Wiring, in the listener's `upgrade` handler before the `/ws` check:
 *
 * ```ts
 * if (url.pathname === "/foxglove") return foxglove.handleUpgrade(request, socket, head)
 * ```
 *
 * with `const foxglove = yield* Foxglove.make({ ...fleet, eventsTopic: LinkEvent.robotTopic }, { connections })`
 * (`fleet` the `Fleet` service, `connections` the gateway's `foxglove` kind of connection) in a
 * scope that outlives the listener (the node's). The gateway's `drain` closes every Foxglove
 * client with 1001 with the other connections.
 *
 * Each client is an actor `foxglove:<n>` under `gateway/foxglove`, a dynamic supervisor
 * (`Connections`; see `foxglove/Connection.ts`): its socket, its PubSub sinks and its heartbeat
 * are resources of the actor, so any way it ends cleans them all up, and the supervisor's
 * `maxChildren` is the limit of clients (64; one more is refused with 503).
 *
 * Before a connection starts, an upgrade is refused with a plain HTTP answer: 503 while the
 * service shuts down or the supervisor restarts, 403 for a browser page of an origin not in `allowedOrigins` (default the
 * Foxglove web app, `https://app.foxglove.dev`; clients without an `Origin`, the desktop apps,
 * are always accepted), 400 without a Foxglove subprotocol, 429 to an address that has
 * `maxConnectionsPerAddress` clients already (default 8), 503 when all `maxConnections` are
 * taken. (The listener answers a foreign `Host` with 421 before any of this.)
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import type { IncomingMessage } from "node:http"
import type { Duplex } from "node:stream"
import { WebSocketServer } from "ws"
import * as PubSub from "../actors/PubSub.js"
import type { RobotView } from "../protocol/FleetRpcs.js"
import type * as Connections from "./Connections.js"
import * as Catalog from "./foxglove/Catalog.js"
import * as Connection from "./foxglove/Connection.js"
import * as Wire from "./foxglove/Wire.js"
import * as Route from "./Route.js"
import * as ClientAddress from "./ClientAddress.js"
import type { FoxgloveRefuseReason } from "./GatewayMetrics.js"
import * as HostCheck from "./HostCheck.js"

export { Subprotocols } from "./foxglove/Wire.js"

/**
 * What the endpoint reads: the fleet's hub, its topics, and its state now. The `Fleet` service
 * has all but `eventsTopic` (`LinkEvent.robotTopic`); `src/http` does not import the layers
 * above it, so the node passes them in.
 */
export interface FoxgloveSource {
  readonly hub: PubSub.PubSub
  /** The topic of the fleet's conflated `Encoded<FleetUpdate>` broadcasts. */
  readonly viewsTopic: string
  /** The topic of one robot's link events (objects with an `at` in ms since the epoch). */
  readonly eventsTopic: (robot: string) => string
  /** Every robot now, to advertise those known before the endpoint started. */
  readonly state?: Effect.Effect<{ readonly robots: ReadonlyArray<RobotView> }> | undefined
}

/** Foxglove clients at once by default: a viewer per operator, not a fan-out. */
export const defaultMaxConnections = 64

/** Clients from one address at once by default. */
export const defaultMaxConnectionsPerAddress = 8

/** Options of the endpoint; every one but `connections` has a default. */
export interface FoxgloveOptions {
  /**
   * Where the clients run: the gateway's `foxglove` supervisor, whose limits are the endpoint's
   * (at once: 503 past it, `defaultMaxConnections`; per address: 429 past it, `defaultMaxConnectionsPerAddress`).
   */
  readonly connections: Connections.Connections<Connection.ConnectionMessage>
  /** Whether the service is shutting down: upgrades are then refused with 503. */
  readonly draining?: (() => boolean) | undefined
  /** `serverInfo.name`, shown by Foxglove. Default: `fleetvisor`. */
  readonly name?: string | undefined
  /**
   * Bytes a client may have unsent before the overflow policy applies. Default: 1 MiB, a few
   * seconds of every robot's state; a viewer that far behind is better served fresh data.
   */
  readonly maxBufferedBytes?: number | undefined
  /** `dropping` (default: skip messages until the client catches up) or `disconnect` (close it with 1008). */
  readonly overflow?: "dropping" | "disconnect" | undefined
  /** Ping period; a client that has not answered the previous ping is dropped. Default: 15 s. */
  readonly heartbeatIntervalMs?: number | undefined
  /** Largest client frame. Default: 64 KiB: clients only send small JSON requests. */
  readonly maxFrameBytes?: number | undefined
  /**
   * Origins whose browser pages may connect (`*`: any); clients without an `Origin` header
   * (Foxglove and Lichtblick desktop) always may, and so may pages of the server's own host.
   * Default: the Foxglove web app, {@link foxgloveWebApp}.
   */
  readonly allowedOrigins?: ReadonlyArray<string> | undefined
  /** Reverse proxies whose forwarding headers name the client (for the per-address limit); default none. */
  readonly trustedProxies?: ClientAddress.TrustedProxies | undefined
  /** Called with the reason of every refused upgrade (for metrics). */
  readonly onRefused?: ((reason: FoxgloveRefuseReason) => void) | undefined
}

/** The origin of the Foxglove web app, the default of `allowedOrigins`. */
export const foxgloveWebApp = "https://app.foxglove.dev"

/** A running endpoint. */
export interface FoxgloveEndpoint {
  /**
   * Takes an HTTP upgrade (of `/foxglove`) over: refuses it, or starts a connection actor that
   * completes it; `opened` hears how to close that connection (with a code: 4401 when its
   * user's access ends) and whether it still lives.
   */
  readonly handleUpgrade: (request: IncomingMessage, socket: Duplex, head: Buffer, opened?: Opened) => void
  /** The channels advertised so far. */
  readonly catalog: Catalog.Catalog
}

/** Hears a connection that started: how to close it, and whether it still lives. */
export type Opened = (connection: {
  readonly close: (code: number, reason: string) => void
  readonly alive: () => boolean
}) => void

const offered = (request: IncomingMessage): Array<string> =>
  (request.headers["sec-websocket-protocol"] ?? "").split(",").map((name) => name.trim()).filter((name) => name !== "")

/**
 * Starts the endpoint: its catalog of robots, fed by the fleet's views (while the scope lasts)
 * and seeded with the robots of `source.state`. Its clients run under `options.connections`.
 */
export const make = (
  source: FoxgloveSource,
  options: FoxgloveOptions
): Effect.Effect<FoxgloveEndpoint, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { hub, viewsTopic } = source
    const runtime = yield* Effect.runtime<never>()
    const catalog = Catalog.make()

    const updates = yield* PubSub.subscribeQueue(hub, viewsTopic, { bufferSize: 64, overflow: "sliding" })
    yield* Effect.forkScoped(
      Effect.forever(Effect.map(Queue.take(updates), (message) => {
        if (Catalog.isFleetUpdate(message)) catalog.observe(message)
      }))
    )
    if (source.state !== undefined) {
      yield* Effect.forkScoped(
        source.state.pipe(
          Effect.map((view) => catalog.seed(view.robots, Date.now())),
          Effect.catchAllCause((cause) => Effect.logDebug("foxglove: the fleet's state is not available yet", cause))
        )
      )
    }

    const settings: Connection.ConnectionSettings = {
      name: options.name ?? "fleetvisor",
      sessionId: `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
      maxBufferedBytes: options.maxBufferedBytes ?? 1024 * 1024,
      overflow: options.overflow ?? "dropping",
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 15_000
    }
    const selected = new WeakMap<IncomingMessage, string>()
    const wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: options.maxFrameBytes ?? 64 * 1024,
      handleProtocols: (_, request) => selected.get(request) ?? false
    })
    let next = 0
    const allowedOrigins = options.allowedOrigins ?? [foxgloveWebApp]
    const trustedProxies = options.trustedProxies ?? ClientAddress.none
    const connections = options.connections

    const handleUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer, opened?: Opened): void => {
      const refuse = (reason: FoxgloveRefuseReason, status: number, body: string, headers?: Record<string, string>) => {
        options.onRefused?.(reason)
        Route.refuseUpgrade(socket, status, body, headers)
      }
      if (options.draining?.() === true || Option.isNone(connections.supervisor())) {
        return refuse("draining", 503, "Server shutting down\n", { "Retry-After": "5" })
      }
      if (!HostCheck.originAllowed(request, allowedOrigins)) {
        return refuse("origin", 403, "Origin not allowed (FOXGLOVE_ALLOWED_ORIGINS)\n")
      }
      const subprotocol = Wire.negotiate(offered(request))
      if (subprotocol === undefined) {
        return refuse("subprotocol", 400, `Foxglove WebSocket needs the subprotocol ${Wire.Subprotocols.join(" or ")}\n`)
      }
      const address = ClientAddress.ofRequest(request, trustedProxies)
      if (connections.addressFull(address)) {
        return refuse("address", 429, "Too many Foxglove connections from this address\n", { "Retry-After": "5" })
      }
      selected.set(request, subprotocol)
      const id = `foxglove:${++next}`
      const behaviour = Connection.make({
        id,
        subprotocol,
        address,
        hub,
        viewsTopic,
        eventsTopic: source.eventsTopic,
        catalog,
        settings,
        upgrade: Route.deferredUpgrade(wss, request, socket, head)
      })
      Runtime.runFork(runtime)(
        connections.start(id, behaviour, {
          address,
          mailbox: { capacity: 256 },
          register: (connection) => {
            opened?.({
              close: (code, reason) => void connection.unsafeTellUrgent({ _tag: "Revoke", code, reason }),
              alive: () => connection.isAlive()
            })
            return undefined
          }
        }).pipe(
          Effect.catchTag("MaxChildren", () =>
            Effect.sync(() => refuse("capacity", 503, "Too many Foxglove connections\n", { "Retry-After": "5" }))),
          Effect.catchAll((error) =>
            Effect.zipRight(
              Effect.logDebug("foxglove connection did not start", error),
              Effect.sync(() => socket.destroy())
            )
          )
        )
      )
    }

    return { handleUpgrade, catalog }
  })
