/**
 * The service's Prometheus metrics, served at `/metrics`.
 *
 * Hot-path counts (frames and bytes) are plain numbers that the registry reads when scraped, so
 * a frame costs an addition, not a prom-client call. Gauges are read at scrape time from their
 * source: live sessions from `DynamicSupervisor.countChildren` of `gateway/sessions` (never a
 * counter of our own), mailbox depths and actor counts from the system's snapshot.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { monitorEventLoopDelay } from "node:perf_hooks"
import * as Prometheus from "prom-client"
import type { ActorSystem } from "../actors/ActorSystem.js"
import type * as Authenticator from "./Authenticator.js"
import type { ActorNode } from "../actors/Inspection.js"
import * as DynamicSupervisor from "../supervisors/DynamicSupervisor.js"
import * as Rejection from "../protocol/Rejection.js"
import * as ScrapedMetric from "../node/ScrapedMetric.js"

/**
 * Why a client frame, or one request of it, was rejected (label `reason` of
 * `fleetvisor_ws_frames_rejected_total`): `throttled` counts frames delayed by the rate limit,
 * `flood` sessions closed for keeping on, `requests_per_frame` frames of more requests than the
 * burst (closed), `requests_in_flight` and `open_streams` requests refused with `Overloaded`.
 */
export type RejectReason =
  | "wrong_frame_type"
  | "undecodable"
  | "malformed_message"
  | "unknown_rpc"
  | "invalid_payload"
  | "too_big"
  | "flood"
  | "throttled"
  | "requests_per_frame"
  | "requests_in_flight"
  | "open_streams"

/** Why an upgrade to `/ws` was refused (label `reason` of `fleetvisor_ws_upgrades_refused_total`). */
export type RefuseReason =
  | "capacity"
  | "draining"
  | "restarting"
  | "origin"
  | "version"
  | "path"
  | "bad_request"
  | "address"
  | "unauthorized"
  | "forbidden"

/** Why a server frame was not delivered (label `reason` of `fleetvisor_ws_frames_dropped_total`). */
export type DropReason = "closed" | "slow_consumer"

/**
 * Why the listener refused a request or closed a connection before any handler (label `reason`
 * of `fleetvisor_http_refused_total`): `host` (421, a `Host` it does not go by), `method` (405,
 * e.g. CONNECT), `sse_capacity` (503, `MAX_SSE_STREAMS`), `sse_address` (429,
 * `MAX_SSE_STREAMS_PER_ADDRESS`), `idle` (no complete request headers within
 * `HEADERS_TIMEOUT`), `evicted` (a silent connection closed to make room near the connection
 * limit), `connections` (dropped at the connection limit).
 */
export type HttpRefuseReason = "host" | "method" | "sse_capacity" | "sse_address" | "idle" | "evicted" | "connections"

/** Why a `/foxglove` upgrade was refused (label `reason` of `fleetvisor_foxglove_upgrades_refused_total`). */
export type FoxgloveRefuseReason = "origin" | "address" | "capacity" | "draining" | "subprotocol"

/** How an event stream ended (label `reason` of `fleetvisor_sse_streams_ended_total`): the client left, the server ended it, or it stalled. */
export type SseEndReason = "closed" | "ended" | "stalled"

/** The counters the gateway bumps, and the registry that exposes them. */
export interface GatewayMetrics {
  readonly registry: Prometheus.Registry
  /** Frames and bytes, both directions, and the client messages (requests) in them; plain fields for the hot path. */
  readonly traffic: { framesIn: number; bytesIn: number; requestsIn: number; framesOut: number; bytesOut: number }
  readonly rejected: (reason: RejectReason) => void
  readonly dropped: (reason: DropReason) => void
  readonly refused: (reason: RefuseReason) => void
  /** Sessions that ended, by how (label `reason` of `fleetvisor_sessions_ended_total`). */
  readonly sessionEnded: (reason: string) => void
  /** Requests and connections the listener refused or closed before any handler. */
  readonly httpRefused: (reason: HttpRefuseReason) => void
  readonly foxgloveRefused: (reason: FoxgloveRefuseReason) => void
  /**
   * Clients refused or cut off for their credential (label `reason`: no_credential,
   * bad_credential, expired, forbidden, revoked; label `endpoint`: http, sse, ws, foxglove, rpc,
   * stop, login) in `fleetvisor_auth_refused_total`.
   */
  readonly authRefused: (reason: Authenticator.RefuseReason, endpoint: Authenticator.Endpoint) => void
  /** Event streams (SSE) open now, kept by the listener and read at scrape time. */
  readonly sse: { open: number }
  readonly sseEnded: (reason: SseEndReason) => void
  /** The Prometheus text of every metric. */
  readonly text: Effect.Effect<string>
}

const sessionName = /^session:/
/** The other connections of the gateway (`Connections`), whose mailboxes are summed by kind. */
const connectionName = /^(foxglove|stream):/

