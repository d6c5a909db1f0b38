/**
 * The benchmarks' broker-free replayer (`bench/lib/miniBroker.ts`, `agvStream.ts`, and the child
 * process `replayer.ts`): real MQTT clients (mqtt.js, 3.1.1 and 5) and raw sockets against it.
 * It must be a broker as far as they can tell (acknowledgements, retained messages, routing by
 * topic filter), stream only what a connection subscribed with consecutive headerIds, record the
 * clients' publishes, and drop a connection's messages past 4 MiB unread, counted per AGV.
 */
import * as mqtt from "mqtt"
import * as mqttPacket from "mqtt-packet"
import * as net from "node:net"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { makeAgvStream } from "../../bench/lib/agvStream.js"
import { spawnChild } from "../../bench/lib/childProcess.js"
import { dropAboveBytes, type MiniBroker, startMiniBroker, topicMatches } from "../../bench/lib/miniBroker.js"
import * as StopLatch from "../../src/links/StopLatch.js"
import { confirmsStop } from "../../src/links/vda5050/AgvLink.js"
import * as Inbound from "../../src/links/vda5050/Inbound.js"
import type { State } from "../../src/links/vda5050/State.js"

const prefix = "bench/v2"
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Seen {
  readonly topic: string
  readonly retain: boolean
  readonly payload: Record<string, any>
}

/** An mqtt.js client that keeps every message it receives, decoded and (in `raw`) as it came. */
const client = async (url: string, clientId: string, protocolVersion: 4 | 5) => {
  const c = await mqtt.connectAsync(url, { clientId, protocolVersion, reconnectPeriod: 0 })
  const seen: Array<Seen> = []
  const raw: Array<{ readonly topic: string; readonly payload: Buffer }> = []
  c.on("message", (topic, payload, packet) => {
    seen.push({ topic, retain: packet.retain, payload: JSON.parse(payload.toString()) })
    raw.push({ topic, payload })
  })
  return { c, seen, raw }
}

/** A raw TCP client that says CONNECT, PINGREQ and SUBSCRIBE and then, unless `reads`, never reads a byte. */
const rawClient = async (port: number, clientId: string, filter: string, reads: boolean) => {
  const socket = net.connect(port, "127.0.0.1")
  await new Promise((resolve) => socket.once("connect", resolve))
  const replies: Array<Buffer> = []
  socket.on("data", (data: Buffer) => replies.length < 4 && replies.push(data))
  socket.write(mqttPacket.generate({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, clientId, keepalive: 0 }))
  socket.write(mqttPacket.generate({ cmd: "pingreq" }))
  socket.write(mqttPacket.generate({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: filter, qos: 0 }] }))
  for (let i = 0; i < 100 && Buffer.concat(replies).length < 4 + 5 + 2; i++) await sleep(10)
  if (!reads) socket.pause()
  return { socket, replies: Buffer.concat(replies) }
}

const until = async (condition: () => boolean, ms: number) => {
  for (const end = Date.now() + ms; !condition() && Date.now() < end; ) await sleep(20)
  return condition()
}

let broker: MiniBroker | undefined
const cleanups: Array<() => unknown> = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
  await broker?.close()
  broker = undefined
})

describe("topic filters", () => {
  it("match `+` for one level and a final `#` for any number, none included", () => {
    expect(topicMatches("bench/v2/+/+/#", "bench/v2/bench/agv-0001/visualization")).toBe(true)
    expect(topicMatches("bench/v2/+/+/#", "bench/v2/bench/agv-0001")).toBe(true)
    expect(topicMatches("bench/v2/+/+/#", "bench/v2/bench")).toBe(false)
    expect(topicMatches("bench/v2/bench/agv-0001/visualization", "bench/v2/bench/agv-0002/visualization")).toBe(false)
    expect(topicMatches("bench/+/bench/+/state", "bench/v2/bench/agv-0001/visualization")).toBe(false)
    expect(topicMatches("#", "$SYS/broker/uptime")).toBe(false)
  })
})

