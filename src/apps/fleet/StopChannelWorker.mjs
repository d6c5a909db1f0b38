/**
 * The stop channel's thread, started by `StopChannel.make`: a WebSocket server of its own and
 * an MQTT connection of its own, so that an emergency stop for an AGV goes from the client's
 * socket to the broker without waiting for the main thread, its actors or its garbage
 * collections. It may run under SCHED_FIFO (`workerData.realtimePriority`), as the control
 * loop's thread does.
 *
 * Protocol (subprotocol `fleetvisor.stop.v1`, JSON text frames):
 *   → { "id": any, "robot": "<manufacturer>/<serial>" | "<arm id>" }   one robot
 *   → { "id": any }                                                   every robot
 *   ← { "id": same, "ok": true, "writtenAt"?: epoch ms, "reached"?: [ids], "latchedOnly"?: [ids] }
 *        writtenAt: when this thread wrote the stop to the broker
 *   ← { "id": same, "ok": false, "error": { "_tag": "UnknownRobot" | "BadRequest" | …, … } }
 *
 * A live AGV (its link runs: the shared table's flag) is stopped here: its latch flag in the
 * shared table is set (so the main thread refuses its next order even before it hears of the
 * stop), then `instantActions` with `startPause` and `cancelOrder`, its headerId taken from the
 * shared counter, is published on this thread's connection. Everything else (arms, whose TCP
 * connection the main thread holds; robots this thread does not know; AGVs while this
 * connection is down) is handed to the main thread, which stops and latches them and answers.
 * Every stop this thread makes is reported to the main thread, which commits the latch to
 * disk, records it and tells the AGV's link (which watches for the AGV's confirmation); the
 * reply leaves once the main thread has done that, so an answered stop is a durable latch.
 *
 * The edge is bounded as `/ws`'s is: a `Host` that src/http/HostCheck.ts's rule refuses (not
 * an IP address, a `localhost` name, the listen host or one of `allowedHosts`) gets 421 (DNS
 * rebinding), a browser page of a foreign `Origin` 403 (a
 * client without `Origin`, not a browser, is accepted; a page's own host on another port is
 * not foreign), an address past `maxPerAddress` connections 429, and a connection that sends
 * stops faster than 20 a second (bursts of 40) is closed with 1008. A stop of the same target
 * within `coalesceMs` of the last one that went out is answered with that stop's answer
 * without going out again (it is latched already, and its link resends an AGV's stop until
 * confirmed): duplicates become one audit row with their count when the window closes.
 *
 * Plain JavaScript for the reason ControlLoopWorker.mjs gives.
 *
 * With `workerData.tls` (PEM `{ cert, key }`) the port serves WSS; `{ type: "tls", cert, key }`
 * replaces the certificate for the handshakes that follow (a reload on SIGHUP).
 *
 * With `workerData.auth` (the node has identities) each upgrade that passes those checks is
 * admitted by the main thread (`admit`: its credential headers), once: a refused one completes
 * the handshake and is closed with the refusal's code (4401/4403, which a browser can read, as
 * on `/ws`); an admitted one's stops are audited under its user (`who`), and the main thread
 * closes it (`close`) when its credential is revoked or expires.
 *
 * In:  { type: "slot", robot, manufacturer, serialNumber, slot }  { type: "result", key, error?, report? }
 *      { type: "tls", cert, key }  { type: "admitted", key, user?, refusal?: { code, reason } }  { type: "close", key, code, reason }
 * Out: { type: "ready", realtime, port }  { type: "failed", error }  { type: "broker", reason, text }: a failed broker connect
 *      { type: "stopped", key, robots, published: { robot: [cancelOrder actionId] }, who, all }
 *      { type: "forward", key, robot?, skip, who }  { type: "coalesced", robot?, count, who }
 *      { type: "admit", key, headers, address }  { type: "opened", key }  { type: "closed", key }
 */
import mqtt from "mqtt"
import { createServer as createHttpsServer } from "node:https"
import { isIP } from "node:net"
import { performance } from "node:perf_hooks"
import { parentPort, workerData } from "node:worker_threads"
import { WebSocketServer } from "ws"
import { connectArguments, refusal, secureClient } from "../../links/mqtt/BrokerSecurity.mjs"
import { prioritizeThread } from "./ThreadPriority.mjs"

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
  stats: statsBuffer,
  table,
  tls
} = workerData
const counters = new Uint32Array(table, 0, capacity)
const live = new Int32Array(table, capacity * Uint32Array.BYTES_PER_ELEMENT, capacity)
const latched = new Int32Array(table, 2 * capacity * Uint32Array.BYTES_PER_ELEMENT, capacity)
/** Counters read by the main thread for metrics; the order is StopChannel.ts's `makeStatus`. */
const stats = new Float64Array(statsBuffer)
const REQUESTS = 0, PUBLISHED = 1, FORWARDED = 2, BAD = 3, FAILED = 4, CONNECTIONS = 5
const REFUSED_HOST = 6, REFUSED_ORIGIN = 7, REFUSED_ADDRESS = 8, THROTTLED = 9, COALESCED = 10, REFUSED_AUTH = 11

