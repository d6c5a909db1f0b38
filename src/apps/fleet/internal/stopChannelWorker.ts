/**
 * The stop channel's thread, started by `StopChannel.make`: a WebSocket server of its own and
 * an MQTT connection of its own, so that an emergency stop for an AGV goes from the client's
 * socket to the broker without waiting for the main thread, its actors or its garbage
 * collections. It may run under SCHED_FIFO (`realtimePriority`), as the control loop's thread
 * does. Its messages with the main thread are stopChannelProtocol.ts's.
 *
 * Protocol (subprotocol `fleetvisor.stop.v1`, JSON text frames):
 *   → { "id": any, "robot": "<manufacturer>/<serial>" | "<arm id>" }   one robot
 *   → { "id": any }                                                   every robot
 *   ← { "id": same, "ok": true, "writtenAt"?: epoch ms, "reached"?: [ids], "latchedOnly"?: [ids] }
 *        writtenAt: when this thread wrote the stop to the broker
 *   ← { "id": same, "ok": false, "error": { "_tag": "UnknownRobot" | "BadRequest" | …, … } }
 *
 * A live AGV (its link runs: the shared table's flag), or, with several nodes, an AGV heard of
 * on the broker (the table's heard flag: its link may run on another node) is stopped here: its
 * latch flag in the shared table is set (so the main thread refuses its next order even before it hears of the
 * stop), then `instantActions` with `startPause` and `cancelOrder`, its headerId taken from the
 * shared counter, is published on this thread's connection (encoded by `MessageCodec`, on the
 * topic `Topic.format` names). Everything else (arms, whose TCP connection the main thread
 * holds; robots this thread does not know; AGVs while this connection is down) is handed to
 * the main thread, which stops and latches them and answers. Every stop this thread makes is
 * reported to the main thread, which commits the latch to disk, records it and tells the AGV's
 * link (which watches for the AGV's confirmation); the reply leaves once the main thread has
 * done that, so an answered stop is a durable latch.
 *
 * The edge is bounded as `/ws`'s is: a `Host` that HostCheck's rule refuses gets 421 (DNS
 * rebinding), a browser page of a foreign `Origin` 403 (a client without `Origin`, not a
 * browser, is accepted; a page's own host on another port is not foreign), an address past
 * `maxPerAddress` connections 429, and a connection that sends stops faster than 20 a second
 * (bursts of 40) is closed with 1008. A stop of the same target within `coalesceMs` of the last
 * one that went out is answered with that stop's answer without going out again (it is latched
 * already, and its link resends an AGV's stop until confirmed): duplicates become one audit row
 * with their count when the window closes.
 *
 * With `tls` (PEM `{ cert, key }`) the port serves WSS; `{ type: "tls", cert, key }` replaces
 * the certificate for the handshakes that follow (a reload on SIGHUP).
 *
 * With `auth` (the node has identities) each upgrade that passes those checks is admitted by
 * the main thread (`admit`: its credential headers), once: a refused one completes the
 * handshake and is closed with the refusal's code (4401/4403, which a browser can read, as on
 * `/ws`); an admitted one's stops are audited under its user (`who`), and the main thread
 * closes it (`close`) when its credential is revoked or expires.
 */
import * as Either from "effect/Either"
import mqtt from "mqtt"
import type { IncomingMessage } from "node:http"
import { createServer as createHttpsServer } from "node:https"
import { performance } from "node:perf_hooks"
import { type WebSocket, WebSocketServer } from "ws"
import * as HostCheck from "../../../http/HostCheck.js"
import { connectArguments, refusal, secureClient } from "../../../links/mqtt/BrokerSecurity.js"
import * as Header from "../../../links/vda5050/Header.js"
import * as MessageCodec from "../../../links/vda5050/MessageCodec.js"
import * as SharedHeaderIds from "../../../links/vda5050/SharedHeaderIds.js"
import * as Topic from "../../../links/vda5050/Topic.js"
import * as ParentPort from "../../../node/ParentPort.js"
import { Pending } from "../../../node/Pending.js"
import { prioritizeThread } from "../../../node/ThreadPriority.js"
import type { StopReport } from "../../../protocol/FleetRpcs.js"
import { Stat, type StopChannelWorkerProtocol, type StopError } from "./stopChannelProtocol.js"

