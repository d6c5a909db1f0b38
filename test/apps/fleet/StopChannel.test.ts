import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { WebSocket } from "ws"
import { PubSub, TestKit } from "../../../src/actors/index.js"
import * as Fleet from "../../../src/apps/fleet/Fleet.js"
import * as FleetConfig from "../../../src/apps/fleet/FleetConfig.js"
import * as LinkEvent from "../../../src/links/LinkEvent.js"
import * as RmiSimulator from "../../../src/links/rmi/RmiSimulator.js"
import * as AgvSimulator from "../../../src/links/vda5050/AgvSimulator.js"
import { AuditLog, layer as auditLayer } from "../../../src/store/AuditLog.js"
import * as Database from "../../../src/store/Database.js"
import { eventually } from "../../links/rmi/eventually.js"
import * as FleetProbe from "../../links/vda5050/support/FleetProbe.js"

/** A raw client of the stop channel: sends one frame and waits for the next reply. */
const stopClient = (port: number) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<WebSocket>((resolve, reject) => {
        const socket = new WebSocket(`ws://127.0.0.1:${port}/`, "fleetvisor.stop.v1")
        socket.once("open", () => resolve(socket)).once("error", reject)
      })
    ),
    (socket) => Effect.sync(() => socket.close())
  ).pipe(Effect.map((socket) => {
    const replies: Array<unknown> = []
    socket.on("message", (data) => replies.push(JSON.parse(data.toString())))
    return {
      socket,
      /** Sends `frame` as it is (a string) or as JSON, and waits for the reply it causes. */
      ask: (frame: unknown) => {
        const before = replies.length
        socket.send(typeof frame === "string" ? frame : JSON.stringify(frame))
        return eventually(Effect.sync(() => replies), (all) => all.length > before).pipe(Effect.map((all) => all[before]))
      }
    }
  }))

/** Mosquitto, one simulated AGV, one simulated arm, and the fleet over them with its stop channel and an audit log. */
const fleetWithChannel = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-stop-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  const store = yield* Layer.build(auditLayer.pipe(Layer.provide(Database.layer({ filename: path.join(dir, "audit.db") }))))
  const log = Context.get(store, AuditLog)
  const prefix = FleetProbe.uniquePrefix()
  const probe = yield* FleetProbe.make(FleetProbe.MOSQUITTO_URL, prefix)
  const arm = yield* RmiSimulator.make({ port: 0, timeScale: 5 })
  const hub = yield* PubSub.make()
  const events: Array<LinkEvent.LinkEvent> = []
  const queue = yield* PubSub.subscribeQueue<LinkEvent.LinkEvent>(hub, LinkEvent.FleetTopic, { bufferSize: 10_000 })
  yield* Effect.forkScoped(Effect.forever(Effect.map(Queue.take(queue), (event) => events.push(event))))
  const fleet = yield* Fleet.make({
    settings: FleetConfig.make({
      mqttUrl: FleetProbe.MOSQUITTO_URL,
      mqttPrefix: prefix,
      rmiRobots: [{ id: "arm-1", host: "127.0.0.1", port: arm.port }],
      stopPort: 0
    }),
    hub,
    system: yield* TestKit.system(),
    auditLog: log
  })
  const sim = yield* AgvSimulator.make({ brokerUrl: FleetProbe.MOSQUITTO_URL, prefix, count: 1 })
  const agv = sim.agvs[0]
  const id = `${agv.manufacturer}/${agv.serialNumber}`
  yield* eventually(fleet.state, (state) => state.robots.filter((r) => r.status === "online").length === 2)
  const port = yield* eventually(Effect.sync(() => fleet.stopChannel?.port()), (port) => port !== undefined)
  const client = yield* stopClient(port!)
  return { fleet, log, probe, arm, agv, id, client, events }
})

const busyFor = (ms: number) => {
  const until = Date.now() + ms
  while (Date.now() < until) {
    // the main thread does nothing else meanwhile: no timers, no sockets, no actors
  }
}

/** The status (or `open`) of an upgrade to the channel with `headers`. */
const upgrade = (port: number, headers: Record<string, string>) =>
  Effect.promise(() =>
    new Promise<number | "open">((resolve) => {
      const socket = new WebSocket(`ws://127.0.0.1:${port}/`, "fleetvisor.stop.v1", { headers })
      socket.once("open", () => {
        socket.close()
        resolve("open")
      })
      socket.once("unexpected-response", (_, response) => resolve(response.statusCode ?? 0))
      socket.once("error", () => resolve(0))
    })
  )

