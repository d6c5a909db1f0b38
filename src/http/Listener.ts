/**
 * The listener: an actor that owns the node's HTTP server. It answers the routes it is given,
 * turns each upgrade of `/ws` into a session actor under `gateway/sessions` and each event
 * stream into a stream actor under `gateway/streams` (`StreamConnection`); other upgrades
 * (`/foxglove`) go to their endpoints, which start their own connection actors.
 *
 * Before a session exists the listener refuses, with a plain HTTP answer on the raw socket:
 * another path (404), a foreign `Origin` (403), a server that is draining or full (503, the
 * latter because `DynamicSupervisor.startChild` failed with `MaxChildren`). An unsupported
 * protocol version gets the handshake and then a close with `VersionRefused`'s reason, so that
 * the page can read it. Everything else becomes `session:<id>`, which completes the handshake
 * itself.
 *
 * A session's client address (its per-address budget, its logs) is the socket's, or the one a
 * trusted reverse proxy forwarded (`ClientAddress`).
 *
 * Every edge is bounded before any handler runs:
 *
 * - **Host** (`HostCheck`): a request or upgrade whose `Host` the server does not go by gets 421
 *   (DNS rebinding), whatever `ADMIN_TOKEN` is; only `/healthz` and `/readyz` answer any Host.
 * - **Methods**: a path served with other methods gets 405 with `Allow`; `CONNECT` gets 405.
 * - **Event streams** (routes marked `eventStream`): at most `MAX_SSE_STREAMS` (503, the
 *   `streams` supervisor is full) and `MAX_SSE_STREAMS_PER_ADDRESS` (429); one whose socket
 *   stays full for `SSE_STALL_TIMEOUT` is destroyed (`ServerSentEvents.stallGuard`).
 * - **Connections**: one that has not sent complete request headers within `HEADERS_TIMEOUT` is
 *   closed, also one that sends nothing at all (Node's `headersTimeout` starts at the first
 *   byte). `server.maxConnections` is the open-file limit less a reserve
 *   (`connectionLimit`), so a flood of connections never takes the descriptors the database,
 *   the robot links and the brokers need; near it, the oldest connection that has not spoken
 *   yet is closed to make room, so a silent flood cannot lock healthy clients out.
 *
 * Each refusal is counted in `fleetvisor_http_refused_total{reason}`.
 *
 * **Identity** (`auth`, docs/security.md): when `AUTH` is not `none`, every route but the public
 * ones (`Route.access`) and every upgrade needs a credential (`Authenticator.credentialOf`),
 * checked once per connection after the Host and Origin checks: a route answers 401/403, an
 * upgrade completes the handshake and closes at once with 4401/4403 (a page cannot read an
 * upgrade's 401). A `/ws` session keeps its user and roles (its `identity`), which its requests'
 * handlers read as their `Caller`; sessions, `/foxglove` clients and event streams are tracked by the
 * authenticator, which closes them when their credential is revoked or expires. The token entry
 * of `Sec-WebSocket-Protocol` is stripped before negotiation: never selected, never echoed.
 *
 * With `tls` the same server is an HTTPS one (every route, `/ws`, `/foxglove` and event streams
 * over TLS), whose certificate a reload replaces for new handshakes (`TlsFiles`).
 *
 * The server lives in the actor's scope: when the listener stops it stops accepting, ends
 * keep-alive connections, and closes (event streams end with their actors, restarted after it).
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as http from "node:http"
import * as https from "node:https"
import * as fs from "node:fs"
import type { AddressInfo, Socket } from "node:net"
import type { Duplex } from "node:stream"
import { WebSocketServer } from "ws"
import type * as Actor from "../actors/Actor.js"
import type { Reply } from "../actors/ActorRef.js"
import * as Registry from "../actors/Registry.js"
import * as CloseCode from "../protocol/CloseCode.js"
import * as Subprotocol from "../protocol/Subprotocol.js"
import type * as RpcBridge from "../protocol/RpcBridge.js"
import * as Authenticator from "./Authenticator.js"
import * as ClientAddress from "./ClientAddress.js"
import type * as Connections from "./Connections.js"
import type { GatewayMetrics } from "./GatewayMetrics.js"
import * as HostCheck from "./HostCheck.js"
import * as Route from "./Route.js"
import * as ServerSentEvents from "./ServerSentEvents.js"
import * as Session from "./Session.js"
import * as StreamConnection from "./StreamConnection.js"
import * as TlsFiles from "./TlsFiles.js"

/** What the listener needs. */
export interface ListenerOptions {
  readonly host: string
  readonly port: number
  readonly maxFrameBytes: number
  /** Reverse proxies whose `X-Forwarded-For`/`Forwarded` name the client; absent: none. */
  readonly trustedProxies?: ClientAddress.TrustedProxies | undefined
  /** Origins besides the server's own whose pages may open `/ws`; `*` allows any. */
  readonly allowedOrigins: ReadonlyArray<string>
  /** Names a request's `Host` may carry besides those `HostCheck` always allows (`ALLOWED_HOSTS`); absent: none. */
  readonly allowedHosts?: ReadonlyArray<string> | undefined
  /** How long a connection may take to send complete request headers (`HEADERS_TIMEOUT`); default 10 s. */
  readonly headersTimeoutMs?: number | undefined
  /** The bounds of event streams; default 1,000 at once, 100 per address, cut off after 30 s stalled. */
  readonly eventStreams?: ServerSentEvents.StreamLimits | undefined
  /** Most connections at once; default `connectionLimit(openFileLimit())`, none where that is unknown. */
  readonly maxHttpConnections?: number | undefined
  /** Most WebSocket sessions (`MAX_CONNECTIONS`), to warn when the connection limit is below it. */
  readonly maxConnections?: number | undefined
  readonly limits: Session.SessionLimits
  readonly routes: ReadonlyArray<Route.Route>
  /** Other WebSocket endpoints by path (e.g. `/foxglove`), each handling its own upgrades. */
  readonly upgrades?: ReadonlyMap<string, UpgradeHandler> | undefined
  readonly bridge: RpcBridge.RpcBridge["Type"]
  readonly metrics: GatewayMetrics
  /** The `/ws` sessions (`gateway/sessions`, `MAX_CONNECTIONS`, `MAX_CONNECTIONS_PER_ADDRESS`). */
  readonly sessions: Connections.Connections<Session.SessionMessage>
  /** The event streams (`gateway/streams`, `MAX_SSE_STREAMS`, `MAX_SSE_STREAMS_PER_ADDRESS`). */
  readonly streams: Connections.Connections<StreamConnection.StreamMessage>
  /** Where sessions register as `session:<id>`. */
  readonly sessionRegistry: Registry.Registry<string, Session.SessionMessage>
  /** A fresh session id. */
  readonly nextSessionId: () => string
  /** Who may connect (`AUTH`); absent: everyone, as an admin named by their address. */
  readonly auth?: Authenticator.Authenticator | undefined
  /** Whether the service is shutting down: upgrades are then refused. */
  readonly draining: () => boolean
  /** Called with the bound address each time the listener starts. */
  readonly onListening?: ((address: AddressInfo) => void) | undefined
  /** The certificate to serve HTTPS and WSS with (`TLS_CERT_FILE`); absent: plain HTTP and WS. */
  readonly tls?: TlsFiles.TlsSource | undefined
}