/**
 * The `child` label of a restart: connections and robot links by kind (`session`, `robot`, `agv`,
 * `foxglove`, `stream`), since their ids are per connection or chosen by the robot (an AGV's serial number
 * comes from the broker); other children by their fixed names.
 */
const restartLabel = (child: string): string => {
  const kind = /^(session|robot|agv|foxglove|stream):/.exec(child)
  return kind === null ? child : kind[1]
}

// Session mailboxes are summed and their maximum taken: one label per session would have no bound.
const mailboxDepths = (nodes: ReadonlyArray<ActorNode>) => {
  const named = new Map<string, number>()
  let sessionsTotal = 0
  let sessionsMax = 0
  const walk = (list: ReadonlyArray<ActorNode>) => {
    for (const node of list) {
      if (node.id !== null) {
        if (sessionName.test(node.name)) {
          sessionsTotal += node.mailbox
          sessionsMax = Math.max(sessionsMax, node.mailbox)
        } else {
          const name = connectionName.exec(node.name)?.[1] ?? node.name
          named.set(name, (named.get(name) ?? 0) + node.mailbox)
        }
      }
      walk(node.children)
    }
  }
  walk(nodes)
  return { named, sessionsTotal, sessionsMax }
}

/**
 * Makes the registry for `system`, with Node's default process metrics; `sessions` finds the
 * live `gateway/sessions` supervisor. Restarts are counted while the scope lasts.
 */