const parent = ParentPort.make<StopChannelWorkerProtocol>()
const {
  allowedHosts,
  allowedOrigins,
  auth,
  brokerSecurity,
  brokerUrl,
  capacity,
  clientId,
  coalesceMs,
  host,
  maxPerAddress,
  port,
  prefix,
  priority,
  realtimePriority,
  tls
} = parent.data
const { counters, heard, latches, live } = SharedHeaderIds.columns(parent.data.table, capacity)
const stats = new Float64Array(parent.data.stats)
const hostCheck: HostCheck.HostCheckOptions = { listenHost: host, allowedHosts }

const { realtime } = prioritizeThread({ priority, realtimePriority })

/** An AGV this thread may stop: its identity, slot and `instantActions` topic. */
interface Agv extends Header.AgvIdentity {
  readonly robot: string
  readonly slot: number
  readonly topic: string
}

/** What the main thread answers a stop it made or was handed. */
interface Result {
  readonly error?: StopError | undefined
  readonly report?: StopReport | undefined
}

/** A client's answer: `writtenAt` when this thread published the stop. */
interface Answer extends Result {
  readonly writtenAt?: number
}

const agvs = new Map<string, Agv>()
const results = new Pending<(result: Result) => void>()
let actionCounter = 0

/** Why the broker connection failed, for the main thread's log (sampled there); never a secret. */
const reportBroker = (error: unknown) => parent.post({ type: "broker", ...refusal(error) })

/** The fleet's credentials and TLS files (`BrokerSecurity`), read again before each reconnect; unreadable now: tried again then. */
const brokerArguments = (options: mqtt.IClientOptions) => {
  try {
    return connectArguments(brokerUrl, brokerSecurity, options)
  } catch (error) {
    reportBroker(error)
    return connectArguments(brokerUrl, { username: brokerSecurity?.username }, options)
  }
}
const target = brokerArguments({ clientId, reconnectPeriod: 1_000, connectTimeout: 5_000, queueQoSZero: false })
const broker = secureClient(mqtt.connect(target.url, target.options), brokerSecurity, {
  maxReconnectPeriod: 5_000,
  onSecretError: reportBroker
})
broker.on("connect", () => (broker.stream as { setNoDelay?: (noDelay: boolean) => void } | undefined)?.setNoDelay?.(true))
broker.on("error", reportBroker) // mqtt.js reconnects by itself; stops are handed over while it is down

const delivery = Topic.delivery.instantActions

/** The stop's message, and the id of its `cancelOrder` (the AGV's link watches for it to finish). */
const instantActions = (agv: Agv, now: number) => {
  const stamp = now.toString(36)
  const cancelId = `cancelOrder-${stamp}-s${++actionCounter}`
  const payload = MessageCodec.encode("instantActions", {
    ...Header.make(agv, Atomics.add(counters, agv.slot, 1), now),
    actions: [
      { actionType: "startPause", actionId: `startPause-${stamp}-s${++actionCounter}`, blockingType: "HARD" },
      { actionType: "cancelOrder", actionId: cancelId, blockingType: "NONE" }
    ]
  })
  return { payload, cancelId }
}

// The first encoding builds the schema's encoder: now, rather than in the first stop.
MessageCodec.encode("instantActions", { ...Header.make({ manufacturer: "-", serialNumber: "-" }, 0, Date.now()), actions: [] })

/** When, in epoch milliseconds with a fraction, as other processes of the machine can compare. */
const preciseNow = () => performance.timeOrigin + performance.now()

type Published = { readonly writtenAt: number; readonly cancelId: string } | { readonly failed: string }