const { realtime } = prioritizeThread({ priority, realtimePriority })

/** robot → { manufacturer, serialNumber, slot, topic } */
const agvs = new Map()
const pending = new Map()
let nextKey = 0
let actionCounter = 0

/** Why the broker connection failed, for the main thread's log (sampled there); never a secret. */
const reportBroker = (error) => parentPort.postMessage({ type: "broker", ...refusal(error) })

/** The fleet's credentials and TLS files (`BrokerSecurity`), read again before each reconnect; unreadable now: tried again then. */
const brokerArguments = (options) => {
  try {
    return connectArguments(brokerUrl, brokerSecurity, options)
  } catch (error) {
    reportBroker(error)
    return connectArguments(brokerUrl, { username: brokerSecurity?.username }, options)
  }
}
const target = brokerArguments({ clientId, reconnectPeriod: 1_000, connectTimeout: 5_000, queueQoSZero: false })
const broker = secureClient(mqtt.connect(target.url, target.options), brokerSecurity, { maxReconnectPeriod: 5_000, onSecretError: reportBroker })
broker.on("connect", () => broker.stream?.setNoDelay?.(true))
broker.on("error", reportBroker) // mqtt.js reconnects by itself; stops are handed over while it is down

/** The stop's message, and the id of its `cancelOrder` (the AGV's link watches for it to finish). */
const instantActions = (agv, now) => {
  const stamp = now.toString(36)
  const cancelId = `cancelOrder-${stamp}-s${++actionCounter}`
  const payload = JSON.stringify({
    headerId: Atomics.add(counters, agv.slot, 1),
    timestamp: new Date(now).toISOString(),
    version: "2.0.0",
    manufacturer: agv.manufacturer,
    serialNumber: agv.serialNumber,
    actions: [
      { actionType: "startPause", actionId: `startPause-${stamp}-s${++actionCounter}`, blockingType: "HARD" },
      { actionType: "cancelOrder", actionId: cancelId, blockingType: "NONE" }
    ]
  })
  return { payload, cancelId }
}

/** When, in epoch milliseconds with a fraction, as other processes of the machine can compare. */
const preciseNow = () => performance.timeOrigin + performance.now()

/** Latches one AGV and publishes its stop; resolves with when it was written and its cancelOrder id, or why it failed. */
const publishStop = (agv, now) =>
  new Promise((resolve) => {
    Atomics.store(latched, agv.slot, 1)
    const { cancelId, payload } = instantActions(agv, now)
    broker.publish(agv.topic, payload, { qos: 0, retain: false }, (error) =>
      resolve(
        error === undefined || error === null ? { writtenAt: preciseNow(), cancelId } : { failed: String(error.message ?? error) }
      ))
  })

/** Posts `message` with a fresh key to the main thread; resolves with its result: `{ error?, report? }`. */
const askMain = (message) =>
  new Promise((resolve) => {
    const key = nextKey++
    pending.set(key, resolve)
    parentPort.postMessage({ ...message, key })
  })

/** Hands a stop to the main thread; resolves with its answer: `{ report }` or `{ error }`. */
const forward = (robot, skip, who) => {
  stats[FORWARDED]++
  return askMain({ type: "forward", robot, skip, who })
}

/** Tells the main thread which AGVs this thread stopped; resolves once it has committed their latches. */
const reportStopped = (stopped, who, all) =>
  askMain({
    type: "stopped",
    robots: stopped.map(({ agv }) => agv.robot),
    published: Object.fromEntries(stopped.map(({ agv, cancelId }) => [agv.robot, [cancelId]])),
    who,
    all
  })

const isLive = (agv) => Atomics.load(live, agv.slot) === 1

const liveAgv = (robot) => {
  const agv = agvs.get(robot)
  return agv !== undefined && isLive(agv) ? agv : undefined
}

/**
 * Stops `robot` (or every robot), resolving with `{ writtenAt?, report? }` (`writtenAt` when
 * published here) or `{ error }`, once the main thread has committed the latches.
 */
