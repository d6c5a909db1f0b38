/**
 * The admin API: the live actor tree as JSON (`/admin/actors`) and as a stream of snapshots
 * (`/admin/actors/stream`, Server-Sent Events, a `tree` event whenever it changed), and the page
 * that draws it (`/admin/`).
 *
 * Access: when `AUTH` is `tokens` or `jwt`, the listener lets only admins through (`ADMIN_TOKEN`
 * is an admin credential then too). With `AUTH=none` and a token configured, requests must carry
 * `Authorization: Bearer <token>`; without one, only loopback clients are served, so a fresh
 * install does not show its insides to the network.
 * Whatever the token, the listener answers these routes only for a `Host` the server goes by
 * (`HostCheck`: 421 otherwise), so a page that rebinds its DNS name to 127.0.0.1 reads nothing.
 *
 * The stream drops to the latest tree while the client's socket is full (`ServerSentEvents.open`),
 * and is an event stream of the gateway's (an actor under `gateway/streams`, bounded in number,
 * cut off when stalled).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { timingSafeEqual } from "node:crypto"
import type { IncomingMessage, ServerResponse } from "node:http"
import type { ActorSystem } from "../actors/ActorSystem.js"
import type { ActorNode } from "../actors/Inspection.js"
import * as Route from "./Route.js"
import * as ServerSentEvents from "./ServerSentEvents.js"
import * as StaticFiles from "./StaticFiles.js"

/** The body of `/admin/actors`. */
/** What the admin routes need of this node's cluster. */
export interface ClusterAdmin {
  /** The node's view of the cluster: its id, the live nodes, the robots it runs, its counts. */
  readonly view: () => unknown
  /**
   * Hands every robot this node runs to the other nodes and takes no more (a drain before
   * maintenance); resolves with why Redis could not be told, or undefined once it was.
   */
  readonly drain: () => Promise<string | undefined>
}

const alone = { error: "this node is alone (REDIS_URL is not set)" }

export interface ActorTree {
  /** The node's name. */
  readonly node: string
  /** When the snapshot was taken, epoch ms. */
  readonly at: number
  /** The top-level actors with their subtrees. */
  readonly actors: ReadonlyArray<ActorNode>
}

/** Options of the admin routes. */
export interface AdminOptions {
  readonly system: ActorSystem
  readonly node: string
  readonly token: Option.Option<Redacted.Redacted<string>>
  /** The page's files. */
  readonly pageDirectory: string
  /** The listener checks every request for the role admin (`AUTH` is not `none`): no check of its own. */
  readonly checkedByListener?: boolean | undefined
  /** How often the stream looks for changes. Default: 500 ms. */
  readonly streamIntervalMs?: number | undefined
  /** This node's part in a cluster, at `/admin/cluster`; none on a single node. */
  readonly cluster?: ClusterAdmin | undefined
}

const loopback = (address: string | undefined): boolean =>
  address !== undefined && (address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127."))

const sameSecret = (given: string, expected: string): boolean => {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

/** Whether a request may read the admin API; answers 401/403 itself when not. */
export const authorize = (
  token: Option.Option<Redacted.Redacted<string>>,
  request: IncomingMessage,
  response: ServerResponse
): boolean => {
  if (Option.isNone(token)) {
    if (loopback(request.socket.remoteAddress)) return true
    Route.json(response, 403, { error: "The admin API answers loopback clients only until ADMIN_TOKEN is set" })
    return false
  }
  const header = request.headers.authorization ?? ""
  const given = header.startsWith("Bearer ") ? header.slice("Bearer ".length).trim() : ""
  if (sameSecret(given, Redacted.value(token.value))) return true
  response.setHeader("www-authenticate", "Bearer realm=\"fleetvisor admin\"")
  Route.json(response, 401, { error: "Missing or wrong bearer token" })
  return false
}

/** The admin routes. */
export const routes = (options: AdminOptions): ReadonlyArray<Route.Route> => {
  const tree = (): ActorTree => ({
    node: options.node,
    at: Date.now(),
    actors: Effect.runSync(options.system.snapshot)
  })
  const interval = options.streamIntervalMs ?? 500
  const allowed = (request: IncomingMessage, response: ServerResponse) =>
    options.checkedByListener === true || authorize(options.token, request, response)
  // Every open stream is fed by one timer: the tree is read and encoded once per interval, and
  // sent to the streams that have not seen it (compared without the clock fields, so an idle
  // tree sends nothing).
  const watchers = new Set<{ readonly stream: ServerSentEvents.EventStream; last: string }>()
  let timer: ReturnType<typeof setInterval> | undefined
  const current = () => {
    const snapshot = tree()
    return { key: JSON.stringify(snapshot.actors, (k, v) => (k === "uptimeMs" ? undefined : v)), text: JSON.stringify(snapshot) }
  }
  const push = () => {
    const { key, text } = current()
    for (const watcher of watchers) {
      if (watcher.last === key) continue
      watcher.last = key
      watcher.stream.send("tree", text)
    }
  }
  return [
    Route.make("GET", "/admin/actors", (request, response) => {
      if (allowed(request, response)) Route.json(response, 200, tree())
    }, { access: "admin" }),
    Route.make("GET", "/admin/actors/stream", (request, response) => {
      if (!allowed(request, response)) return
      const stream = ServerSentEvents.open(response)
      const { key, text } = current()
      const watcher = { stream, last: key }
      stream.send("tree", text)
      watchers.add(watcher)
      timer ??= setInterval(push, interval)
      stream.onClose(() => {
        watchers.delete(watcher)
        if (watchers.size === 0 && timer !== undefined) {
          clearInterval(timer)
          timer = undefined
        }
      })
    }, { eventStream: true, access: "admin" }),
    Route.make("GET", "/admin/cluster", (request, response) => {
      if (!allowed(request, response)) return
      if (options.cluster === undefined) Route.json(response, 404, alone)
      else Route.json(response, 200, options.cluster.view())
    }, { access: "admin" }),
    Route.make("POST", "/admin/cluster/drain", async (request, response) => {
      if (!allowed(request, response)) return
      const cluster = options.cluster
      if (cluster === undefined) return Route.json(response, 404, alone)
      const failure = await cluster.drain()
      if (failure === undefined) Route.json(response, 200, cluster.view())
      else Route.json(response, 503, { error: `the drain could not reach Redis: ${failure}` })
    }, { access: "admin" }),
    StaticFiles.route("/admin", options.pageDirectory)
  ]
}
