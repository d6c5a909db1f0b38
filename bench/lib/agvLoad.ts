/**
 * The robot side of the ingest benchmark, run as a child process: `robots` simulated AGVs saying
 * ONLINE and one `state`, then publishing `visualization` at `hz` until told to stop, over
 * `connections` MQTT connections (robots spread round-robin; one connection per robot when
 * they are equal, each with the last will the VDA 5050 specification asks for).
 *
 * The packets are made by mqtt-packet (mqtt.js's own encoder) and written straight to the
 * sockets, one write per connection per period (at its own phase of the period, or all at once
 * with `burst`): a thousand mqtt.js clients, or a system call per
 * message, would spend more of the 2-core machine than the service being measured. Fewer
 * connections than robots stand for robots behind a site gateway: the broker and the service
 * see the same topics and messages, the kernel fewer packets. Each visualization carries its headerId (+1 per message, as the specification says)
 * and the time it was made, so the receiver can count gaps and measure latency.
 *
 * Requests over IPC: `{ op: "connect" }` → once every AGV is connected and has said ONLINE;
 * `{ op: "run", seconds }` → publishes for that long, then answers with what it published;
 * `{ op: "stop" }` → disconnects cleanly (no last will) and answers.
 */
import * as mqttPacket from "mqtt-packet"
import * as net from "node:net"

const [brokerPort, robotCount, hz, prefix, connectionCount, phases] = [
  Number(process.argv[2]),
  Number(process.argv[3]),
  Number(process.argv[4]),
  process.argv[5],
  Number(process.argv[6] ?? process.argv[3]),
  process.argv[7] === "burst" ? "burst" : "spread"
]
const manufacturer = "bench"
const connectConcurrency = 100

interface Agv {
  readonly serialNumber: string
  readonly visualizationTopic: Buffer
  headerId: number
  x: number
}

interface Connection {
  readonly socket: net.Socket
  readonly agvs: Array<Agv>
}

const header = (agv: Agv, headerId: number) => ({
  headerId,
  timestamp: new Date().toISOString(),
  version: "2.0.0",
  manufacturer,
  serialNumber: agv.serialNumber
})

const publish = (topic: string, payload: string, qos: 0 | 1, retain: boolean, messageId?: number) =>
  mqttPacket.generate({
    cmd: "publish",
    topic,
    payload: Buffer.from(payload),
    qos,
    retain,
    dup: false,
    ...(messageId === undefined ? {} : { messageId })
  })

/**
 * A QoS 0 PUBLISH (MQTT 3.1.1 §3.3) of a topic and a payload already in bytes: the hot loop's
 * own encoder, equal to mqtt-packet's output for these packets and several times cheaper.
 */
const publishQos0 = (topic: Buffer, payload: Buffer): Buffer => {
  const remaining = 2 + topic.length + payload.length
  const lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : 3
  const packet = Buffer.allocUnsafe(1 + lengthBytes + remaining)
  packet[0] = 0x30
  let i = 1
  for (let n = remaining; ; ) {
    const byte = n % 128
    n = Math.floor(n / 128)
    packet[i++] = n > 0 ? byte | 0x80 : byte
    if (n === 0) break
  }
  packet.writeUInt16BE(topic.length, i)
  topic.copy(packet, i + 2)
  payload.copy(packet, i + 2 + topic.length)
  return packet
}

const stateOf = (agv: Agv) =>
  JSON.stringify({
    ...header(agv, 0),
    orderId: "",
    orderUpdateId: 0,
    lastNodeId: "",
    lastNodeSequenceId: 0,
    nodeStates: [],
    edgeStates: [],
    driving: true,
    actionStates: [],
    batteryState: { batteryCharge: 80, charging: false },
    operatingMode: "AUTOMATIC",
    errors: [],
    safetyState: { eStop: "NONE", fieldViolation: false },
    agvPosition: { x: agv.x, y: 0, theta: 0, mapId: "bench", positionInitialized: true }
  })

const topicOf = (serialNumber: string, topic: string) => `${prefix}/${manufacturer}/${serialNumber}/${topic}`

const agvOf = (index: number): Agv => {
  const serialNumber = `agv-${String(index).padStart(4, "0")}`
  return { serialNumber, visualizationTopic: Buffer.from(topicOf(serialNumber, "visualization")), headerId: 0, x: index }
}