const stop = async (robot, who) => {
  const now = Date.now()
  if (robot !== undefined) {
    const agv = broker.connected ? liveAgv(robot) : undefined
    if (agv === undefined) return forward(robot, [], who)
    const published = await publishStop(agv, now)
    if (published.failed !== undefined) {
      stats[FAILED]++
      return forward(robot, [], who)
    }
    stats[PUBLISHED]++
    const { error } = await reportStopped([{ agv, cancelId: published.cancelId }], who, false)
    return error === undefined
      ? { writtenAt: published.writtenAt, report: { reached: [robot], latchedOnly: [] } }
      : { error }
  }
  if (!broker.connected) return forward(undefined, [], who)
  const targets = [...agvs.values()].filter(isLive)
  const results = await Promise.all(targets.map((agv) => publishStop(agv, now)))
  const stopped = targets.flatMap((agv, i) => (results[i].failed === undefined ? [{ agv, cancelId: results[i].cancelId }] : []))
  stats[PUBLISHED] += stopped.length
  stats[FAILED] += targets.length - stopped.length
  if (stopped.length > 0) await reportStopped(stopped, who, true)
  // The main thread stops and latches the rest: the arms, every other robot, and any AGV not stopped here.
  return forward(undefined, stopped.map(({ agv }) => agv.robot), who)
}

const badRequest = (message) => ({ _tag: "BadRequest", message })

const parse = (data, isBinary) => {
  if (isBinary) return { error: badRequest("frames are JSON text") }
  let request
  try {
    request = JSON.parse(data.toString())
  } catch {
    return { error: badRequest("not JSON") }
  }
  if (typeof request !== "object" || request === null || Array.isArray(request)) {
    return { error: badRequest("a request is an object { id, robot? }") }
  }
  if (request.robot !== undefined && (typeof request.robot !== "string" || request.robot === "")) {
    return { id: request.id ?? null, error: badRequest("robot is a non-empty string, or absent for every robot") }
  }
  return { id: request.id ?? null, robot: request.robot }
}

/** The name of a `Host` header (src/http/HostCheck.ts, rule 2); `undefined` for a header that is not a host. */
const nameOf = (header) => {
  const value = header.trim().toLowerCase()
  if (isIP(value) === 6) return value
  const match = /^(\[[^\]]*\]|[^:[\]]*)(?::[0-9]*)?$/.exec(value)
  if (match === null) return undefined
  const name = match[1].startsWith("[") ? match[1].slice(1, -1) : match[1]
  return name.endsWith(".") ? name.slice(0, -1) : name
}

/** src/http/HostCheck.ts's `allowedHost`, restated: any IP address, `localhost` and names under it, the listen host, `allowedHosts`. */
const hostAllowed = (header) => {
  if (header === undefined) return true
  const name = nameOf(header)
  if (name === undefined || name === "") return false
  if (isIP(name) !== 0 || name === "localhost" || name.endsWith(".localhost")) return true
  if (nameOf(host) === name) return true
  return allowedHosts.some((entry) => {
    const e = entry.trim().toLowerCase().replace(/\.$/, "")
    return e === "*" || (e.startsWith(".") ? name.endsWith(e) && name.length > e.length : name === e)
  })
}

/** No `Origin` (not a browser), `*`, a listed origin, or a page of the host the client reached this port by. */
const originAllowed = (origin, header) => {
  if (origin === undefined || allowedOrigins.includes("*") || allowedOrigins.includes(origin)) return true
  try {
    return new URL(origin).hostname.replace(/^\[|\]$/g, "").toLowerCase() === nameOf(header ?? "")
  } catch {
    return false
  }
}

const perAddress = new Map()

/** Upgrades waiting for the main thread's admission, by key: resolve with `{ user?, refusal? }`. */
const admissions = new Map()
/** Open connections the main thread admitted, by their admission's key. */
const admittedSockets = new Map()

/** Asks the main thread who the upgrade's credential is; resolves with `{ key, user?, refusal? }`. */
const admit = (request) =>
  new Promise((resolve) => {
    const key = nextKey++
    admissions.set(key, (answer) => resolve({ key, ...answer }))
    const { authorization, cookie } = request.headers
    parentPort.postMessage({
      type: "admit",
      key,
      headers: { authorization, "sec-websocket-protocol": request.headers["sec-websocket-protocol"], cookie },
      address: request.socket.remoteAddress ?? "unknown"
    })
  })