/** Latches one AGV and publishes its stop; resolves with when it was written and its cancelOrder id, or why it failed. */
const publishStop = (agv: Agv, now: number) =>
  new Promise<Published>((resolve) => {
    Atomics.store(latches, agv.slot, 1)
    const { cancelId, payload } = instantActions(agv, now)
    if (Either.isLeft(payload)) return resolve({ failed: payload.left.message })
    broker.publish(agv.topic, payload.right, { qos: delivery.qos, retain: delivery.retain }, (error) =>
      resolve(error === undefined || error === null ? { writtenAt: preciseNow(), cancelId } : { failed: String(error.message ?? error) }))
  })

/** Hands a stop to the main thread; resolves with its answer: `{ report }` or `{ error }`. */
const forward = (robot: string | undefined, skip: ReadonlyArray<string>, who: string) =>
  new Promise<Result>((resolve) => {
    stats[Stat.forwarded]++
    parent.post({ type: "forward", key: results.add(resolve), robot, skip, who })
  })

/** Tells the main thread which AGVs this thread stopped; resolves once it has committed their latches. */
const reportStopped = (stopped: ReadonlyArray<{ readonly agv: Agv; readonly cancelId: string }>, who: string, all: boolean) =>
  new Promise<Result>((resolve) =>
    parent.post({
      type: "stopped",
      key: results.add(resolve),
      robots: stopped.map(({ agv }) => agv.robot),
      published: Object.fromEntries(stopped.map(({ agv, cancelId }) => [agv.robot, [cancelId]])),
      who,
      all
    })
  )

/** Whether this thread may stop the AGV through the broker: its link runs here, or it was heard of there (several nodes). */
const reachable = (agv: Agv) => Atomics.load(live, agv.slot) === 1 || Atomics.load(heard, agv.slot) === 1

const reachableAgv = (robot: string) => {
  const agv = agvs.get(robot)
  return agv !== undefined && reachable(agv) ? agv : undefined
}

/**
 * Stops `robot` (or every robot), resolving with `{ writtenAt?, report? }` (`writtenAt` when
 * published here) or `{ error }`, once the main thread has committed the latches.
 */
const stop = async (robot: string | undefined, who: string): Promise<Answer> => {
  const now = Date.now()
  if (robot !== undefined) {
    const agv = broker.connected ? reachableAgv(robot) : undefined
    if (agv === undefined) return forward(robot, [], who)
    const published = await publishStop(agv, now)
    if ("failed" in published) {
      stats[Stat.publishFailed]++
      return forward(robot, [], who)
    }
    stats[Stat.published]++
    const { error } = await reportStopped([{ agv, cancelId: published.cancelId }], who, false)
    return error === undefined
      ? { writtenAt: published.writtenAt, report: { reached: [robot], latchedOnly: [] } }
      : { error }
  }
  if (!broker.connected) return forward(undefined, [], who)
  const targets = [...agvs.values()].filter(reachable)
  const outcomes = await Promise.all(targets.map((agv) => publishStop(agv, now)))
  const stopped = targets.flatMap((agv, i) => {
    const outcome = outcomes[i]
    return "failed" in outcome ? [] : [{ agv, cancelId: outcome.cancelId }]
  })
  stats[Stat.published] += stopped.length
  stats[Stat.publishFailed] += targets.length - stopped.length
  if (stopped.length > 0) await reportStopped(stopped, who, true)
  // The main thread stops and latches the rest: the arms, every other robot, and any AGV not stopped here.
  return forward(undefined, stopped.map(({ agv }) => agv.robot), who)
}

const badRequest = (message: string): StopError & { readonly message: string } => ({ _tag: "BadRequest", message })

type Parsed =
  | { readonly id: unknown; readonly error: StopError }
  | { readonly id: unknown; readonly error?: undefined; readonly robot: string | undefined }