/** Opens connection `index` for `agvs`; the last will is the first AGV's (one per AGV when alone). */
const connectOne = (index: number, agvs: Array<Agv>): Promise<Connection> =>
  new Promise((resolve, reject) => {
    const socket = net.connect(brokerPort, "127.0.0.1")
    socket.setNoDelay(true)
    const first = agvs[0]
    socket.once("error", reject)
    socket.once("connect", () => {
      socket.write(mqttPacket.generate({
        cmd: "connect",
        protocolId: "MQTT",
        protocolVersion: 4,
        clean: true,
        clientId: `bench-${index}-${first.serialNumber}`,
        keepalive: 0,
        will: {
          topic: topicOf(first.serialNumber, "connection"),
          payload: Buffer.from(JSON.stringify({ ...header(first, 0), connectionState: "CONNECTIONBROKEN" })),
          qos: 1,
          retain: true
        }
      }))
    })
    // CONNACK first; later bytes (PUBACKs of the QoS 1 connection messages) are read and ignored.
    socket.once("data", (data) => {
      if (data[0] !== 0x20 || data[3] !== 0) return reject(new Error(`connection ${index}: CONNACK refused`))
      socket.on("data", () => {})
      agvs.forEach((agv, i) => {
        socket.write(publish(topicOf(agv.serialNumber, "connection"), JSON.stringify({ ...header(agv, 1), connectionState: "ONLINE" }), 1, true, i + 1))
        socket.write(publish(topicOf(agv.serialNumber, "state"), stateOf(agv), 0, false))
      })
      resolve({ socket, agvs })
    })
  })

let connections: Array<Connection> = []

const connectAll = async () => {
  const groups: Array<Array<Agv>> = Array.from({ length: Math.min(connectionCount, robotCount) }, () => [])
  for (let i = 0; i < robotCount; i++) groups[i % groups.length].push(agvOf(i + 1))
  for (let i = 0; i < groups.length; i += connectConcurrency) {
    const wave = groups.slice(i, i + connectConcurrency).map((agvs, k) => connectOne(i + k, agvs))
    connections.push(...(await Promise.all(wave)))
  }
}

/**
 * Publishes one visualization per AGV per period, on a timer that catches up on what is due.
 * `spread` (the default) gives connection `c` of `n` the phase `c / n` of the period, as
 * independent robots would have; `burst` has every AGV speak at the start of the period, the
 * worst case for whoever takes the messages.
 */
const run = (seconds: number) =>
  new Promise<{ published: number; late: number; cpuMs: number; blockedWrites: number }>((resolve) => {
    const periodMs = 1000 / hz
    const totalRounds = Math.round((seconds * 1000) / periodMs)
    const started = performance.now()
    const cpu = process.cpuUsage()
    const offsets = connections.map((_, c) => (phases === "burst" ? 0 : (c * periodMs) / connections.length))
    const rounds = connections.map(() => 0)
    let published = 0
    let late = 0
    let blockedWrites = 0
    const timer = setInterval(() => {
      const elapsed = performance.now() - started
      connections.forEach((connection, c) => {
        const since = elapsed - offsets[c]
        if (since < 0) return
        const due = Math.min(Math.floor(since / periodMs) + 1, totalRounds)
        if (due - rounds[c] > 1) late += due - rounds[c] - 1
        for (; rounds[c] < due; rounds[c]++) {
          // One clock reading per write: the AGVs of a connection speak within the same millisecond or so.
          const timestamp = new Date().toISOString()
          const packets: Array<Buffer> = []
          for (const agv of connection.agvs) {
            agv.headerId++
            agv.x += 0.001
            const payload = `{"headerId":${agv.headerId},"timestamp":"${timestamp}","version":"2.0.0",` +
              `"manufacturer":"${manufacturer}","serialNumber":"${agv.serialNumber}",` +
              `"agvPosition":{"x":${agv.x.toFixed(3)},"y":1,"theta":0.5,"mapId":"bench","positionInitialized":true},` +
              `"velocity":{"vx":0.1,"vy":0,"omega":0}}`
            packets.push(publishQos0(agv.visualizationTopic, Buffer.from(payload)))
          }
          if (!connection.socket.write(packets.length === 1 ? packets[0] : Buffer.concat(packets))) blockedWrites++
          published += packets.length
        }
      })
      if (elapsed >= seconds * 1000 && rounds.every((n) => n >= totalRounds)) {
        clearInterval(timer)
        const used = process.cpuUsage(cpu)
        resolve({ published, late, cpuMs: Math.round((used.user + used.system) / 1000), blockedWrites })
      }
    }, 1)
  })

const stop = async () => {
  const disconnect = mqttPacket.generate({ cmd: "disconnect" })
  await Promise.all(connections.map(({ socket }) => new Promise<void>((resolve) => socket.end(disconnect, () => resolve()))))
  connections = []
}

process.on("message", (message: { op: "connect" } | { op: "run"; seconds: number } | { op: "stop" }) => {
  const answer = (work: Promise<unknown>) =>
    work.then((result) => process.send!(result ?? {}), (error) => {
      console.error(error)
      process.exit(1)
    })
  switch (message.op) {
    case "connect":
      return answer(connectAll().then(() => ({ connections: connections.length })))
    case "run":
      return answer(run(message.seconds))
    case "stop":
      return answer(stop())
  }
})
process.on("disconnect", () => process.exit(0))
