/**
 * The gateway of a node: a `rest_for_one` supervisor of the `listener` (the HTTP server) and
 * `sessions` (a dynamic supervisor whose `maxChildren` is the connection limit), each one
 * registered by name so that the listener finds the live `sessions` after a restart.
 *
 * ```text
 * gateway (rest_for_one)
 * ├─ listener running mailbox=0 restarts=0
 * └─ sessions (dynamic, 2/20000)
 *    ├─ session:1 running mailbox=0 restarts=0
 *    └─ session:2 running mailbox=0 restarts=0
 * ```
 *
 * `drain` is the first step of a graceful shutdown: every session closes with 1001 at once (not
 * one after the other, as stopping the supervisor would), and it waits until they are gone.
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
import * as DynamicSupervisor from "../supervisors/DynamicSupervisor.js"
import * as Supervisor from "../supervisors/Supervisor.js"
import type * as ClientAddress from "./ClientAddress.js"
import type { GatewayMetrics } from "./GatewayMetrics.js"
import * as Listener from "./Listener.js"
import type * as Route from "./Route.js"
import type * as ServerSentEvents from "./ServerSentEvents.js"
import type * as Session from "./Session.js"

/** What the gateway needs. */
export interface GatewayOptions {
  readonly host: string
  readonly port: number
  readonly maxConnections: number
  /** Most sessions from one client address; 0 for no limit. */
  readonly maxConnectionsPerAddress?: number | undefined
  /** Reverse proxies whose forwarding headers name the client; absent: none. */
  readonly trustedProxies?: ClientAddress.TrustedProxies | undefined
  readonly maxFrameBytes: number
  readonly allowedOrigins: ReadonlyArray<string>
  /** Names a request's `Host` may carry besides those `HostCheck` always allows (`ALLOWED_HOSTS`). */
  readonly allowedHosts?: ReadonlyArray<string> | undefined
  /** How long a connection may take to send complete request headers; default 10 s. */
  readonly headersTimeoutMs?: number | undefined
  /** The bounds of event streams (`MAX_SSE_STREAMS`, `MAX_SSE_STREAMS_PER_ADDRESS`, `SSE_STALL_TIMEOUT`). */
  readonly eventStreams?: ServerSentEvents.StreamLimits | undefined
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

/** The registries of a gateway: its own actors by name, the sessions by `session:<id>` and by client address. */
export interface GatewayRegistries {
  readonly names: Registry.Registry<string, never>
  readonly sessions: Registry.Registry<string, Session.SessionMessage>
  /** The sessions by client address (duplicate keys): an entry leaves with its session's exit. */
  readonly byAddress: Registry.Registry<string, Session.SessionMessage>
  /** The next session id; ids are never reused within a node's life, even across listener restarts. */
  readonly nextSessionId: () => string
}

/** Fresh registries. */
export const registries = (): GatewayRegistries => {
  let last = 0
  return {
    names: Registry.unsafeMake({ keys: "unique" }),
    sessions: Registry.unsafeMake({ keys: "unique" }),
    byAddress: Registry.unsafeMake({ keys: "duplicate" }),
    nextSessionId: () => String(++last)
  }
}

/** The live `sessions` supervisor, if it runs. */
export const sessionsOf = (registries: GatewayRegistries): Option.Option<DynamicSupervisor.DynamicSupervisorRef> =>
  Option.fromNullable(
    Registry.unsafeWhereis(registries.names, "sessions") as DynamicSupervisor.DynamicSupervisorRef | undefined
  )

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
            sessions: () => sessionsOf(registries),
            sessionRegistry: registries.sessions,
            addressRegistry: registries.byAddress,
            nextSessionId: registries.nextSessionId
          }),
          { via: Registry.via(registries.names, "listener") }
        ),
        ChildSpec.make(
          "sessions",
          DynamicSupervisor.make({ maxChildren: options.maxConnections }),
          { via: Registry.via(registries.names, "sessions"), shutdown: "infinity" }
        )
      ]
    })
  )

/**
 * Tells every session to close with 1001 and waits (up to `timeout`) until none is left.
 * Returns how many were still there when the wait ended.
 */
export const drain = (registries: GatewayRegistries, timeout: Duration.DurationInput): Effect.Effect<number> =>
  Effect.gen(function*() {
    const count = Effect.map(
      Effect.sync(() => sessionsOf(registries)),
      Option.match({
        onNone: () => 0,
        onSome: (ref) => DynamicSupervisor.unsafeCount(ref)
      })
    )
    for (const { ref } of Registry.all(registries.sessions)) ref.unsafeTellUrgent({ _tag: "GoAway" })
    const deadline = Date.now() + Duration.toMillis(Duration.decode(timeout))
    while ((yield* count) > 0 && Date.now() < deadline) yield* Effect.sleep("10 millis")
    return yield* count
  })