const parse = (data: Buffer | ArrayBuffer | Array<Buffer>, isBinary: boolean): Parsed => {
  if (isBinary) return { id: null, error: badRequest("frames are JSON text") }
  let request: unknown
  try {
    request = JSON.parse(data.toString())
  } catch {
    return { id: null, error: badRequest("not JSON") }
  }
  if (typeof request !== "object" || request === null || Array.isArray(request)) {
    return { id: null, error: badRequest("a request is an object { id, robot? }") }
  }
  const { id, robot } = request as { readonly id?: unknown; readonly robot?: unknown }
  if (robot !== undefined && (typeof robot !== "string" || robot === "")) {
    return { id: id ?? null, error: badRequest("robot is a non-empty string, or absent for every robot") }
  }
  return { id: id ?? null, robot }
}

/** No `Origin` (not a browser), `*`, a listed origin, or a page of the host the client reached this port by (any port). */
const originAllowed = (origin: string | undefined, header: string | undefined) => {
  if (origin === undefined || allowedOrigins.includes("*") || allowedOrigins.includes(origin)) return true
  try {
    return new URL(origin).hostname.replace(/^\[|\]$/g, "").toLowerCase() === HostCheck.nameOf(header ?? "")
  } catch {
    return false
  }
}

const perAddress = new Map<string | undefined, number>()

/** What the main thread said of an upgrade's credential, under the key its connection goes by. */
interface Admission {
  readonly key: number
  readonly user?: string | undefined
  readonly refusal?: { readonly code: number; readonly reason: string } | undefined
}

/** Upgrades waiting for the main thread's admission. */
const admissions = new Pending<(admission: Admission) => void>()
/** Open connections the main thread admitted, by their admission's key. */
const admittedSockets = new Map<number, WebSocket>()
/** The admission of each upgrade, for its connection. */
const admissionOf = new WeakMap<IncomingMessage, Admission>()

/** Asks the main thread who the upgrade's credential is. */
const admit = (request: IncomingMessage) =>
  new Promise<Admission>((resolve) => {
    const key = admissions.add((answer) => resolve({ ...answer, key }))
    const { authorization, cookie } = request.headers
    parent.post({
      type: "admit",
      key,
      headers: { authorization, "sec-websocket-protocol": request.headers["sec-websocket-protocol"], cookie },
      address: request.socket.remoteAddress ?? "unknown"
    })
  })

/** Over TLS, the WebSocket server rides an HTTPS server; otherwise `ws` makes a plain one. */
const secure = tls === undefined ? undefined : createHttpsServer(
  { cert: tls.cert, key: tls.key, handshakeTimeout: 10_000 },
  // What `ws`'s own server answers a request that is not an upgrade.
  (_, response) => response.writeHead(426, { "content-type": "text/plain" }).end("Upgrade Required")
)

const server = new WebSocketServer({
  ...(secure === undefined ? { host, port } : { server: secure }),
  perMessageDeflate: false,
  maxPayload: 4_096,
  handleProtocols: (protocols) => (protocols.has("fleetvisor.stop.v1") ? "fleetvisor.stop.v1" : false),
  verifyClient: ({ origin, req }: { origin: string | undefined; req: IncomingMessage }, done: (result: boolean, code?: number, message?: string) => void) => {
    if (!HostCheck.allowedHost(req.headers.host, hostCheck)) {
      stats[Stat.refusedHost]++
      return done(false, 421, "Misdirected Request")
    }
    if (!originAllowed(origin, req.headers.host)) {
      stats[Stat.refusedOrigin]++
      return done(false, 403, "Forbidden")
    }
    if ((perAddress.get(req.socket.remoteAddress) ?? 0) >= maxPerAddress) {
      stats[Stat.refusedAddress]++
      return done(false, 429, "Too Many Requests")
    }
    if (!auth) return done(true)
    // Admitted or not, the handshake completes: a refusal is a close code a browser can read.
    admit(req).then((admission) => {
      admissionOf.set(req, admission)
      done(true)
    })
  }
})

/** Stops sent within the coalescing window, by target (`*`: every robot): their answer, and duplicates since. */
const recent = new Map<string, { readonly answer: Promise<Answer>; count: number }>()