describe("the stop channel", () => {
  it.scopedLive("stops an AGV while the main thread is blocked, continuing the link's headerIds", () =>
    Effect.gen(function*() {
      const { agv, client, fleet, id, log, probe } = yield* fleetWithChannel
      // The link's first message was its stateRequest, headerId 0.
      yield* probe.waitFor(agv.serialNumber, "instantActions", (m) => m.headerId === 0)

      const sent = Date.now()
      const reply = Effect.runPromise(client.ask({ id: 7, robot: id }))
      busyFor(300)
      const answer = (yield* Effect.promise(() => reply)) as { writtenAt: number }
      expect(answer).toEqual({ id: 7, ok: true, writtenAt: expect.any(Number), reached: [id], latchedOnly: [] })
      // The answer came once the main thread had latched the AGV.
      expect(fleet.latches.get(id)).toMatchObject({ robot: id, by: "127.0.0.1" })
      // Written while this thread was still busy.
      expect(answer.writtenAt - sent).toBeLessThan(150)
      const stop = yield* probe.waitFor(agv.serialNumber, "instantActions", (m) => m.headerId === 1)
      expect(stop.message.actions.map((a) => [a.actionType, a.blockingType])).toEqual([
        ["startPause", "HARD"],
        ["cancelOrder", "NONE"]
      ])
      // Stamped by the channel's thread when the request arrived, not after the main thread came back.
      expect(Date.parse(stop.message.timestamp) - sent).toBeLessThan(150)
      yield* eventually(agv.state, (state) => state.paused === true)

      // The main thread's next instant action for the AGV takes the next id of the same sequence.
      yield* fleet.emergencyStop(id, "someone")
      yield* probe.waitFor(agv.serialNumber, "instantActions", (m) => m.headerId === 2)

      const rows = yield* eventually(log.query({ robot: id, limit: 10 }), (rows) => rows.length === 2)
      expect(rows.map(({ command, params, result, who }) => ({ command, params, result, who })).reverse()).toEqual([
        { command: "EmergencyStop", params: { via: "stop channel" }, result: "ok", who: "127.0.0.1" },
        { command: "EmergencyStop", params: {}, result: "ok", who: "someone" }
      ])
      expect(fleet.stopChannel?.stats()).toMatchObject({ requests: 1, published: 1, forwarded: 0, connections: 1 })
    }))

  it.scopedLive("hands an arm's stop to the main thread, which aborts the controller's program", () =>
    Effect.gen(function*() {
      const { arm, client, events, fleet } = yield* fleetWithChannel
      expect(yield* client.ask({ id: "a", robot: "arm-1" })).toEqual({ id: "a", ok: true, reached: ["arm-1"], latchedOnly: [] })
      yield* eventually(arm.snapshot, (s) => s.program === "aborted")
      expect(events).toContainEqual(expect.objectContaining({ _tag: "EmergencyStopped", robot: "arm-1", kind: "arm" }))
      expect(fleet.stopChannel?.stats()).toMatchObject({ published: 0, forwarded: 1 })
    }))

  it.scopedLive("stops every robot: the AGVs from its thread, the arms from the main thread, each once", () =>
    Effect.gen(function*() {
      const { agv, arm, client, events, id, log, probe } = yield* fleetWithChannel
      const answer = (yield* client.ask({ id: 1 })) as { reached: Array<string> }
      expect({ ...answer, reached: [...answer.reached].sort() }).toEqual({
        id: 1,
        ok: true,
        reached: ["arm-1", id].sort(),
        latchedOnly: []
      })
      yield* eventually(arm.snapshot, (s) => s.program === "aborted")
      yield* eventually(agv.state, (state) => state.paused === true)
      yield* Effect.sleep("300 millis")
      const stops = probe.log.filter((m) => m.topic.topic === "instantActions" && m.raw.includes("startPause"))
      expect(stops).toHaveLength(1)
      const stopped = events.filter((e) => e._tag === "EmergencyStopped").map((e) => e.robot).sort()
      expect(stopped).toEqual(["arm-1", id].sort())
      const rows = yield* eventually(log.query({ limit: 10 }), (rows) => rows.length === 1)
      expect(rows[0]).toMatchObject({ robot: "*", command: "EmergencyStop", result: "ok" })
    }))

  it.scopedLive("answers bad input with a typed error, counts it, and keeps the connection", () =>
    Effect.gen(function*() {
      const { client, fleet } = yield* fleetWithChannel
      expect(yield* client.ask("{not json")).toEqual({
        id: null,
        ok: false,
        error: { _tag: "BadRequest", message: "not JSON" }
      })
      expect(yield* client.ask({ id: 2, robot: 42 })).toMatchObject({ id: 2, ok: false, error: { _tag: "BadRequest" } })
      expect(yield* client.ask({ id: 3, robot: "nobody/here" })).toEqual({
        id: 3,
        ok: false,
        error: { _tag: "UnknownRobot", robot: "nobody/here" }
      })
      expect(fleet.stopChannel?.stats()).toMatchObject({ requests: 3, badRequests: 2, forwarded: 1 })
      expect(client.socket.readyState).toBe(WebSocket.OPEN)
    }))

  it.scopedLive("checks Host (421) and Origin (403) as /ws does, and bounds the connections of an address (429)", () =>
    Effect.gen(function*() {
      const { fleet } = yield* fleetWithChannel
      const port = fleet.stopChannel!.port()!
      expect(yield* upgrade(port, { Host: "evil.example:1234" })).toBe(421)
      expect(yield* upgrade(port, { Origin: "https://evil.example" })).toBe(403)
      expect(yield* upgrade(port, { Origin: "http://127.0.0.1:8080" })).toBe("open")
      expect(yield* upgrade(port, { Host: "localhost:1", Origin: "http://localhost:8080" })).toBe("open")
      expect(yield* upgrade(port, { Host: "evil.example" })).toBe(421)
      // The fixture's client is one connection of this address; fill up to 16, then one more.
      const opened: Array<WebSocket> = []
      for (let i = 0; i < 16; i++) {
        opened.push(yield* Effect.promise(() =>
          new Promise<WebSocket>((resolve) => {
            const socket = new WebSocket(`ws://127.0.0.1:${port}/`, "fleetvisor.stop.v1")
            socket.once("open", () => resolve(socket)).once("error", () => resolve(socket))
          })
        ))
      }
      expect(opened.filter((socket) => socket.readyState === WebSocket.OPEN).length).toBe(15)
      expect(yield* upgrade(port, {})).toBe(429)
      for (const socket of opened) socket.close()
      expect(fleet.stopChannel?.stats()).toMatchObject({ refusedHost: 2, refusedOrigin: 1 })
      expect(fleet.stopChannel!.stats().refusedAddress).toBeGreaterThanOrEqual(2)
    }))

  it.scopedLive("a flood of stops is coalesced: each answered, the robots stopped once, one audit row with the count; a connection past 20 a second is closed", () =>
    Effect.gen(function*() {
      const { client, fleet, log } = yield* fleetWithChannel
      const answers = []
      for (let i = 0; i < 30; i++) answers.push(yield* client.ask({ id: i }))
      expect(answers.every((answer) => (answer as { ok: boolean }).ok)).toBe(true)
      expect(fleet.stopChannel!.stats().coalesced).toBeGreaterThanOrEqual(29)
      const rows = yield* TestKit.awaitUntil(
        Effect.map(Effect.orDie(log.query({ robot: "*", limit: 10 })), (rows) => rows.length === 2),
        { waitedFor: "the first stop's row and the coalesced row" }
      ).pipe(Effect.zipRight(log.query({ robot: "*", limit: 10 })))
      expect(rows.map((row) => row.params).reverse()).toEqual([
        { via: "stop channel" },
        { via: "stop channel", coalesced: 29 }
      ])

      // 60 frames at once: past the burst of 40, the connection is closed with 1008.
      const closed = yield* Effect.promise(() =>
        new Promise<number>((resolve) => {
          client.socket.once("close", (code) => resolve(code))
          for (let i = 0; i < 60; i++) client.socket.send(JSON.stringify({ id: i }))
        })
      )
      expect(closed).toBe(1008)
      expect(fleet.stopChannel!.stats().throttled).toBe(1)
    }))
})