describe("replayer", () => {
  it("acknowledges MQTT 3.1.1 and 5 clients, keeps the AGVs' retained ONLINE and streams to matching subscriptions only", async () => {
    broker = await startMiniBroker()
    const agvs = makeAgvStream(broker, 20, prefix)
    const named = await client(broker.url, "named", 4)
    const all = await client(broker.url, "wildcard", 5)
    cleanups.push(() => named.c.endAsync(), () => all.c.endAsync())
    const granted = await named.c.subscribeAsync({
      [`${prefix}/bench/agv-0002/visualization`]: { qos: 0 },
      [`${prefix}/bench/agv-0002/connection`]: { qos: 2 }
    })
    expect(granted.map((g) => g.qos)).toEqual([0, 1])
    expect((await all.c.subscribeAsync(`${prefix}/+/+/#`, { qos: 1 }))[0].qos).toBe(1)
    await until(() => all.seen.length >= 20 && named.seen.length >= 1, 2_000)

    expect(named.seen).toEqual([{
      topic: `${prefix}/bench/agv-0002/connection`,
      retain: true,
      payload: expect.objectContaining({ connectionState: "ONLINE", manufacturer: "bench", serialNumber: "agv-0002", version: "2.1.0" })
    }])
    expect(all.seen.filter((m) => m.retain && m.topic.endsWith("/connection")).length).toBe(20)
    named.seen.length = 0
    all.seen.length = 0

    agvs.start(100)
    await sleep(600)
    const figures = agvs.halt()!
    await until(() => named.seen.length + all.seen.length >= figures.sent, 2_000)

    expect(figures.dropped).toBe(0)
    expect(figures.sent).toBe(named.seen.length + all.seen.length)
    expect(new Set(named.seen.map((m) => m.topic))).toEqual(new Set([`${prefix}/bench/agv-0002/visualization`]))
    expect(named.seen.length).toBeGreaterThanOrEqual(30)
    expect(new Set(all.seen.map((m) => m.payload.serialNumber)).size).toBe(20)
    const headerIds = (seen: ReadonlyArray<Seen>, serialNumber: string) =>
      seen.filter((m) => m.payload.serialNumber === serialNumber).map((m) => m.payload.headerId as number)
    const consecutive = (ids: ReadonlyArray<number>) => ids.every((id, i) => i === 0 || id === ids[i - 1] + 1)
    expect(consecutive(headerIds(named.seen, "agv-0002"))).toBe(true)
    for (let i = 1; i <= 20; i++) {
      const ids = headerIds(all.seen, `agv-${String(i).padStart(4, "0")}`)
      expect(ids.length).toBeGreaterThan(20)
      expect(consecutive(ids)).toBe(true)
    }
    const sample = all.seen.at(-1)!.payload
    expect(sample).toMatchObject({
      version: "2.1.0",
      manufacturer: "bench",
      agvPosition: { mapId: "bench", positionInitialized: true, theta: 0, y: expect.any(Number), x: expect.any(Number) },
      velocity: { vx: 0.1, vy: 0, omega: 0 }
    })
    expect(Math.abs(Date.parse(sample.timestamp as string) - Date.now())).toBeLessThan(5_000)

    // Aimed at client ids: the wildcard client is not a target, and an unsubscribed topic stops.
    await named.c.unsubscribeAsync(`${prefix}/bench/agv-0002/visualization`)
    named.seen.length = 0
    all.seen.length = 0
    agvs.start(100, "named")
    await sleep(200)
    expect(agvs.halt()!.sent).toBe(0)
    agvs.start(100, "wild")
    await sleep(200)
    const aimed = agvs.halt()!
    await until(() => all.seen.length >= aimed.sent, 2_000)
    expect(aimed.connections.map((c) => c.clientId)).toEqual(["wildcard"])
    expect(aimed.sent).toBeGreaterThan(0)
    expect(all.seen.length).toBe(aimed.sent)
    expect(named.seen).toEqual([])
  })

  it("records a client's publish with its arrival time, acknowledges QoS 1 and routes it like a broker", async () => {
    broker = await startMiniBroker()
    makeAgvStream(broker, 2, prefix)
    const service = await client(broker.url, "service", 4)
    const agv = await client(broker.url, "agv", 5)
    cleanups.push(() => service.c.endAsync(), () => agv.c.endAsync())
    await agv.c.subscribeAsync(`${prefix}/bench/agv-0001/instantActions`, { qos: 1 })
    const topic = `${prefix}/bench/agv-0001/instantActions`
    const before = performance.timeOrigin + performance.now()
    await service.c.publishAsync(topic, JSON.stringify({ headerId: 7, actions: [] }), { qos: 1 })
    const after = performance.timeOrigin + performance.now()
    await service.c.publishAsync(`${prefix}/bench/agv-0002/instantActions`, JSON.stringify({ headerId: 1 }), { qos: 0 })
    await until(() => agv.seen.length >= 1 && broker!.arrivals.size >= 2, 2_000)

    const arrived = broker.arrivals.get(topic)!
    expect(arrived.count).toBe(1)
    expect(arrived.at[0]).toBeGreaterThanOrEqual(before)
    expect(arrived.at[0]).toBeLessThanOrEqual(after)
    expect(agv.seen).toEqual([{ topic, retain: false, payload: { headerId: 7, actions: [] } }])
    expect([...broker.connections].find((c) => c.clientId === "agv")!.relayed).toBe(1)
  })

  it("sends what the service's checks accept, and answers a stop with a state that confirms it", async () => {
    broker = await startMiniBroker()
    const agvs = makeAgvStream(broker, 3, prefix)
    const service = await client(broker.url, "fleetvisor-test", 4)
    cleanups.push(() => service.c.endAsync())
    await service.c.subscribeAsync(`${prefix}/+/+/#`, { qos: 0 })
    agvs.start(50)
    await sleep(200)
    agvs.halt()
    const stop = {
      headerId: 1,
      timestamp: new Date().toISOString(),
      version: "2.0.0",
      manufacturer: "bench",
      serialNumber: "agv-0003",
      actions: [
        { actionId: "pause-1", actionType: "startPause", blockingType: "HARD" },
        { actionId: "cancel-1", actionType: "cancelOrder", blockingType: "HARD" }
      ]
    }
    await service.c.publishAsync(`${prefix}/bench/agv-0003/instantActions`, JSON.stringify(stop), { qos: 0 })
    await until(() => service.seen.some((m) => m.topic.endsWith("/state")), 2_000)

    const check = Inbound.makeChecker(prefix)
    for (const topic of ["connection", "visualization", "state"]) {
      const sent = service.raw.filter((m) => m.topic.endsWith(`/${topic}`))
      expect(sent.length).toBeGreaterThan(0)
      for (const { topic: name, payload } of sent) expect(check(name, payload)).toMatchObject({ _tag: "Valid" })
    }
    const states = service.raw.filter((m) => m.topic.endsWith("/state")).map(({ topic, payload }) => check(topic, payload) as Inbound.Valid)
    expect(states.map((s) => s.identity)).toEqual([{ manufacturer: "bench", serialNumber: "agv-0003" }])
    const latch = StopLatch.memory().latch("bench/agv-0003", "agv", "test")
    latch.cancelActions.add("cancel-1")
    expect(confirmsStop(latch, states[0].message as State)).toBe(true)
    latch.cancelActions.clear()
    latch.cancelActions.add("cancel-0")
    expect(confirmsStop(latch, states[0].message as State)).toBe(false)
  })

  it("drops a connection's messages past 4 MiB unread and counts them per AGV; a reading connection loses none", async () => {
    broker = await startMiniBroker()
    const agvs = makeAgvStream(broker, 200, prefix)
    const stalled = await rawClient(broker.port, "raw-stalled", `${prefix}/#`, false)
    const reading = await rawClient(broker.port, "raw-reading", `${prefix}/#`, true)
    cleanups.push(() => stalled.socket.destroy(), () => reading.socket.destroy())
    // CONNACK (3.1.1: 4 bytes), PINGRESP (2), SUBACK granting QoS 0 (5), then the retained ONLINE.
    expect([...stalled.replies.subarray(0, 11)]).toEqual([0x20, 2, 0, 0, 0xd0, 0, 0x90, 3, 0, 1, 0])

    const connection = [...broker.connections].find((c) => c.clientId === "raw-stalled")!
    agvs.start(200, "raw-")
    const dropping = await until(() => connection.dropped > 0, 15_000)
    const unread = connection.socket.writableLength
    await sleep(300)
    const figures = agvs.halt()!

    expect(dropping).toBe(true)
    expect(unread).toBeGreaterThan(dropAboveBytes)
    expect(connection.socket.writableLength).toBeLessThan(dropAboveBytes + 1024 * 1024)
    const [stalledFigures, readingFigures] = ["raw-stalled", "raw-reading"].map((id) => figures.connections.find((c) => c.clientId === id)!)
    expect(stalledFigures.dropped).toBeGreaterThan(0)
    expect(stalledFigures.dropped).toBe(connection.dropped)
    expect(readingFigures.dropped).toBe(0)
    expect(readingFigures.sent).toBe(stalledFigures.sent)
    expect(figures.dropped).toBe(stalledFigures.dropped)
    const byAgv = Object.values(figures.droppedByAgv)
    expect(byAgv.reduce((a, b) => a + b, 0)).toBe(figures.dropped)
    expect(byAgv.length).toBe(200)
  })

  it("runs as a child process answering over IPC", async () => {
    const replayer = spawnChild<object, any>(path.join(import.meta.dirname, "..", "..", "bench", "lib", "replayer.ts"), ["3", prefix], true)
    cleanups.push(() => replayer.kill())
    const { url } = await replayer.first
    const probe = await client(url, "probe", 4)
    cleanups.push(() => probe.c.endAsync())
    await probe.c.subscribeAsync(`${prefix}/+/+/visualization`)
    expect(await replayer.request({ op: "stream", hz: 50 })).toEqual({})
    await sleep(300)
    const figures = await replayer.request({ op: "halt" })
    const since = performance.timeOrigin + performance.now()
    await probe.c.publishAsync(`${prefix}/bench/agv-0003/instantActions`, "{}", { qos: 1 })
    await until(() => probe.seen.length >= figures.sent, 2_000)

    expect(figures.sent).toBeGreaterThan(20)
    expect(probe.seen.length).toBe(figures.sent)
    const { at } = await replayer.request({ op: "arrivals", topic: `${prefix}/bench/agv-0003/instantActions`, since })
    expect(at.length).toBe(1)
    const stats = await replayer.request({ op: "stats" })
    expect(stats.connections).toEqual([expect.objectContaining({ clientId: "probe", filters: [`${prefix}/+/+/visualization`], delivered: figures.sent, dropped: 0 })])
    expect(stats.received[`${prefix}/bench/agv-0003/instantActions`].count).toBe(1)
  })
})