/** Over TLS (`tls`: PEM `{ cert, key }`), the WebSocket server rides an HTTPS server; otherwise `ws` makes a plain one. */
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
  verifyClient: ({ origin, req }, done) => {
    if (!hostAllowed(req.headers.host)) {
      stats[REFUSED_HOST]++
      return done(false, 421, "Misdirected Request")
    }
    if (!originAllowed(origin, req.headers.host)) {
      stats[REFUSED_ORIGIN]++
      return done(false, 403, "Forbidden")
    }
    if ((perAddress.get(req.socket.remoteAddress) ?? 0) >= maxPerAddress) {
      stats[REFUSED_ADDRESS]++
      return done(false, 429, "Too Many Requests")
    }
    if (!auth) return done(true)
    // Admitted or not, the handshake completes: a refusal is a close code a browser can read.
    admit(req).then((admission) => {
      req.admission = admission
      done(true)
    })
  }
})

/** Stops sent within the coalescing window, by target (`*`: every robot): their answer, and duplicates since. */
const recent = new Map()

/** Stops `robot`, or answers with the stop of the same target that went out less than `coalesceMs` ago. */
const stopOnce = (robot, who) => {
  const target = robot ?? "*"
  const last = recent.get(target)
  if (last !== undefined) {
    last.count++
    stats[COALESCED]++
    return last.answer
  }
  const entry = { answer: stop(robot, who), count: 0 }
  recent.set(target, entry)
  entry.answer.then(({ error }) => {
    // A stop that failed is not an answer to reuse: the next request tries again.
    if (error !== undefined) return void recent.delete(target)
    setTimeout(() => {
      recent.delete(target)
      if (entry.count > 0) parentPort.postMessage({ type: "coalesced", robot, count: entry.count, who })
    }, coalesceMs).unref()
  })
  return entry.answer
}

/** Stops a connection may ask per second on average, and at once. */
const ratePerSecond = 20
const burst = 40

server.on("connection", (socket, request) => {
  const admission = request.admission
  if (admission?.refusal !== undefined) {
    stats[REFUSED_AUTH]++
    return socket.close(admission.refusal.code, admission.refusal.reason)
  }
  stats[CONNECTIONS]++
  const address = request.socket.remoteAddress ?? "unknown"
  // Stops are audited under the user when the node has identities, else under the address.
  const who = admission?.user ?? address
  if (admission !== undefined) {
    admittedSockets.set(admission.key, socket)
    parentPort.postMessage({ type: "opened", key: admission.key })
  }
  perAddress.set(address, (perAddress.get(address) ?? 0) + 1)
  socket.on("close", () => {
    stats[CONNECTIONS]--
    const left = (perAddress.get(address) ?? 1) - 1
    if (left === 0) perAddress.delete(address)
    else perAddress.set(address, left)
    if (admission !== undefined) {
      admittedSockets.delete(admission.key)
      parentPort.postMessage({ type: "closed", key: admission.key })
    }
  })
  socket.on("error", () => {})
  let tokens = burst
  let refilledAt = performance.now()
  socket.on("message", (data, isBinary) => {
    stats[REQUESTS]++
    const now = performance.now()
    tokens = Math.min(burst, tokens + ((now - refilledAt) / 1000) * ratePerSecond)
    refilledAt = now
    if (tokens < 1) {
      if (socket.readyState !== socket.OPEN) return
      stats[THROTTLED]++
      return socket.close(1008, "too many stops")
    }
    tokens--
    const parsed = parse(data, isBinary)
    if (parsed.error !== undefined) {
      stats[BAD]++
      socket.send(JSON.stringify({ id: parsed.id ?? null, ok: false, error: parsed.error }))
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

parentPort.on("message", (message) => {
  switch (message.type) {
    case "slot":
      agvs.set(message.robot, {
        robot: message.robot,
        manufacturer: message.manufacturer,
        serialNumber: message.serialNumber,
        slot: message.slot,
        topic: `${prefix}/${message.manufacturer}/${message.serialNumber}/instantActions`
      })
      return
    case "tls":
      // Checked by the main thread; new handshakes get it, open connections keep theirs.
      secure?.setSecureContext({ cert: message.cert, key: message.key })
      return
    case "admitted": {
      const resolve = admissions.get(message.key)
      admissions.delete(message.key)
      resolve?.({ user: message.user, refusal: message.refusal })
      return
    }
    case "close":
      admittedSockets.get(message.key)?.close(message.code, message.reason)
      return
    case "result": {
      const resolve = pending.get(message.key)
      pending.delete(message.key)
      resolve?.({ error: message.error, report: message.report })
      return
    }
  }
})

server.on("error", (error) => parentPort.postMessage({ type: "failed", error: String(error.message ?? error) }))
server.on("listening", () => parentPort.postMessage({ type: "ready", realtime, port: server.address().port }))
secure?.listen(port, host)
