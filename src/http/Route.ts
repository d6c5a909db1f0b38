/**
 * HTTP routes of the listener: a method, a path (exact, or a prefix ending in `/*`) and a
 * handler on Node's request and response. The gateway serves plain `node:http` because it must
 * take the raw socket of an upgrade (`ws` `noServer`) and answer 503 on it before any
 * WebSocket exists.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { IncomingMessage, ServerResponse } from "node:http"
import type { Duplex } from "node:stream"
import type { WebSocket, WebSocketServer } from "ws"
import type { Access } from "./Authenticator.js"

/** Handles one request; a thrown error or rejected promise answers 500. */
export type Handler = (request: IncomingMessage, response: ServerResponse, url: URL) => void | Promise<void>

/**
 * The body of an event stream as an effect, run by the stream's actor (`gateway/streams`) in its
 * scope: the stream ends when it completes, and it is interrupted when the stream ends otherwise.
 */
export type StreamBody = (request: IncomingMessage, response: ServerResponse, url: URL) => Effect.Effect<void, never, Scope.Scope>

/** One route. */
export interface Route {
  readonly method: "GET" | "POST" | "HEAD"
  /** `/healthz` matches itself; `/admin/*` matches `/admin/` and everything under it. */
  readonly path: string
  readonly handler: Handler
  /**
   * A Server-Sent Events stream: the listener serves it as an actor `stream:<n>` under
   * `gateway/streams` (at most `MAX_SSE_STREAMS`: 503; `MAX_SSE_STREAMS_PER_ADDRESS`: 429),
   * which owns the response, and cuts it off when its socket stays full for
   * `SSE_STALL_TIMEOUT`. Its handler (or `body`) must honour backpressure (`ServerSentEvents`).
   */
  readonly eventStream?: boolean | undefined
  /** The stream's body as an effect (`eventStream` routes made by `eventStream`), run instead of `handler`. */
  readonly body?: StreamBody | undefined
  /**
   * Who may use it when `AUTH` is not `none` (the listener checks before the handler runs):
   * `public` (probes, the login page, the pages' HTML, scripts and styles: their data is not
   * public), `user` (any identity), or the least role. Default `viewer`.
   */
  readonly access?: Access | undefined
}

/** Builds a route. */
export const make = (
  method: Route["method"],
  path: string,
  handler: Handler,
  options: { readonly eventStream?: boolean | undefined; readonly access?: Access | undefined } = {}
): Route => ({
  method,
  path,
  handler,
  ...(options.eventStream === true ? { eventStream: true } : {}),
  ...(options.access === undefined ? {} : { access: options.access })
})

/** An event stream whose body is an effect, run by its stream actor (GET). */
export const eventStream = (
  path: string,
  body: StreamBody,
  options: { readonly access?: Access | undefined } = {}
): Route => ({
  method: "GET",
  path,
  handler: (_, response) => text(response, 500, "An event stream is served by a gateway\n"),
  eventStream: true,
  body,
  ...(options.access === undefined ? {} : { access: options.access })
})

const matches = (route: Route, pathname: string): boolean =>
  route.path.endsWith("/*")
    ? pathname.startsWith(route.path.slice(0, -1)) || pathname === route.path.slice(0, -2)
    : pathname === route.path

/** The route of a request, if any; a GET route also serves HEAD. */
export const find = (routes: ReadonlyArray<Route>, method: string, pathname: string): Route | undefined =>
  routes.find((route) => (route.method === method || (method === "HEAD" && route.method === "GET")) && matches(route, pathname))

/** The methods some route serves `pathname` with (GET implies HEAD), for a 405's `Allow`; empty when none does. */
export const allowed = (routes: ReadonlyArray<Route>, pathname: string): Array<string> => {
  const methods = new Set<string>()
  for (const route of routes) {
    if (!matches(route, pathname)) continue
    methods.add(route.method)
    if (route.method === "GET") methods.add("HEAD")
  }
  return [...methods]
}

/** Answers with a JSON body. */
export const json = (response: ServerResponse, status: number, body: unknown): void => {
  const text = JSON.stringify(body)
  response.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store"
  })
  response.end(text)
}

/** Answers with a plain-text body. */
export const text = (response: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void => {
  response.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    ...headers
  })
  response.end(body)
}

const reasons: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  421: "Misdirected Request",
  429: "Too Many Requests",
  503: "Service Unavailable"
}

/** Refuses an upgrade on the raw socket with an HTTP status, then closes it. */
export const refuseUpgrade = (socket: Duplex, status: number, body: string, headers: Record<string, string> = {}): void => {
  if (socket.destroyed) return
  const head = [
    `HTTP/1.1 ${status} ${reasons[status] ?? "Error"}`,
    "Connection: close",
    "Content-Type: text/plain; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)
  ]
  socket.end(`${head.join("\r\n")}\r\n\r\n${body}`)
  socket.once("finish", () => socket.destroy())
}

/**
 * The rest of a WebSocket upgrade, for the actor that will own the socket to run in its `init`:
 * completes the handshake on `wss` once (then drops its inputs: an actor must not keep its
 * upgrade request), and fails if the client left meanwhile or it was already used.
 */
export const deferredUpgrade = (
  wss: WebSocketServer,
  request: IncomingMessage,
  socket: Duplex,
  head: Buffer
): () => Effect.Effect<WebSocket, Error> => {
  let handshake: { request: IncomingMessage; socket: Duplex; head: Buffer } | undefined = { request, socket, head }
  return () =>
    Effect.async<WebSocket, Error>((resume) => {
      const taken = handshake
      handshake = undefined
      if (taken === undefined) return resume(Effect.fail(new Error("the handshake was already used")))
      const gone = () => resume(Effect.fail(new Error("socket closed during the handshake")))
      taken.socket.once("close", gone)
      wss.handleUpgrade(taken.request, taken.socket, taken.head, (ws) => {
        taken.socket.off("close", gone)
        resume(Effect.succeed(ws))
      })
    })
}
