/**
 * The AGVs a replayer plays, served by a {@link MiniBroker}: `robots` VDA 5050 AGVs named as
 * `agvLoad.ts` names them (manufacturer `bench`, serial numbers `agv-0001` …, topics
 * `<prefix>/bench/<serial>/<topic>`), each with its retained `connection` ONLINE (QoS 1) in the
 * broker from the start, streaming VDA 5050 2.x `visualization` messages at a rate set per
 * stream, each AGV at its own phase of the period (AGV `i` of `n` at `i / n` of it). A
 * visualization is the sign of life the service's AGV links wait for; an AGV sends a `state`
 * only to answer an `instantActions`: every action of it FINISHED, paused after a `startPause`
 * (until a `stopPause`), no order. That confirms an emergency stop (startPause + cancelOrder), so
 * the service stops sending it again every 500 ms, as it does for a real AGV.
 *
 * A message goes only to the connections (of the stream's targets) with a subscription that
 * matches its topic, so a receiver subscribing the prefix's wildcard and one subscribing AGVs
 * by name both work. Each AGV's packet is encoded once; a send patches its fixed-width fields in
 * place (the headerId and the x coordinate right-aligned behind JSON whitespace, the ISO 8601
 * timestamp) and copies it into the one buffer written per connection per tick. A connection
 * with more than {@link dropAboveBytes} unread has its messages dropped, counted per AGV.
 */
import * as mqttPacket from "mqtt-packet"
import { performance } from "node:perf_hooks"
import { type BrokerConnection, dropAboveBytes, type MiniBroker, topicMatches } from "./miniBroker.js"

/** The AGVs' manufacturer, as `agvLoad.ts` names it. */
export const manufacturer = "bench"

/** The serial number of AGV `index` (from 0), as `agvLoad.ts` names it: `agv-0001` for 0. */
export const serialNumberOf = (index: number) => `agv-${String(index + 1).padStart(4, "0")}`

/** The topic of an AGV's messages under `prefix`. */
export const topicOf = (prefix: string, serialNumber: string, topic: string) => `${prefix}/${manufacturer}/${serialNumber}/${topic}`

/** What a stream sent to one connection. */
export interface ConnectionFigures {
  readonly clientId: string
  /** Messages for it, dropped ones included. */
  sent: number
  dropped: number
  bytes: number
}

/** What one stream did, from its start to its halt. */
export interface StreamFigures {
  readonly hz: number
  readonly seconds: number
  /** Messages the AGVs made (each headerId once), whether or not a target subscribed them. */
  readonly produced: number
  /** Messages for the targets (one per matching connection), dropped ones included; `dropped` of them were. */
  readonly sent: number
  readonly dropped: number
  readonly bytes: number
  /** The longest a tick started after the first message it sent was due. */
  readonly maxLagMs: number
  /** This process' CPU time over the stream (all its work, the broker's included). */
  readonly cpuMs: number
  readonly connections: ReadonlyArray<ConnectionFigures>
  /** Serial number → messages of it dropped, for the AGVs that had any. */
  readonly droppedByAgv: Readonly<Record<string, number>>
}

/** A set of AGVs on a broker: start a stream, halt it for its figures. */
export interface AgvStream {
  readonly robots: number
  /** Streams every AGV's visualization at `hz` to the connections whose client id starts with `clients` (all by default). */
  readonly start: (hz: number, clients?: string) => void
  /** Stops the running stream; its figures (`undefined` when none runs). */
  readonly halt: () => StreamFigures | undefined
}

/** Width of the headerId field: a uint32's 10 digits. */
const headerIdWidth = 10
/** Width of the x field: `999999.999`, meters to the millimeter. */
const xWidth = 10
const xWrapMillis = 1e9
const isoEpoch = new Date(0).toISOString()

interface Agv {
  readonly serialNumber: string
  readonly topic: string
  readonly payload: Buffer
  /** The PUBLISH packet's bytes before the payload, for MQTT 3.1.1 and for MQTT 5 (a properties length more). */
  readonly prefix4: Buffer
  readonly prefix5: Buffer
  readonly fields: Fields
  headerId: number
  xMillis: number
  stateHeaderId: number
  paused: boolean
}

/** Offsets in a payload: the end of the headerId field, the start of the timestamp, the end of x. */
interface Fields {
  readonly headerIdEnd: number
  readonly timestampAt: number
  readonly xEnd: number
}

const templateOf = (serialNumber: string, y: number) =>
  `{"headerId":${"0".padStart(headerIdWidth)},"timestamp":"${isoEpoch}","version":"2.1.0",` +
  `"manufacturer":"${manufacturer}","serialNumber":"${serialNumber}",` +
  `"agvPosition":{"x":${"0.000".padStart(xWidth)},"y":${y.toFixed(3)},"theta":0.0,"mapId":"bench","positionInitialized":true},` +
  `"velocity":{"vx":0.1,"vy":0.0,"omega":0.0}}`

