/**
 * A minimal MQTT server for benchmarks, on 127.0.0.1 and a spare port, made of mqtt-packet's
 * parser and encoder: enough of a broker for the service and plain clients, at a fraction of a
 * real broker's cost, so that what is measured on a 2-core machine is the receiver.
 *
 * MQTT 3.1 / 3.1.1 / 5 clients: CONNECT → CONNACK (every client accepted, a clean session each:
 * nothing is kept for a client that leaves; a second connection with a client id closes the first);
 * SUBSCRIBE → SUBACK granting the QoS asked for, at most 1; UNSUBSCRIBE → UNSUBACK; PINGREQ →
 * PINGRESP; DISCONNECT. A client's PUBLISH is acknowledged (PUBACK, or PUBREC / PUBCOMP at QoS 2),
 * its arrival time recorded by topic, and routed to every connection with a matching subscription
 * (`+` and `#`; MQTT 5's no-local honoured) at the lower of the two QoS. The last retained message
 * of a topic is kept and delivered on subscribe. Wills, keep-alive timeouts, topic aliases and
 * authentication are not implemented.
 *
 * A connection with more than {@link dropAboveBytes} written but not yet taken by the kernel
 * has its QoS 0 messages dropped and counted, as a broker's queue limit does.
 */
import * as mqttPacket from "mqtt-packet"
import * as net from "node:net"
import { performance } from "node:perf_hooks"

/** Unread bytes of a connection past which its QoS 0 messages are dropped. */
export const dropAboveBytes = 4 * 1024 * 1024

/** Arrival times kept per topic (the latest); older ones are forgotten, the count is not. */
const arrivalsKept = 10_000

/** One client connection, with what was sent to it. */
export interface BrokerConnection {
  readonly clientId: string
  readonly protocolVersion: 3 | 4 | 5
  readonly socket: net.Socket
  /** Topic filter → granted QoS and MQTT 5's no-local option. */
  readonly filters: Map<string, { readonly qos: 0 | 1; readonly noLocal: boolean }>
  /** Messages written to it, and QoS 0 messages dropped by the unread-bytes rule (whoever sends updates them). */
  delivered: number
  dropped: number
  /** Of `delivered`, the messages routed as published, by clients or by `publish` (not retained ones on subscribe, nor a stream's). */
  relayed: number
  bytesIn: number
  bytesOut: number
  nextMessageId: number
}

/** Publishes received from clients on one topic: how many, and when (epoch ms), the latest {@link arrivalsKept}. */
export interface TopicArrivals {
  count: number
  readonly at: Array<number>
}

/** A running {@link startMiniBroker}. */
export interface MiniBroker {
  readonly port: number
  readonly url: string
  /** The connections that said CONNECT and are still open. */
  readonly connections: ReadonlySet<BrokerConnection>
  /** Keeps `payload` as the retained message of `topic`, as if a client had published it retained. */
  readonly retain: (topic: string, payload: Buffer, qos: 0 | 1) => void
  /** Called when a connection's subscriptions change, it connects or it leaves. */
  readonly onSubscriptions: (listener: (connection: BrokerConnection) => void) => void
  /** Called with each client's publish, after it was routed. */
  readonly onPublish: (listener: (topic: string, payload: Buffer) => void) => void
  /** Routes a message of the broker's own to the matching subscriptions, as a client's publish would be (not retained). */
  readonly publish: (topic: string, payload: Buffer, qos: 0 | 1) => void
  /** Client publishes by topic. */
  readonly arrivals: ReadonlyMap<string, TopicArrivals>
  readonly close: () => Promise<void>
}

/** Epoch ms to a fraction of a millisecond, on a clock every process of the machine shares. */
const now = () => performance.timeOrigin + performance.now()

