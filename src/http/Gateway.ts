/**
 * The gateway of a node: a `rest_for_one` supervisor of the `listener` (the HTTP server) and
 * the dynamic supervisors of its client connections (`Connections`): `sessions` (`/ws`, whose
 * `maxChildren` is `MAX_CONNECTIONS`), `foxglove` (`/foxglove`, when the node has a fleet) and
 * `streams` (Server-Sent Events, `MAX_SSE_STREAMS`), each one registered by name so that the
 * listener finds the live ones after a restart. Every socket of the service is under it.
 *
 * ```text
 * gateway (rest_for_one)
 * ├─ listener running mailbox=0 restarts=0
 * ├─ sessions (dynamic, 2/20000)
 * │  ├─ session:1 running mailbox=0 restarts=0
 * │  └─ session:2 running mailbox=0 restarts=0
 * ├─ foxglove (dynamic, 1/64)
 * │  └─ foxglove:1 running mailbox=0 restarts=0
 * └─ streams (dynamic, 1/1000)
 *    └─ stream:1 running mailbox=0 restarts=0
 * ```
 *
 * `drain` is the first step of a graceful shutdown: every connection is told `GoAway` at once
 * (not one after the other, as stopping the supervisors would): sessions and Foxglove clients
 * close with 1001, event streams end; it waits until they are gone.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { AddressInfo } from "node:net"
import * as Registry from "../actors/Registry.js"
import type * as RpcBridge from "../protocol/RpcBridge.js"
import * as ChildSpec from "../supervisors/ChildSpec.js"
import type * as DynamicSupervisor from "../supervisors/DynamicSupervisor.js"
import * as Supervisor from "../supervisors/Supervisor.js"
import type * as ClientAddress from "./ClientAddress.js"
import * as Connections from "./Connections.js"
import type * as FoxgloveConnection from "./foxglove/Connection.js"
import type { GatewayMetrics } from "./GatewayMetrics.js"
import * as Listener from "./Listener.js"
import type * as Route from "./Route.js"
import type * as ServerSentEvents from "./ServerSentEvents.js"
import type * as ServiceConfig from "./ServiceConfig.js"
import type * as Session from "./Session.js"
import type * as StreamConnection from "./StreamConnection.js"

/** What the gateway needs. */
export interface GatewayOptions {
  readonly host: string
  readonly port: number
  /** Reverse proxies whose forwarding headers name the client; absent: none. */
  readonly trustedProxies?: ClientAddress.TrustedProxies | undefined
  readonly maxFrameBytes: number
  readonly allowedOrigins: ReadonlyArray<string>
  /** Names a request's `Host` may carry besides those `HostCheck` always allows (`ALLOWED_HOSTS`). */
  readonly allowedHosts?: ReadonlyArray<string> | undefined
  /** How long a connection may take to send complete request headers; default 10 s. */
  readonly headersTimeoutMs?: number | undefined
  /** Most connections at once; default: from the open-file limit (`Listener.connectionLimit`). */
  readonly maxHttpConnections?: number | undefined
  readonly limits: Session.SessionLimits
  readonly routes: ReadonlyArray<Route.Route>
  /** Other WebSocket endpoints by path, e.g. `/foxglove`. */
  readonly upgrades?: ReadonlyMap<string, Listener.UpgradeHandler> | undefined
  readonly bridge: RpcBridge.RpcBridge["Type"]
  readonly metrics: GatewayMetrics
  readonly draining: () => boolean
  /** Who may connect (`AUTH`); absent: everyone, as an admin. */
  readonly auth?: Listener.ListenerOptions["auth"]
  readonly onListening?: ((address: AddressInfo) => void) | undefined
  /** The certificate to serve HTTPS and WSS with; absent: plain HTTP and WS. */
  readonly tls?: Listener.ListenerOptions["tls"]
}

/** How many connections of each kind a gateway takes. */
export interface ConnectionLimits {
  /** `/ws` sessions at once (`MAX_CONNECTIONS`). */
  readonly maxConnections: number
  /** Sessions from one client address (`MAX_CONNECTIONS_PER_ADDRESS`); 0 or absent for no limit. */
  readonly maxConnectionsPerAddress?: number | undefined
  /** Event streams (`MAX_SSE_STREAMS`, `MAX_SSE_STREAMS_PER_ADDRESS`, `SSE_STALL_TIMEOUT`); default `Listener.defaultStreamLimits`. */
  readonly eventStreams?: ServerSentEvents.StreamLimits | undefined
  /** `/foxglove` clients at once and from one address; absent: the node serves no Foxglove endpoint. */
  readonly foxglove?: { readonly maxConnections: number; readonly maxConnectionsPerAddress: number } | undefined
}

/**
 * The registries of a gateway, the one index of its connections: its own actors by name, the
 * sessions by `session:<id>`, and each kind of connection by client address.
 */