/** What the listener answers: where it listens. */
export type ListenerMessage = { readonly _tag: "Address"; readonly reply: Reply<AddressInfo> }

/** The listener's state. */
export interface ListenerState {
  readonly server: http.Server
  readonly address: AddressInfo
}

/** The subprotocols offered, without the entry that carries a token (never selected, never echoed). */
const offered = Authenticator.offeredProtocols

/** The request's target as a URL; `undefined` for a target that is not one (`//x`, `http://[/`). */
const requestUrl = (request: http.IncomingMessage): URL | undefined => {
  // An origin-form target is one "/" then a path; "//host/…" would be read as an authority.
  if (request.url?.startsWith("//")) return undefined
  try {
    return new URL(request.url ?? "/", "http://localhost")
  } catch {
    return undefined
  }
}

/**
 * Takes over an HTTP upgrade request and its socket; `opened`, when given, must hear each
 * connection it starts (how to close it, whether it lives), so that it is closed when its
 * user's access ends.
 */
export type UpgradeHandler = (
  request: http.IncomingMessage,
  socket: Duplex,
  head: Buffer,
  opened?: (connection: Authenticator.Connection) => void
) => void

/** Whether a browser page of `origin` may open `/ws` on this server. Non-browser clients send no Origin. */
export const originAllowed = HostCheck.originAllowed