const fieldsOf = (template: string): Fields => ({
  headerIdEnd: template.indexOf(`"headerId":`) + `"headerId":`.length + headerIdWidth,
  timestampAt: template.indexOf(`"timestamp":"`) + `"timestamp":"`.length,
  xEnd: template.indexOf(`"x":`) + `"x":`.length + xWidth
})

/** Writes a non-negative integer right-aligned in the `width` bytes that end at `end`, spaces before it. */
const writeDigits = (buffer: Buffer, end: number, width: number, value: number) => {
  const start = end - width
  let i = end
  do {
    buffer[--i] = 48 + (value % 10)
    value = Math.floor(value / 10)
  } while (value > 0 && i > start)
  while (i > start) buffer[--i] = 32
}

/** Writes `millis / 1000` with three decimals, right-aligned in the `width` bytes that end at `end`. */
const writeMillis = (buffer: Buffer, end: number, width: number, millis: number) => {
  const fraction = millis % 1000
  buffer[end - 1] = 48 + (fraction % 10)
  buffer[end - 2] = 48 + (Math.floor(fraction / 10) % 10)
  buffer[end - 3] = 48 + Math.floor(fraction / 100)
  buffer[end - 4] = 46
  writeDigits(buffer, end - 4, width - 4, Math.floor(millis / 1000))
}

const prefixOf = (topic: string, payload: Buffer, protocolVersion: 4 | 5) => {
  const packet = mqttPacket.generate({ cmd: "publish", topic, payload, qos: 0, retain: false, dup: false }, { protocolVersion })
  return packet.subarray(0, packet.length - payload.length)
}

const agvOf = (prefix: string, index: number): Agv => {
  const serialNumber = serialNumberOf(index)
  const topic = topicOf(prefix, serialNumber, "visualization")
  const template = templateOf(serialNumber, index % 1000)
  const payload = Buffer.from(template, "latin1")
  const [prefix4, prefix5] = [prefixOf(topic, payload, 4), prefixOf(topic, payload, 5)]
  return { serialNumber, topic, payload, prefix4, prefix5, fields: fieldsOf(template), headerId: 0, xMillis: 0, stateHeaderId: 0, paused: false }
}

const connectionPayload = (serialNumber: string) =>
  Buffer.from(JSON.stringify({
    headerId: 1,
    timestamp: new Date().toISOString(),
    version: "2.1.0",
    manufacturer,
    serialNumber,
    connectionState: "ONLINE"
  }))

/** The state an AGV answers `actions` with: each FINISHED, no order, paused or not. */
const stateOf = (agv: Agv, actions: ReadonlyArray<{ readonly actionId?: unknown; readonly actionType?: unknown }>) =>
  Buffer.from(JSON.stringify({
    headerId: ++agv.stateHeaderId,
    timestamp: new Date().toISOString(),
    version: "2.1.0",
    manufacturer,
    serialNumber: agv.serialNumber,
    orderId: "",
    orderUpdateId: 0,
    lastNodeId: "",
    lastNodeSequenceId: 0,
    driving: false,
    paused: agv.paused,
    operatingMode: "AUTOMATIC",
    nodeStates: [],
    edgeStates: [],
    actionStates: actions.map(({ actionId, actionType }) => ({ actionId: String(actionId), actionType: String(actionType), actionStatus: "FINISHED" })),
    batteryState: { batteryCharge: 80, charging: false },
    errors: [],
    safetyState: { eStop: "NONE", fieldViolation: false }
  }))

interface Target {
  readonly connection: BrokerConnection
  readonly mask: Uint8Array
  readonly figures: ConnectionFigures
  buffer: Buffer
  at: number
  written: number
}