/** Whether an MQTT topic filter matches a topic: `+` is one level, a final `#` any number (none included). */
export const topicMatches = (filter: string, topic: string): boolean => {
  if (filter === topic) return true
  // Wildcards at the first level do not match topics starting with `$` (MQTT 3.1.1 §4.7.2).
  if (topic.startsWith("$") && (filter.startsWith("+") || filter.startsWith("#"))) return false
  const filterLevels = filter.split("/")
  const topicLevels = topic.split("/")
  for (let i = 0; i < filterLevels.length; i++) {
    if (filterLevels[i] === "#") return true
    if (i >= topicLevels.length) return false
    if (filterLevels[i] !== "+" && filterLevels[i] !== topicLevels[i]) return false
  }
  return filterLevels.length === topicLevels.length
}

/** The QoS a connection gets `topic` at (the highest of its matching filters), or `undefined`. */
const matchingQos = (connection: BrokerConnection, topic: string, from: BrokerConnection | undefined) => {
  let qos: 0 | 1 | undefined
  for (const [filter, options] of connection.filters) {
    if (options.noLocal && from === connection) continue
    if (topicMatches(filter, topic) && (qos === undefined || options.qos > qos)) qos = options.qos
  }
  return qos
}

/** Starts the server on 127.0.0.1 and a port the system picks. */
export const startMiniBroker = async (): Promise<MiniBroker> => {
  const connections = new Set<BrokerConnection>()
  const retained = new Map<string, { readonly payload: Buffer; readonly qos: 0 | 1 }>()
  const arrivals = new Map<string, TopicArrivals>()
  const listeners: Array<(connection: BrokerConnection) => void> = []
  const publishListeners: Array<(topic: string, payload: Buffer) => void> = []
  const sockets = new Set<net.Socket>()
  let anonymous = 0

  const changed = (connection: BrokerConnection) => listeners.forEach((listener) => listener(connection))

  const send = (connection: BrokerConnection, packet: mqttPacket.Packet) => {
    const data = mqttPacket.generate(packet, { protocolVersion: connection.protocolVersion })
    connection.bytesOut += data.length
    connection.socket.write(data)
  }

  const writeQos0 = (connection: BrokerConnection, data: Buffer, messages: number) => {
    if (connection.socket.writableLength > dropAboveBytes) {
      connection.dropped += messages
      return false
    }
    connection.delivered += messages
    connection.bytesOut += data.length
    connection.socket.write(data)
    return true
  }

  const deliver = (connection: BrokerConnection, topic: string, payload: Buffer, qos: 0 | 1, retain: boolean) => {
    if (qos === 0) {
      return writeQos0(connection, mqttPacket.generate({ cmd: "publish", topic, payload, qos, retain, dup: false }, { protocolVersion: connection.protocolVersion }), 1)
    }
    connection.nextMessageId = connection.nextMessageId % 65_535 + 1
    connection.delivered++
    send(connection, { cmd: "publish", topic, payload, qos, retain, dup: false, messageId: connection.nextMessageId })
    return true
  }

  const record = (topic: string, at: number) => {
    let seen = arrivals.get(topic)
    if (seen === undefined) arrivals.set(topic, seen = { count: 0, at: [] })
    seen.count++
    seen.at.push(at)
    if (seen.at.length > 2 * arrivalsKept) seen.at.splice(0, seen.at.length - arrivalsKept)
  }

  /** Sends a message to every connection with a matching subscription but `from`'s own no-local ones, as published. */
  const route = (from: BrokerConnection | undefined, topic: string, payload: Buffer, qos: 0 | 1 | 2) => {
    for (const connection of connections) {
      const granted = matchingQos(connection, topic, from)
      if (granted === undefined) continue
      if (deliver(connection, topic, payload, qos === 0 ? 0 : granted, false)) connection.relayed++
    }
  }

  const published = (from: BrokerConnection, packet: mqttPacket.IPublishPacket, at: number) => {
    record(packet.topic, at)
    if (packet.qos === 1) send(from, { cmd: "puback", messageId: packet.messageId })
    if (packet.qos === 2) send(from, { cmd: "pubrec", messageId: packet.messageId })
    const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload
    if (packet.retain) {
      if (payload.length === 0) retained.delete(packet.topic)
      else retained.set(packet.topic, { payload, qos: packet.qos === 0 ? 0 : 1 })
    }
    route(from, packet.topic, payload, packet.qos)
    for (const listener of publishListeners) listener(packet.topic, payload)
  }

  const subscribed = (connection: BrokerConnection, packet: mqttPacket.ISubscribePacket) => {
    const granted = packet.subscriptions.map(({ topic, qos, nl }) => {
      const capped = qos === 0 ? 0 : 1
      connection.filters.set(topic, { qos: capped, noLocal: connection.protocolVersion === 5 && nl === true })
      return capped
    })
    send(connection, { cmd: "suback", messageId: packet.messageId!, granted })
    for (const [topic, message] of retained) {
      const qos = packet.subscriptions.some(({ topic: filter }) => topicMatches(filter, topic)) ? matchingQos(connection, topic, undefined) : undefined
      if (qos !== undefined) deliver(connection, topic, message.payload, Math.min(qos, message.qos) as 0 | 1, true)
    }
    changed(connection)
  }

  const unsubscribed = (connection: BrokerConnection, packet: mqttPacket.IUnsubscribePacket) => {
    // MQTT 5 answers per filter: 0 (success) or 17 (no subscription existed).
    const granted = packet.unsubscriptions.map((filter) => (connection.filters.delete(filter) ? 0 : 17))
    send(connection, { cmd: "unsuback", messageId: packet.messageId!, granted })
    changed(connection)
  }

  const accept = (socket: net.Socket) => {
    socket.setNoDelay(true)
    sockets.add(socket)
    const parser = mqttPacket.parser()
    let connection: BrokerConnection | undefined
    let bytesBefore = 0
    let arrivedAt = 0
    parser.on("packet", (packet: mqttPacket.Packet) => {
      if (connection === undefined) {
        if (packet.cmd !== "connect") return socket.destroy()
        const protocolVersion = packet.protocolVersion ?? 4
        const assigned = packet.clientId === "" ? `mini-${++anonymous}` : undefined
        for (const other of connections) if (other.clientId === (assigned ?? packet.clientId)) other.socket.destroy()
        connection = {
          clientId: assigned ?? packet.clientId,
          protocolVersion,
          socket,
          filters: new Map(),
          delivered: 0,
          dropped: 0,
          relayed: 0,
          bytesIn: bytesBefore,
          bytesOut: 0,
          nextMessageId: 0
        }
        connections.add(connection)
        send(connection, protocolVersion === 5
          ? { cmd: "connack", reasonCode: 0, sessionPresent: false, ...(assigned === undefined ? {} : { properties: { assignedClientIdentifier: assigned } }) }
          : { cmd: "connack", returnCode: 0, sessionPresent: false })
        changed(connection)
        return
      }
      switch (packet.cmd) {
        case "publish":
          return published(connection, packet, arrivedAt)
        case "pubrel":
          return send(connection, { cmd: "pubcomp", messageId: packet.messageId })
        case "subscribe":
          return subscribed(connection, packet)
        case "unsubscribe":
          return unsubscribed(connection, packet)
        case "pingreq":
          return send(connection, { cmd: "pingresp" })
        case "disconnect":
          return socket.end()
        case "connect":
          // A second CONNECT is a protocol violation (MQTT 3.1.1 §3.1.0-2).
          return socket.destroy()
      }
    })
    parser.on("error", () => socket.destroy())
    socket.on("data", (data: Buffer) => {
      arrivedAt = now()
      if (connection === undefined) bytesBefore += data.length
      else connection.bytesIn += data.length
      parser.parse(data)
    })
    socket.on("error", () => {})
    socket.on("close", () => {
      sockets.delete(socket)
      if (connection !== undefined && connections.delete(connection)) changed(connection)
    })
  }

  const server = net.createServer(accept)
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", () => resolve()))
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    connections,
    retain: (topic, payload, qos) => void retained.set(topic, { payload, qos }),
    onSubscriptions: (listener) => void listeners.push(listener),
    onPublish: (listener) => void publishListeners.push(listener),
    publish: (topic, payload, qos) => route(undefined, topic, payload, qos),
    arrivals,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      })
  }
}