/** Paths that answer whatever the `Host`: probes of load balancers and orchestrators, which say nothing about the node. */
const anyHost = new Set(["/healthz", "/readyz"])

/** The default bounds of event streams. */
export const defaultStreamLimits: ServerSentEvents.StreamLimits = {
  maxStreams: 1000,
  maxStreamsPerAddress: 100,
  stallMs: 30_000
}

/**
 * The soft limit on open files of this process, from `/proc/self/limits` (Node raises it to
 * the hard limit at start); `undefined` where that is unknown (not Linux) or unlimited.
 */
export const openFileLimit = (): number | undefined => {
  try {
    const line = fs.readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"))
    const soft = line === undefined ? undefined : /^Max open files\s+(\S+)/.exec(line)?.[1]
    const n = soft === undefined ? NaN : Number(soft)
    return Number.isSafeInteger(n) && n > 0 ? n : undefined
  } catch {
    return undefined
  }
}

/**
 * Connections the listener accepts at once under an open-file limit: the limit less a reserve
 * of a quarter of it, at least 128, for what else the process opens (the SQLite files, robot
 * links, MQTT connections, the demo's broker and simulators, the stop channel's clients,
 * esbuild); at least 16. `undefined` (no limit) when the limit is unknown.
 */
export const connectionLimit = (fileLimit: number | undefined): number | undefined =>
  fileLimit === undefined ? undefined : Math.max(16, fileLimit - Math.max(128, Math.ceil(fileLimit / 4)))

/** The HTTP server could not bind its address. */
export class ListenFailed extends Error {
  override readonly name = "ListenFailed"
}

const listen = (server: http.Server, host: string, port: number) =>
  Effect.async<AddressInfo, ListenFailed>((resume) => {
    const onError = (error: NodeJS.ErrnoException) => {
      const why = error.code === "EADDRINUSE"
        ? "the address is in use by another process (set PORT, or stop the other one)"
        : error.code === "EACCES"
        ? "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)"
        : error.code === "EADDRNOTAVAIL"
        ? "no interface of this machine has that address (check HOST)"
        : error.message
      resume(Effect.fail(new ListenFailed(`cannot listen on ${host}:${port}: ${why}`, { cause: error })))
    }
    server.once("error", onError)
    server.listen(port, host, () => {
      server.off("error", onError)
      resume(Effect.succeed(server.address() as AddressInfo))
    })
  })

/**
 * Stops listening and ends HTTP connections (keep-alive, event streams). Upgraded sockets belong
 * to their sessions, so this does not wait for them: `server.close`'s callback would, and a
 * listener restarted before its sessions (rest_for_one) would wait for sessions that wait for it.
 */
const close = (server: http.Server) =>
  Effect.async<void>((resume) => {
    server.close()
    server.closeAllConnections()
    setImmediate(() => resume(Effect.void))
  })