/** Puts `robots` AGVs on `broker` under `prefix`: their retained ONLINE at once, their visualizations when started. */
export const makeAgvStream = (broker: MiniBroker, robots: number, prefix: string): AgvStream => {
  const agvs = Array.from({ length: robots }, (_, i) => agvOf(prefix, i))
  for (const agv of agvs) broker.retain(topicOf(prefix, agv.serialNumber, "connection"), connectionPayload(agv.serialNumber), 1)

  // Which AGVs each connection subscribes to, worked out when its subscriptions change.
  const masks = new WeakMap<BrokerConnection, Uint8Array>()
  const maskOf = (connection: BrokerConnection) => {
    let mask = masks.get(connection)
    if (mask === undefined) {
      mask = new Uint8Array(robots)
      const filters = [...connection.filters.keys()]
      for (let i = 0; i < robots; i++) mask[i] = filters.some((filter) => topicMatches(filter, agvs[i].topic)) ? 1 : 0
      masks.set(connection, mask)
    }
    return mask
  }
  broker.onSubscriptions((connection) => masks.delete(connection))

  const bySerialNumber = new Map(agvs.map((agv) => [agv.serialNumber, agv]))
  const actionsPrefix = `${prefix}/${manufacturer}/`
  broker.onPublish((topic, payload) => {
    if (!topic.startsWith(actionsPrefix) || !topic.endsWith("/instantActions")) return
    const agv = bySerialNumber.get(topic.slice(actionsPrefix.length, -"/instantActions".length))
    if (agv === undefined) return
    let actions: unknown
    try {
      actions = JSON.parse(payload.toString()).actions
    } catch {
      return
    }
    if (!Array.isArray(actions)) return
    for (const action of actions) {
      if (action?.actionType === "startPause") agv.paused = true
      if (action?.actionType === "stopPause") agv.paused = false
    }
    broker.publish(topicOf(prefix, agv.serialNumber, "state"), stateOf(agv, actions), 0)
  })

  let run:
    | {
      readonly hz: number
      readonly clients: string
      readonly perMs: number
      readonly startedAt: number
      readonly cpu: NodeJS.CpuUsage
      readonly timer: NodeJS.Timeout
      readonly figures: Map<BrokerConnection, ConnectionFigures>
      readonly droppedByAgv: Uint32Array
      next: number
      maxLagMs: number
    }
    | undefined

  const patch = (agv: Agv, timestamp: Buffer) => {
    const { headerIdEnd, timestampAt, xEnd } = agv.fields
    agv.headerId++
    agv.xMillis = (agv.xMillis + 1) % xWrapMillis
    writeDigits(agv.payload, headerIdEnd, headerIdWidth, agv.headerId)
    timestamp.copy(agv.payload, timestampAt)
    writeMillis(agv.payload, xEnd, xWidth, agv.xMillis)
  }

  const tick = () => {
    const r = run!
    const elapsed = performance.now() - r.startedAt
    const due = Math.floor(elapsed * r.perMs) + 1
    if (due <= r.next) return
    r.maxLagMs = Math.max(r.maxLagMs, elapsed - r.next / r.perMs)
    const targets: Array<Target> = []
    for (const connection of broker.connections) {
      if (!connection.clientId.startsWith(r.clients)) continue
      const mask = maskOf(connection)
      let bytes = 0
      for (let g = r.next; g < due; g++) {
        const i = g % robots
        if (mask[i] === 1) bytes += (connection.protocolVersion === 5 ? agvs[i].prefix5 : agvs[i].prefix4).length + agvs[i].payload.length
      }
      if (bytes === 0) continue
      let figures = r.figures.get(connection)
      if (figures === undefined) r.figures.set(connection, figures = { clientId: connection.clientId, sent: 0, dropped: 0, bytes: 0 })
      targets.push({ connection, mask, figures, buffer: Buffer.allocUnsafe(bytes), at: 0, written: 0 })
    }
    const timestamp = Buffer.from(new Date().toISOString(), "latin1")
    for (let g = r.next; g < due; g++) {
      const i = g % robots
      const agv = agvs[i]
      patch(agv, timestamp)
      for (const target of targets) {
        if (target.mask[i] === 0) continue
        target.figures.sent++
        // The rule of a broker's queue limit: more than 4 MiB not yet taken, this tick's included.
        if (target.connection.socket.writableLength + target.at > dropAboveBytes) {
          target.figures.dropped++
          target.connection.dropped++
          r.droppedByAgv[i]++
          continue
        }
        const prefix = target.connection.protocolVersion === 5 ? agv.prefix5 : agv.prefix4
        target.at += prefix.copy(target.buffer, target.at)
        target.at += agv.payload.copy(target.buffer, target.at)
        target.written++
      }
    }
    r.next = due
    for (const target of targets) {
      if (target.at === 0) continue
      target.figures.bytes += target.at
      target.connection.bytesOut += target.at
      target.connection.delivered += target.written
      target.connection.socket.write(target.at === target.buffer.length ? target.buffer : target.buffer.subarray(0, target.at))
    }
  }

  return {
    robots,
    start: (hz, clients = "") => {
      if (run !== undefined) clearInterval(run.timer)
      run = {
        hz,
        clients,
        perMs: (robots * hz) / 1000,
        startedAt: performance.now(),
        cpu: process.cpuUsage(),
        timer: setInterval(tick, 1),
        figures: new Map(),
        droppedByAgv: new Uint32Array(robots),
        next: 0,
        maxLagMs: 0
      }
    },
    halt: () => {
      if (run === undefined) return undefined
      const r = run
      run = undefined
      clearInterval(r.timer)
      const used = process.cpuUsage(r.cpu)
      const connections = [...r.figures.values()]
      const droppedByAgv: Record<string, number> = {}
      r.droppedByAgv.forEach((n, i) => n > 0 && (droppedByAgv[agvs[i].serialNumber] = n))
      return {
        hz: r.hz,
        seconds: Number(((performance.now() - r.startedAt) / 1000).toFixed(3)),
        produced: r.next,
        sent: connections.reduce((n, c) => n + c.sent, 0),
        dropped: connections.reduce((n, c) => n + c.dropped, 0),
        bytes: connections.reduce((n, c) => n + c.bytes, 0),
        maxLagMs: Number(r.maxLagMs.toFixed(2)),
        cpuMs: Math.round((used.user + used.system) / 1000),
        connections,
        droppedByAgv
      }
    }
  }
}