export interface GatewayRegistries {
  readonly names: Registry.Registry<string, never>
  readonly sessions: Registry.Registry<string, Session.SessionMessage>
  /** The sessions by client address (duplicate keys): an entry leaves with its session's exit. */
  readonly byAddress: Registry.Registry<string, Session.SessionMessage>
  /** The next session id; ids are never reused within a node's life, even across listener restarts. */
  readonly nextSessionId: () => string
  /** The kinds of connection: `/ws` sessions, event streams, and `/foxglove` clients when there are. */
  readonly connections: {
    readonly sessions: Connections.Connections<Session.SessionMessage>
    readonly streams: Connections.Connections<StreamConnection.StreamMessage>
    readonly foxglove: Connections.Connections<FoxgloveConnection.ConnectionMessage> | undefined
  }
  readonly limits: ConnectionLimits
}

/** Fresh registries for connections within `limits`. */
export const registries = (limits: ConnectionLimits = { maxConnections: 20_000 }): GatewayRegistries => {
  let last = 0
  const names = Registry.unsafeMake<string, never>({ keys: "unique" })
  const sessions = Connections.make<Session.SessionMessage>(names, {
    name: "sessions",
    maxConnections: limits.maxConnections,
    maxPerAddress: limits.maxConnectionsPerAddress ?? 0
  })
  const streamLimits = limits.eventStreams ?? Listener.defaultStreamLimits
  return {
    names,
    sessions: Registry.unsafeMake({ keys: "unique" }),
    byAddress: sessions.byAddress,
    nextSessionId: () => String(++last),
    connections: {
      sessions,
      streams: Connections.make(names, {
        name: "streams",
        maxConnections: streamLimits.maxStreams,
        maxPerAddress: streamLimits.maxStreamsPerAddress
      }),
      foxglove: limits.foxglove === undefined ? undefined : Connections.make(names, {
        name: "foxglove",
        maxConnections: limits.foxglove.maxConnections,
        maxPerAddress: limits.foxglove.maxConnectionsPerAddress
      })
    },
    limits
  }
}

/**
 * The connection limits of the service's settings (`MAX_CONNECTIONS`, `MAX_SSE_STREAMS`, …);
 * `foxglove` (its limit at once) when the node serves `/foxglove`.
 */
export const limitsOf = (config: ServiceConfig.ServiceConfig, foxglove: number | undefined): ConnectionLimits => ({
  maxConnections: config.maxConnections,
  maxConnectionsPerAddress: config.maxConnectionsPerAddress,
  eventStreams: {
    maxStreams: config.maxSseStreams,
    maxStreamsPerAddress: config.maxSseStreamsPerAddress,
    stallMs: Duration.toMillis(config.sseStallTimeout)
  },
  foxglove: foxglove === undefined
    ? undefined
    : { maxConnections: foxglove, maxConnectionsPerAddress: config.foxgloveMaxConnectionsPerAddress }
})

/** The gateway's options that come from the service's settings alone. */
export const settingsOf = (config: ServiceConfig.ServiceConfig): Pick<
  GatewayOptions,
  "host" | "port" | "trustedProxies" | "maxFrameBytes" | "allowedOrigins" | "allowedHosts" | "headersTimeoutMs" | "limits"
> => ({
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
  }
})

/** The live `sessions` supervisor, if it runs. */
export const sessionsOf = (registries: GatewayRegistries): Option.Option<DynamicSupervisor.DynamicSupervisorRef> =>
  registries.connections.sessions.supervisor()

/** Every kind of connection of a gateway: sessions, Foxglove clients (when there are), event streams. */
export const kindsOf = (registries: GatewayRegistries): ReadonlyArray<Connections.Connections<any>> => {
  const { foxglove, sessions, streams } = registries.connections
  const kinds = foxglove === undefined ? [sessions, streams] : [sessions, foxglove, streams]
  return kinds as ReadonlyArray<Connections.Connections<any>>
}

/** The gateway as a child of the root supervisor. */
export const childSpec = (options: GatewayOptions, registries: GatewayRegistries): ChildSpec.ChildSpec =>
  ChildSpec.make(
    "gateway",
    Supervisor.make({
      strategy: "rest_for_one",
      children: [
        ChildSpec.make(
          "listener",
          Listener.make({
            ...options,
            maxConnections: registries.limits.maxConnections,
            eventStreams: registries.limits.eventStreams,
            sessions: registries.connections.sessions,
            streams: registries.connections.streams,
            sessionRegistry: registries.sessions,
            nextSessionId: registries.nextSessionId
          }),
          { via: Registry.via(registries.names, "listener") }
        ),
        ...kindsOf(registries).map((kind) => kind.childSpec)
      ]
    })
  )

/**
 * Tells every connection to go away (sessions and Foxglove clients close with 1001, event
 * streams end) and waits (up to `timeout`) until none is left. Returns how many were still there
 * when the wait ended.
 */
export const drain = (registries: GatewayRegistries, timeout: Duration.DurationInput): Effect.Effect<number> =>
  Effect.gen(function*() {
    const kinds = kindsOf(registries)
    const count = Effect.sync(() => kinds.reduce((n, kind) => n + kind.count(), 0))
    for (const kind of kinds) kind.goAway()
    const deadline = Date.now() + Duration.toMillis(Duration.decode(timeout))
    while ((yield* count) > 0 && Date.now() < deadline) yield* Effect.sleep("10 millis")
    return yield* count
  })