export const make = (
  system: ActorSystem,
  sessions: () => Option.Option<DynamicSupervisor.DynamicSupervisorRef>
): Effect.Effect<GatewayMetrics, never, Scope.Scope> =>
  Effect.gen(function*() {
    const registry = new Prometheus.Registry()
    Prometheus.collectDefaultMetrics({ register: registry })
    // Gauges named like counters, which `promtool check metrics` rejects; `nodejs_active_*` by type remain.
    for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
      registry.removeSingleMetric(name)
    }
    const traffic = { framesIn: 0, bytesIn: 0, requestsIn: 0, framesOut: 0, bytesOut: 0 }
    const sse = { open: 0 }
    const metrics: GatewayMetrics = {
      registry,
      traffic,
      rejected: (reason) => rejected.inc({ reason }),
      dropped: (reason) => dropped.inc({ reason }),
      refused: (reason) => refused.inc({ reason }),
      sessionEnded: (reason) => ended.inc({ reason }),
      httpRefused: (reason) => httpRefused.inc({ reason }),
      foxgloveRefused: (reason) => foxgloveRefused.inc({ reason }),
      authRefused: (reason, endpoint) => authRefused.inc({ reason, endpoint }),
      sse,
      sseEnded: (reason) => sseEnded.inc({ reason }),
      text: Effect.promise(() => registry.metrics())
    }

    const trafficCounter = (name: string, help: string, read: () => number) => ScrapedMetric.counter(registry, name, help, read)
    trafficCounter("fleetvisor_ws_frames_received_total", "WebSocket frames received from clients.", () => traffic.framesIn)
    trafficCounter("fleetvisor_ws_received_bytes_total", "Payload bytes received from clients.", () => traffic.bytesIn)
    trafficCounter(
      "fleetvisor_ws_requests_received_total",
      "Client messages (requests, interrupts) in the frames received, as the rate limit counts them.",
      () => traffic.requestsIn
    )
    trafficCounter("fleetvisor_ws_frames_sent_total", "WebSocket frames sent to clients.", () => traffic.framesOut)
    trafficCounter("fleetvisor_ws_sent_bytes_total", "Payload bytes sent to clients.", () => traffic.bytesOut)

    const rejected = new Prometheus.Counter({
      name: "fleetvisor_ws_frames_rejected_total",
      help: "Client frames, or single requests, rejected, by reason (undecodable, too_big, flood, requests_in_flight, ...).",
      labelNames: ["reason"],
      registers: [registry]
    })
    const dropped = new Prometheus.Counter({
      name: "fleetvisor_ws_frames_dropped_total",
      help: "Server frames not delivered, by reason.",
      labelNames: ["reason"],
      registers: [registry]
    })
    const refused = new Prometheus.Counter({
      name: "fleetvisor_ws_upgrades_refused_total",
      help: "WebSocket upgrades refused, by reason (capacity, draining, restarting, origin, version, path).",
      labelNames: ["reason"],
      registers: [registry]
    })
    const ended = new Prometheus.Counter({
      name: "fleetvisor_sessions_ended_total",
      help: "Sessions that ended, by reason (closed, heartbeat, flood, shutdown, crash, ...).",
      labelNames: ["reason"],
      registers: [registry]
    })
    const httpRefused = new Prometheus.Counter({
      name: "fleetvisor_http_refused_total",
      help: "Requests and connections refused or closed before any handler, by reason (host, method, sse_capacity, sse_address, idle, evicted, connections).",
      labelNames: ["reason"],
      registers: [registry]
    })
    const foxgloveRefused = new Prometheus.Counter({
      name: "fleetvisor_foxglove_upgrades_refused_total",
      help: "Foxglove WebSocket upgrades refused, by reason (origin, address, capacity, draining, subprotocol).",
      labelNames: ["reason"],
      registers: [registry]
    })
    const authRefused = new Prometheus.Counter({
      name: "fleetvisor_auth_refused_total",
      help: "Clients refused or cut off for their credential, by reason (no_credential, bad_credential, expired, forbidden, revoked) and endpoint.",
      labelNames: ["reason", "endpoint"],
      registers: [registry]
    })
    new Prometheus.Gauge({
      name: "fleetvisor_sse_streams",
      help: "Server-Sent Events streams open.",
      registers: [registry],
      collect() {
        this.set(sse.open)
      }
    })
    const sseEnded = new Prometheus.Counter({
      name: "fleetvisor_sse_streams_ended_total",
      help: "Server-Sent Events streams that ended, by reason (closed by the client, ended by the server, stalled: cut off).",
      labelNames: ["reason"],
      registers: [registry]
    })
    const restarts = new Prometheus.Counter({
      name: "fleetvisor_actor_restarts_total",
      help: "Children restarted by their supervisor, by child.",
      labelNames: ["child"],
      registers: [registry]
    })
    yield* system.subscribe((event) => {
      if (event._tag === "Restarted") restarts.inc({ child: restartLabel(event.child) })
    })

    new Prometheus.Gauge({
      name: "fleetvisor_sessions",
      help: "Live WebSocket sessions: the children of gateway/sessions.",
      registers: [registry],
      collect() {
        const counts = Option.flatMap(sessions(), (ref) =>
          Effect.runSync(Effect.option(DynamicSupervisor.countChildren(ref))))
        this.set(Option.match(counts, { onNone: () => 0, onSome: (c) => c.specs }))
      }
    })
    const stats = () => Effect.runSync(system.stats)
    ScrapedMetric.gauge(registry, "fleetvisor_actors", "Actors alive.", () => stats().actors)
    ScrapedMetric.counter(registry, "fleetvisor_dead_letters_total", "Messages that could not be delivered to an actor.", () => stats().deadLetters)
    new Prometheus.Gauge({
      name: "fleetvisor_mailbox_depth",
      help: "Messages waiting in an actor's mailbox, by actor (sessions: fleetvisor_session_mailbox_*).",
      labelNames: ["actor"],
      registers: [registry],
      collect() {
        const depths = mailboxDepths(Effect.runSync(system.snapshot))
        this.reset()
        for (const [actor, depth] of depths.named) this.set({ actor }, depth)
        sessionMessages.set(depths.sessionsTotal)
        sessionMax.set(depths.sessionsMax)
      }
    })
    const sessionMessages = new Prometheus.Gauge({
      name: "fleetvisor_session_mailbox_messages",
      help: "Messages waiting in all session mailboxes.",
      registers: [registry]
    })
    const sessionMax = new Prometheus.Gauge({
      name: "fleetvisor_session_mailbox_depth_max",
      help: "Messages waiting in the fullest session mailbox.",
      registers: [registry]
    })

    const delay = monitorEventLoopDelay({ resolution: 10 })
    delay.enable()
    yield* Effect.addFinalizer(() => Effect.sync(() => delay.disable()))
    const seconds = (ns: number) => (Number.isFinite(ns) ? ns / 1e9 : 0)
    // Read together at each scrape, then the histogram restarts: each figure covers one scrape interval.
    let lag = { p50: 0, p99: 0, max: 0 }
    const lagGauge = (name: string, help: string, read: () => number, last = false) =>
      new Prometheus.Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          if (name.endsWith("_p50_seconds")) {
            lag = { p50: seconds(delay.percentile(50)), p99: seconds(delay.percentile(99)), max: seconds(delay.max) }
          }
          this.set(read())
          if (last) delay.reset()
        }
      })
    lagGauge("fleetvisor_event_loop_lag_p50_seconds", "Median event-loop delay since the previous scrape.", () => lag.p50)
    lagGauge("fleetvisor_event_loop_lag_p99_seconds", "99th percentile event-loop delay since the previous scrape.", () => lag.p99)
    lagGauge("fleetvisor_event_loop_lag_max_seconds", "Longest event-loop delay since the previous scrape.", () => lag.max, true)
    return metrics
  })

/** The `reason` label of a request the RPC bridge rejected. */
export const reasonOf: (rejection: Rejection.Rejection) => RejectReason = Rejection.$match({
  WrongFrameType: () => "wrong_frame_type" as const,
  Undecodable: () => "undecodable" as const,
  MalformedMessage: () => "malformed_message" as const,
  UnknownRpc: () => "unknown_rpc" as const,
  InvalidPayload: () => "invalid_payload" as const,
  TooManyRequests: () => "requests_per_frame" as const,
  Overloaded: (rejection) => rejection.limit
})