/** The listener behaviour. */
export const make = (options: ListenerOptions): Actor.Behaviour<ListenerMessage, ListenerState> => ({
  name: "listener",
  init: (): Effect.Effect<ListenerState, Error, Scope.Scope> =>
    Effect.gen(function*() {
      const runtime = yield* Effect.runtime<never>()
      const { metrics } = options
      // The subprotocol to select for each request being upgraded (the refused version's too).
      const selected = new WeakMap<http.IncomingMessage, string | false>()
      const wss = new WebSocketServer({
        noServer: true,
        clientTracking: false,
        perMessageDeflate: false,
        maxPayload: options.maxFrameBytes,
        handleProtocols: (_, request) => selected.get(request) ?? false
      })

      const hosts = HostCheck.forService(options.host, options.allowedHosts ?? [])
      const hostAllowed = (request: http.IncomingMessage) => HostCheck.allowedHost(request.headers.host, hosts)
      const trusted = options.trustedProxies ?? ClientAddress.none

      // Connections that have not sent complete request headers yet, oldest first, with when they came.
      const silent = new Map<Duplex, number>()
      const spoke = (socket: Duplex) => {
        silent.delete(socket)
      }
      const headersTimeoutMs = options.headersTimeoutMs ?? 10_000

      const sessionMailbox = { capacity: Math.max(256, options.limits.rateLimit.burst * 4) }
      const auth = options.auth ?? Authenticator.none

      /**
       * Checks a credential (once per connection, never per frame), then `admitted`; a refusal
       * completes the handshake and closes at once with 4401/4403, which a page can read (it
       * cannot read an upgrade's 401). The subprotocol selected is one the client offered, never
       * its token entry.
       */
      const authenticateUpgrade = (
        request: http.IncomingMessage,
        socket: Duplex,
        head: Buffer,
        access: Authenticator.Access,
        endpoint: "ws" | "foxglove",
        query: URL | undefined,
        admitted: (identity: Authenticator.Identity, credential: Authenticator.Credential | undefined) => void
      ) => {
        const address = ClientAddress.ofRequest(request, trusted)
        if (auth.mode === "none") return admitted(Authenticator.anonymous(address), undefined)
        const credential = Authenticator.credentialOf(request, { query })
        Runtime.runCallback(runtime)(auth.check(credential, address, access), {
          onExit: (exit) => {
            if (socket.destroyed) return
            if (Exit.isSuccess(exit)) return admitted(exit.value, credential)
            const error = Option.getOrUndefined(Cause.failureOption(exit.cause))
            if (error === undefined) return socket.destroy()
            metrics.authRefused(Authenticator.reasonOf(error), endpoint)
            if (endpoint === "ws") metrics.refused(error._tag === "Forbidden" ? "forbidden" : "unauthorized")
            selected.set(request, offered(request)[0] ?? false)
            const code = Authenticator.closeCodeOf(error)
            wss.handleUpgrade(request, socket, head, (ws) => ws.close(code, CloseCode.reason(error.message)))
          }
        })
      }

      const upgrade = (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
        spoke(socket)
        const url = requestUrl(request)
        if (url === undefined) {
          metrics.refused("bad_request")
          return Route.refuseUpgrade(socket, 400, "Bad request target\n")
        }
        if (!hostAllowed(request)) {
          metrics.httpRefused("host")
          return Route.refuseUpgrade(socket, 421, "This server does not answer to that Host (set ALLOWED_HOSTS)\n")
        }
        const endpoint = options.upgrades?.get(url.pathname)
        if (endpoint !== undefined) {
          if (auth.mode === "none") return endpoint(request, socket, head)
          // Foxglove and Lichtblick take only a URL: `/foxglove?token=` (redacted from every log line).
          const query = url.pathname === "/foxglove" ? url : undefined
          return authenticateUpgrade(request, socket, head, "viewer", "foxglove", query, (identity, credential) =>
            endpoint(request, socket, head, (connection) => auth.track(identity, credential, { ...connection, endpoint: "foxglove" })))
        }
        if (url.pathname !== "/ws") {
          metrics.refused("path")
          return Route.refuseUpgrade(socket, 404, "WebSocket endpoint is /ws\n")
        }
        if (options.draining()) {
          metrics.refused("draining")
          return Route.refuseUpgrade(socket, 503, "Server shutting down\n", { "Retry-After": "5" })
        }
        if (!originAllowed(request, options.allowedOrigins)) {
          metrics.refused("origin")
          return Route.refuseUpgrade(socket, 403, "Origin not allowed\n")
        }
        authenticateUpgrade(request, socket, head, "user", "ws", undefined, (identity, credential) =>
          startSession(request, socket, head, identity, credential))
      }

      /** Starts `session:<id>` for an upgrade of `/ws` whose user is known; the session completes the handshake. */
      const startSession = (
        request: http.IncomingMessage,
        socket: Duplex,
        head: Buffer,
        identity: Authenticator.Identity,
        credential: Authenticator.Credential | undefined
      ) => {
        const sessions = options.sessions
        if (Option.isNone(sessions.supervisor())) {
          metrics.refused("restarting")
          return Route.refuseUpgrade(socket, 503, "Sessions are restarting\n", { "Retry-After": "1" })
        }
        const address = ClientAddress.ofRequest(request, options.trustedProxies ?? ClientAddress.none)
        if (sessions.addressFull(address)) {
          metrics.refused("address")
          return Route.refuseUpgrade(socket, 429, "Too many connections from this address\n", { "Retry-After": "5" })
        }
        const negotiated = Subprotocol.negotiate(offered(request))
        if (Either.isLeft(negotiated)) {
          metrics.refused("version")
          const refused = negotiated.left
          selected.set(request, refused.handshakeProtocol ?? false)
          return wss.handleUpgrade(request, socket, head, (ws) => ws.close(refused.code, refused.reason))
        }
        selected.set(request, negotiated.right.name)
        const id = options.nextSessionId()
        const key = `session:${id}`
        const session = Session.make({
          id,
          who: { address, userAgent: request.headers["user-agent"] },
          subprotocol: negotiated.right,
          bridge: options.bridge,
          metrics,
          limits: options.limits,
          identity,
          upgrade: Route.deferredUpgrade(wss, request, socket, head),
          transport: socket
        })
        Runtime.runFork(runtime)(
          sessions.start(key, session, {
            address,
            mailbox: sessionMailbox,
            register: (session) => {
              const failed = Registry.unsafeRegister(options.sessionRegistry, key, session)
              if (failed === undefined && identity.via !== "none") {
                auth.track(identity, credential, {
                  close: (code, reason) => void session.unsafeTellUrgent({ _tag: "Revoke", code, reason }),
                  alive: () => session.isAlive()
                })
              }
              return failed
            }
          }).pipe(
            Effect.catchTag("MaxChildren", () =>
              Effect.sync(() => {
                metrics.refused("capacity")
                Route.refuseUpgrade(socket, 503, "Too many connections\n", { "Retry-After": "5" })
              })),
            Effect.catchAll((error) =>
              Effect.zipRight(
                Effect.logDebug("session did not start", error),
                Effect.sync(() => socket.destroy())
              )
            )
          )
        )
      }

      const stallGuard = ServerSentEvents.stallGuard((options.eventStreams ?? defaultStreamLimits).stallMs)
      let nextStream = 0

      const respond = (request: http.IncomingMessage, response: http.ServerResponse) => {
        spoke(request.socket)
        const url = requestUrl(request)
        if (url === undefined) return Route.text(response, 400, "Bad request target\n")
        if (!anyHost.has(url.pathname) && !hostAllowed(request)) {
          metrics.httpRefused("host")
          return Route.text(response, 421, "This server does not answer to that Host (set ALLOWED_HOSTS)\n")
        }
        const route = Route.find(options.routes, request.method ?? "GET", url.pathname)
        if (route === undefined) {
          const allow = Route.allowed(options.routes, url.pathname)
          if (allow.length === 0) return Route.text(response, 404, "Not found\n")
          metrics.httpRefused("method")
          return Route.text(response, 405, "Method not allowed\n", { allow: allow.join(", ") })
        }
        const access = route.access ?? "viewer"
        if (auth.mode === "none" || access === "public") return serve(request, response, url, route)
        const credential = Authenticator.credentialOf(request)
        Runtime.runCallback(runtime)(auth.check(credential, ClientAddress.ofRequest(request, trusted), access), {
          onExit: (exit) => {
            if (response.destroyed) return
            if (Exit.isSuccess(exit)) {
              serve(request, response, url, route)
              if (route.eventStream === true && !response.writableEnded) {
                // An event stream lasts: it ends when its user's access does.
                auth.track(exit.value, credential, {
                  endpoint: "sse",
                  close: () => response.end(),
                  alive: () => !response.writableEnded && !response.destroyed
                })
              }
              return
            }
            const error = Option.getOrUndefined(Cause.failureOption(exit.cause))
            if (error === undefined) return Route.text(response, 500, "Internal error\n")
            metrics.authRefused(Authenticator.reasonOf(error), route.eventStream === true ? "sse" : "http")
            if (error._tag === "Forbidden") return Route.json(response, 403, { error: error.message })
            response.setHeader(
              "www-authenticate",
              error.reason === "none" ? "Bearer realm=\"fleetvisor\"" : "Bearer realm=\"fleetvisor\", error=\"invalid_token\""
            )
            Route.json(response, 401, { error: error.message })
          }
        })
      }

      /** Serves an event stream as `stream:<n>` under `gateway/streams`, within its bounds. */
      const startStream = (request: http.IncomingMessage, response: http.ServerResponse, url: URL, route: Route.Route) => {
        const streams = options.streams
        const capacity = () => {
          metrics.httpRefused("sse_capacity")
          Route.text(response, 503, "Too many event streams\n", { "retry-after": "5" })
        }
        if (Option.isNone(streams.supervisor())) return capacity()
        const address = ClientAddress.ofRequest(request, trusted)
        if (streams.addressFull(address)) {
          metrics.httpRefused("sse_address")
          return Route.text(response, 429, "Too many event streams from this address\n", { "retry-after": "5" })
        }
        const stream = StreamConnection.make({ request, response, url, route, address, guard: stallGuard, metrics })
        Runtime.runFork(runtime)(
          streams.start(`stream:${++nextStream}`, stream, { address }).pipe(
            Effect.catchTag("MaxChildren", () => Effect.sync(capacity)),
            Effect.catchAll((error) =>
              Effect.zipRight(Effect.logDebug("event stream did not start", error), Effect.sync(() => response.destroy()))
            )
          )
        )
      }

      /** Runs a route's handler; an event stream is an actor's. */
      const serve = (request: http.IncomingMessage, response: http.ServerResponse, url: URL, route: Route.Route) => {
        if (route.eventStream === true) return startStream(request, response, url, route)
        const fail = (error: unknown) => {
          Runtime.runFork(runtime)(Effect.logError("request failed", url.pathname, error))
          if (!response.headersSent) Route.text(response, 500, "Internal error\n")
          else response.destroy()
        }
        try {
          const result = route.handler(request, response, url)
          if (result instanceof Promise) result.catch(fail)
        } catch (error) {
          fail(error)
        }
      }

      const serverOptions: http.ServerOptions = {
        keepAliveTimeout: 5_000,
        // For a request after the first on a kept-alive connection (the first is `silent`'s).
        headersTimeout: headersTimeoutMs,
        requestTimeout: Math.max(300_000, headersTimeoutMs),
        connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(headersTimeoutMs / 4)))
      }
      const tls = options.tls
      // The same server over TLS: a handshake gets `HEADERS_TIMEOUT` too, then the request's headers do.
      const server: http.Server = tls === undefined
        ? http.createServer(serverOptions, respond)
        : https.createServer({
          ...serverOptions,
          ...TlsFiles.secureContextOptions(tls.current()),
          handshakeTimeout: headersTimeoutMs
        }, respond)
      if (tls !== undefined) {
        const secure = server as https.Server
        yield* Effect.acquireRelease(
          Effect.sync(() => tls.subscribe((pair) => secure.setSecureContext(TlsFiles.secureContextOptions(pair)))),
          (unsubscribe) => Effect.sync(unsubscribe)
        )
      }
      server.on("upgrade", upgrade)
      server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
        // Node's `headersTimeout` (a request after the first on a kept-alive connection) is an idle close too.
        const timedOut = error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        // Counted once, whichever of Node's check and the sweep below sees it first.
        if (timedOut && (silent.delete(socket) || !socket.destroyed)) metrics.httpRefused("idle")
        else silent.delete(socket)
        const status = timedOut
          ? "408 Request Timeout"
          : error.code === "HPE_HEADER_OVERFLOW"
          ? "431 Request Header Fields Too Large"
          : "400 Bad Request"
        if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`)
        socket.destroy()
      })
      // Node has no handler for CONNECT and would close the connection without a word.
      server.on("connect", (_: http.IncomingMessage, socket: Duplex) => {
        spoke(socket)
        metrics.httpRefused("method")
        Route.refuseUpgrade(socket, 405, "Method not allowed\n", { Allow: "GET, HEAD, POST" })
      })

      const limit = options.maxHttpConnections ?? connectionLimit(openFileLimit())
      if (limit !== undefined) server.maxConnections = limit
      server.on("drop", () => metrics.httpRefused("connections"))
      // Near the limit, the oldest silent connection makes room for the newcomer.
      const evictAbove = limit === undefined ? Number.POSITIVE_INFINITY : limit - Math.min(64, Math.max(1, Math.floor(limit / 20)))
      // Sockets are counted by the server itself (`getConnections`), not by a `close` listener
      // of our own: one more listener on each socket would cost every idle session ~450 bytes.
      // A silent socket that closes stays in `silent` until the sweep below, which skips it.
      const evictFor = (socket: Duplex) => (error: Error | null, count: number) => {
        if (error !== null || count <= evictAbove) return
        for (const oldest of silent.keys()) {
          if (oldest === socket) continue
          silent.delete(oldest)
          if (oldest.destroyed) continue
          metrics.httpRefused("evicted")
          oldest.destroy()
          return
        }
      }
      // Over TLS the sockets requests arrive on are the TLS ones, which exist once the handshake is done.
      server.on(tls === undefined ? "connection" : "secureConnection", (socket: Socket) => {
        silent.set(socket, Date.now())
        if (limit !== undefined) server.getConnections(evictFor(socket))
      })
      // Ten times a second, at most 64 closes a turn: a flood of silent connections that all
      // expire together is closed over a few turns, not in one long one.
      const sweep = setInterval(() => {
        const expired = Date.now() - headersTimeoutMs
        let closed = 0
        for (const [socket, since] of silent) {
          if (since > expired || closed >= 64) break
          silent.delete(socket)
          if (socket.destroyed) continue
          closed++
          metrics.httpRefused("idle")
          socket.destroy()
        }
      }, Math.min(100, Math.max(10, Math.floor(headersTimeoutMs / 4))))
      sweep.unref()
      yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(sweep)))
      const address = yield* Effect.acquireRelease(listen(server, options.host, options.port), () => close(server))
      yield* Effect.annotateLogs(Effect.logInfo("listening"), {
        host: address.address,
        port: address.port,
        maxHttpConnections: limit ?? "none"
      })
      if (limit !== undefined && options.maxConnections !== undefined && limit < options.maxConnections) {
        yield* Effect.logWarning(
          `the open-file limit allows ${limit} connections, fewer than MAX_CONNECTIONS (${options.maxConnections}); raise it (systemd LimitNOFILE=) for more sessions`
        )
      }
      options.onListening?.(address)
      return { server, address }
    }),
  receive: (state, message) => {
    message.reply.succeed(state.address)
    return state
  }
})