/** Stops `robot`, or answers with the stop of the same target that went out less than `coalesceMs` ago. */
const stopOnce = (robot: string | undefined, who: string) => {
  const target = robot ?? "*"
  const last = recent.get(target)
  if (last !== undefined) {
    last.count++
    stats[Stat.coalesced]++
    return last.answer
  }
  const entry = { answer: stop(robot, who), count: 0 }
  recent.set(target, entry)
  entry.answer.then(({ error }) => {
    // A stop that failed is not an answer to reuse: the next request tries again.
    if (error !== undefined) return void recent.delete(target)
    setTimeout(() => {
      recent.delete(target)
      if (entry.count > 0) parent.post({ type: "coalesced", robot, count: entry.count, who })
    }, coalesceMs).unref()
  })
  return entry.answer
}

/** Stops a connection may ask per second on average, and at once. */
const ratePerSecond = 20
const burst = 40

server.on("connection", (socket, request) => {
  const admission = admissionOf.get(request)
  if (admission?.refusal !== undefined) {
    stats[Stat.refusedAuth]++
    return socket.close(admission.refusal.code, admission.refusal.reason)
  }
  stats[Stat.connections]++
  const address = request.socket.remoteAddress ?? "unknown"
  // Stops are audited under the user when the node has identities, else under the address.
  const who = admission?.user ?? address
  if (admission !== undefined) {
    admittedSockets.set(admission.key, socket)
    parent.post({ type: "opened", key: admission.key })
  }
  perAddress.set(address, (perAddress.get(address) ?? 0) + 1)
  socket.on("close", () => {
    stats[Stat.connections]--
    const left = (perAddress.get(address) ?? 1) - 1
    if (left === 0) perAddress.delete(address)
    else perAddress.set(address, left)
    if (admission !== undefined) {
      admittedSockets.delete(admission.key)
      parent.post({ type: "closed", key: admission.key })
    }
  })
  socket.on("error", () => {})
  let tokens = burst
  let refilledAt = performance.now()
  socket.on("message", (data, isBinary) => {
    stats[Stat.requests]++
    const now = performance.now()
    tokens = Math.min(burst, tokens + ((now - refilledAt) / 1000) * ratePerSecond)
    refilledAt = now
    if (tokens < 1) {
      if (socket.readyState !== socket.OPEN) return
      stats[Stat.throttled]++
      return socket.close(1008, "too many stops")
    }
    tokens--
    const parsed = parse(data, isBinary)
    if (parsed.error !== undefined) {
      stats[Stat.badRequests]++
      socket.send(JSON.stringify({ id: parsed.id, ok: false, error: parsed.error }))
      return
    }
    stopOnce(parsed.robot, who).then(({ error, report, writtenAt }) =>
      socket.send(JSON.stringify(
        error !== undefined
          ? { id: parsed.id, ok: false, error }
          : { id: parsed.id, ok: true, ...(writtenAt === undefined ? {} : { writtenAt }), ...report }
      ))
    )
  })
})

parent.onMessage((message) => {
  switch (message.type) {
    case "slot":
      agvs.set(message.robot, {
        robot: message.robot,
        manufacturer: message.manufacturer,
        serialNumber: message.serialNumber,
        slot: message.slot,
        topic: Topic.format({ ...message, topic: "instantActions" }, prefix)
      })
      return
    case "tls":
      // Checked by the main thread; new handshakes get it, open connections keep theirs.
      secure?.setSecureContext({ cert: message.cert, key: message.key })
      return
    case "admitted":
      return admissions.take(message.key)?.({ key: message.key, user: message.user, refusal: message.refusal })
    case "close":
      admittedSockets.get(message.key)?.close(message.code, message.reason)
      return
    case "result":
      return results.take(message.key)?.({ error: message.error, report: message.report })
  }
})

server.on("error", (error) => parent.post({ type: "failed", error: String(error.message ?? error) }))
server.on("listening", () => {
  const address = server.address()
  parent.post({ type: "ready", realtime, port: typeof address === "object" && address !== null ? address.port : port })
})
secure?.listen(port, host)
