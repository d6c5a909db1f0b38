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
 *   ← { "id": same, "ok": true, "writtenAt"?: epoch ms }   writtenAt: when this thread wrote the stop to the broker
 *   ← { "id": same, "ok": false, "error": { "_tag": "UnknownRobot" | "BadRequest" | …, … } }
 *
 * A live AGV (its link runs: the shared table's flag) is stopped here: `instantActions` with
 * `startPause` and `cancelOrder`, its headerId taken from the shared counter, published on this
 * thread's connection; the reply leaves once the publish is written. Everything else (arms,
 * whose TCP connection the main thread holds; robots this thread does not know; AGVs while
 * this connection is down) is handed to the main thread, which answers. Every stop is reported
 * to the main thread for the audit log and the fleet's events.
 *
 * Plain JavaScript for the reason ControlLoopWorker.mjs gives.
 *
 * In:  { type: "slot", robot, manufacturer, serialNumber, slot }  { type: "result", key, error? }
 * Out: { type: "ready", realtime, port }  { type: "failed", error }
 *      { type: "stopped", robots, who, all }  { type: "forward", key, robot?, skip, who }
 */
import mqtt from "mqtt"
import { performance } from "node:perf_hooks"
import { parentPort, workerData } from "node:worker_threads"
import { WebSocketServer } from "ws"
import { prioritizeThread } from "./ThreadPriority.mjs"

const { host, port, brokerUrl, clientId, prefix, table, capacity, stats: statsBuffer, priority, realtimePriority } =
  workerData
const counters = new Uint32Array(table, 0, capacity)
const live = new Int32Array(table, capacity * Uint32Array.BYTES_PER_ELEMENT, capacity)
/** requests, published, forwarded, bad requests, failed, open connections: read by the main thread for metrics. */
const stats = new Float64Array(statsBuffer)
const REQUESTS = 0, PUBLISHED = 1, FORWARDED = 2, BAD = 3, FAILED = 4, CONNECTIONS = 5

const { realtime } = prioritizeThread({ priority, realtimePriority })

/** robot → { manufacturer, serialNumber, slot, topic } */
const agvs = new Map()
const pending = new Map()
let nextKey = 0
let actionCounter = 0

const broker = mqtt.connect(brokerUrl, { clientId, reconnectPeriod: 1_000, connectTimeout: 5_000, queueQoSZero: false })
broker.on("connect", () => broker.stream?.setNoDelay?.(true))
broker.on("error", () => {}) // mqtt.js reconnects by itself; stops are handed over while it is down

const instantActions = (agv, now) => {
  const stamp = now.toString(36)
  return JSON.stringify({
    headerId: Atomics.add(counters, agv.slot, 1),
    timestamp: new Date(now).toISOString(),
    version: "2.0.0",
    manufacturer: agv.manufacturer,
    serialNumber: agv.serialNumber,
    actions: [
      { actionType: "startPause", actionId: `startPause-${stamp}-s${++actionCounter}`, blockingType: "HARD" },
      { actionType: "cancelOrder", actionId: `cancelOrder-${stamp}-s${++actionCounter}`, blockingType: "NONE" }
    ]
  })
}

/** When, in epoch milliseconds with a fraction, as other processes of the machine can compare. */
const preciseNow = () => performance.timeOrigin + performance.now()

/** Publishes the stop of one AGV; resolves with when it was written, or why it failed. */
const publishStop = (agv, now) =>
  new Promise((resolve) => {
    broker.publish(agv.topic, instantActions(agv, now), { qos: 0, retain: false }, (error) =>
      resolve(error === undefined || error === null ? { writtenAt: preciseNow() } : { failed: String(error.message ?? error) }))
  })

/** Hands a stop to the main thread; resolves with its answer: `{}` or `{ error }`. */
const forward = (robot, skip, who) =>
  new Promise((resolve) => {
    const key = nextKey++
    pending.set(key, (error) => resolve(error === undefined ? {} : { error }))
    stats[FORWARDED]++
    parentPort.postMessage({ type: "forward", key, robot, skip, who })
  })

const isLive = (agv) => Atomics.load(live, agv.slot) === 1

const liveAgv = (robot) => {
  const agv = agvs.get(robot)
  return agv !== undefined && isLive(agv) ? agv : undefined
}

/** Stops `robot` (or every robot), resolving with `{ writtenAt }` (published here), `{}` (by the main thread) or `{ error }`. */
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
    parentPort.postMessage({ type: "stopped", robots: [robot], who, all: false })
    return published
  }
  if (!broker.connected) return forward(undefined, [], who)
  const targets = [...agvs.values()].filter(isLive)
  const results = await Promise.all(targets.map((agv) => publishStop(agv, now)))
  const stopped = targets.filter((_, i) => results[i].failed === undefined).map((agv) => agv.robot)
  stats[PUBLISHED] += stopped.length
  stats[FAILED] += targets.length - stopped.length
  if (stopped.length > 0) parentPort.postMessage({ type: "stopped", robots: stopped, who, all: true })
  // The main thread stops the rest: the arms, and any AGV not stopped here.
  return forward(undefined, stopped, who)
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

const server = new WebSocketServer({
  host,
  port,
  perMessageDeflate: false,
  maxPayload: 4_096,
  handleProtocols: (protocols) => (protocols.has("fleetvisor.stop.v1") ? "fleetvisor.stop.v1" : false)
})

server.on("connection", (socket, request) => {
  stats[CONNECTIONS]++
  const who = request.socket.remoteAddress ?? "unknown"
  socket.on("close", () => stats[CONNECTIONS]--)
  socket.on("error", () => {})
  socket.on("message", (data, isBinary) => {
    stats[REQUESTS]++
    const parsed = parse(data, isBinary)
    if (parsed.error !== undefined) {
      stats[BAD]++
      socket.send(JSON.stringify({ id: parsed.id ?? null, ok: false, error: parsed.error }))
      return
    }
    stop(parsed.robot, who).then(({ error, writtenAt }) =>
      socket.send(JSON.stringify(
        error !== undefined
          ? { id: parsed.id, ok: false, error }
          : writtenAt === undefined
          ? { id: parsed.id, ok: true }
          : { id: parsed.id, ok: true, writtenAt }
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
    case "result": {
      const resolve = pending.get(message.key)
      pending.delete(message.key)
      resolve?.(message.error)
      return
    }
  }
})

server.on("error", (error) => parentPort.postMessage({ type: "failed", error: String(error.message ?? error) }))
server.on("listening", () => parentPort.postMessage({ type: "ready", realtime, port: server.address().port }))
