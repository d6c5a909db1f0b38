/**
 * The Foxglove endpoint over a real HTTP server on 127.0.0.1, fed by a real fleet (its state
 * actor turns link events into views), read by the `@foxglove/ws-protocol` client over `ws`.
 */
import { FoxgloveClient } from "@foxglove/ws-protocol"
import type { Channel, ServerInfo, StatusMessage } from "@foxglove/ws-protocol"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { WebSocket } from "ws"
import { PubSub, TestKit } from "../../src/actors/index.js"
import type { ActorSystem as ActorSystemService } from "../../src/actors/ActorSystem.js"
import * as Registry from "../../src/actors/Registry.js"
import * as Fleet from "../../src/apps/fleet/Fleet.js"
import * as FleetConfig from "../../src/apps/fleet/FleetConfig.js"
import * as Connections from "../../src/http/Connections.js"
import * as Foxglove from "../../src/http/Foxglove.js"
import type * as FoxgloveConnection from "../../src/http/foxglove/Connection.js"
import * as LinkEvent from "../../src/links/LinkEvent.js"
import * as DynamicSupervisor from "../../src/supervisors/DynamicSupervisor.js"
import * as Supervisor from "../../src/supervisors/Supervisor.js"

interface Received {
  readonly subscriptionId: number
  readonly timestamp: bigint
  readonly json: any
}

/** A Foxglove client and everything it received. */
interface Viewer {
  readonly client: FoxgloveClient
  readonly serverInfo: Array<ServerInfo>
  readonly channels: Array<Channel>
  readonly messages: Array<Received>
  readonly statuses: Array<StatusMessage>
  readonly ws: WebSocket
  closed: { code: number; reason: string } | undefined
}

const decoder = new TextDecoder()

/** Opens a `FoxgloveClient` on `url` offering `protocol`; closed with the test's scope. */
const viewer = (url: string, protocol: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const ws = new WebSocket(url, [protocol])
      const client = new FoxgloveClient({ ws: ws as unknown as ConstructorParameters<typeof FoxgloveClient>[0]["ws"] })
      const v: Viewer = { client, ws, serverInfo: [], channels: [], messages: [], statuses: [], closed: undefined }
      client.on("serverInfo", (info) => v.serverInfo.push(info))
      client.on("advertise", (channels) => v.channels.push(...channels))
      client.on("status", (status) => v.statuses.push(status))
      client.on("message", ({ data, subscriptionId, timestamp }) =>
        v.messages.push({ subscriptionId, timestamp, json: JSON.parse(decoder.decode(data)) }))
      client.on("close", (event) => {
        v.closed = { code: event.code, reason: event.reason }
      })
      client.on("error", () => {})
      return v
    }),
    (v) => Effect.sync(() => v.ws.terminate())
  )

const until = (check: () => boolean, waitedFor: string) =>
  TestKit.awaitUntil(Effect.sync(check), { waitedFor, timeoutMillis: 8_000 })

const channelOf = (v: Viewer, topic: string) => v.channels.find((c) => c.topic === topic)

const armTelemetry = (robot: string, x: number): LinkEvent.LinkEvent => ({
  _tag: "ArmTelemetry",
  robot,
  at: Date.now(),
  programStatus: "running",
  servoReady: true,
  tpMode: false,
  override: 100,
  moving: true,
  position: { X: x, Y: 2, Z: 3, W: 0, P: 0, R: 0 },
  joints: { J1: 10, J2: 20, J3: 30, J4: 40, J5: 50, J6: 60 },
  timeTag: 0
})

const agvUp = (robot: string): LinkEvent.LinkEvent => ({ _tag: "LinkUp", robot, kind: "agv", at: Date.now() })

/**
 * A fleet without links (events are published as its links would), the endpoint, its clients'
 * supervisor under a `gateway` as the node's, and an HTTP server routing upgrades to it.
 */
const setup = (
  options?: Omit<Foxglove.FoxgloveOptions, "connections">,
  /** Runs before the endpoint starts. */
  prelude?: (publish: (event: LinkEvent.LinkEvent) => Effect.Effect<void>, fleet: Fleet.FleetService) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const system: ActorSystemService = yield* TestKit.system()
    const hub = yield* PubSub.make()
    const fleet = yield* Fleet.make({ settings: FleetConfig.make({}), hub, system })
    if (prelude !== undefined) yield* prelude((event) => LinkEvent.publish(hub, event), fleet)
    const connections = Connections.make<FoxgloveConnection.ConnectionMessage>(
      Registry.unsafeMake({ keys: "unique" }),
      { name: "foxglove", maxConnections: Foxglove.defaultMaxConnections, maxPerAddress: Foxglove.defaultMaxConnectionsPerAddress }
    )
    yield* system.spawn(Supervisor.make({ strategy: "one_for_one", children: [connections.childSpec] }), { name: "gateway" })
    const started = yield* Foxglove.make({ ...fleet, eventsTopic: LinkEvent.robotTopic }, { ...options, connections })
    const endpoint = {
      ...started,
      supervisor: Option.getOrThrow(connections.supervisor()),
      /** What the gateway's drain does to every Foxglove client. */
      close: Effect.sync(() => connections.goAway())
    }
    const server = http.createServer((_, response) => response.writeHead(404).end())
    server.on("upgrade", (request, socket, head) => {
      if (request.url === "/foxglove") endpoint.handleUpgrade(request, socket, head)
      else socket.destroy()
    })
    const address = yield* Effect.acquireRelease(
      Effect.async<AddressInfo>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server.address() as AddressInfo)))
      }),
      // Upgraded sockets belong to the connection actors, which the system closes after this.
      () => Effect.sync(() => {
        server.close()
        server.closeAllConnections()
      })
    )
    /** Publishes one event as a link would. */
    const publish = (event: LinkEvent.LinkEvent) => LinkEvent.publish(hub, event)
    /** Publishes arm telemetry every 20 ms until the scope closes. */
    const animate = (robot: string) => {
      let x = 0
      return Effect.forkScoped(Effect.repeat(Effect.suspend(() => publish(armTelemetry(robot, ++x))), Schedule.spaced("20 millis")))
    }
    return { system, hub, endpoint, url: `ws://127.0.0.1:${address.port}/foxglove`, publish, animate }
  }).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.None)))

describe("Foxglove endpoint", () => {
  it.live("greets, advertises a state and an events channel per robot, and advertises robots that appear later", () =>
    Effect.scoped(Effect.gen(function*() {
      const { endpoint, publish, url } = yield* setup()
      yield* publish(armTelemetry("arm-1", 1))
      yield* until(() => endpoint.catalog.robots.has("arm-1"), "arm-1 in the catalog")

      const v = yield* viewer(url, "foxglove.websocket.v1")
      yield* until(() => v.serverInfo.length === 1 && v.channels.length === 2, "serverInfo and arm-1's channels")
      expect(v.ws.protocol).toBe("foxglove.websocket.v1")
      expect(v.serverInfo[0]).toMatchObject({ name: "fleetvisor", capabilities: [], supportedEncodings: ["json"] })
      const state = channelOf(v, "/robots/arm-1/state")!
      expect(state).toMatchObject({ encoding: "json", schemaName: "fleetvisor.RobotView", schemaEncoding: "jsonschema" })
      expect(JSON.parse(state.schema)).toHaveProperty("anyOf")
      expect(channelOf(v, "/robots/arm-1/events")).toMatchObject({ encoding: "json", schemaEncoding: "jsonschema" })

      yield* publish(agvUp("KIT/0001"))
      yield* until(() => channelOf(v, "/robots/KIT/0001/state") !== undefined, "the AGV's channels, advertised live")
      expect(v.channels.map((c) => c.topic).sort()).toEqual([
        "/robots/KIT/0001/events",
        "/robots/KIT/0001/state",
        "/robots/arm-1/events",
        "/robots/arm-1/state"
      ])
      expect(new Set(v.channels.map((c) => c.id)).size).toBe(4)
    })))

  it.live("shares the node's heartbeat: a client that answers pings stays, one that does not is cut off", () =>
    Effect.scoped(Effect.gen(function*() {
      const { url } = yield* setup({ heartbeatIntervalMs: 50 })
      const open = (autoPong: boolean) =>
        Effect.acquireRelease(
          Effect.async<{ ws: WebSocket; closed: () => boolean }>((resume) => {
            const ws = new WebSocket(url, ["foxglove.websocket.v1"], { autoPong })
            let closed = false
            ws.on("close", () => (closed = true))
            ws.on("error", () => {})
            ws.once("open", () => resume(Effect.succeed({ ws, closed: () => closed })))
          }),
          ({ ws }) => Effect.sync(() => ws.terminate())
        )
      const answering = yield* open(true)
      const silent = yield* open(false)
      let pinged = 0
      silent.ws.on("ping", () => pinged++)
      yield* until(() => silent.closed(), "the silent client cut off")
      expect(pinged).toBeGreaterThanOrEqual(1)
      yield* Effect.sleep("150 millis")
      expect(answering.closed()).toBe(false)
    })))

  it.live("advertises the robots the fleet knew before the endpoint started", () =>
    Effect.scoped(Effect.gen(function*() {
      const { url } = yield* setup(undefined, (publish, fleet) =>
        Effect.gen(function*() {
          yield* publish(agvUp("KIT/0007"))
          yield* TestKit.awaitUntil(Effect.map(fleet.state, (s) => s.robots.some((r) => r.id === "KIT/0007")))
          // The view of the AGV went out before the endpoint subscribed: only the fleet's state has it now.
          yield* TestKit.awaitUntil(Effect.map(fleet.state, (s) => s.tick >= 1))
        }).pipe(Effect.orDie))
      const v = yield* viewer(url, "foxglove.websocket.v1")
      yield* until(() => channelOf(v, "/robots/KIT/0007/state") !== undefined, "the AGV's channels")
      const id = v.client.subscribe(channelOf(v, "/robots/KIT/0007/state")!.id)
      yield* until(() => v.messages.length === 1, "the AGV's latest view, at once")
      expect(v.messages[0]).toMatchObject({ subscriptionId: id, json: { kind: "agv", id: "KIT/0007", status: "online" } })
    })))

  it.live("streams the subscribed robot's view as messageData, and stops after unsubscribe", () =>
    Effect.scoped(Effect.gen(function*() {
      const { animate, publish, url } = yield* setup()
      yield* publish(armTelemetry("arm-1", 0))
      yield* publish(armTelemetry("arm-2", 0))
      const v = yield* viewer(url, "foxglove.websocket.v1")
      yield* until(() => v.channels.length === 4, "both arms advertised")
      yield* animate("arm-1")
      yield* animate("arm-2")

      const first = v.client.subscribe(channelOf(v, "/robots/arm-1/state")!.id)
      yield* until(() => v.messages.filter((m) => m.subscriptionId === first).length >= 3, "three views of arm-1")
      const views = v.messages.filter((m) => m.subscriptionId === first)
      for (const m of views) expect(m.json).toMatchObject({ kind: "arm", id: "arm-1", joints: [10, 20, 30, 40, 50, 60] })
      expect(views.at(-1)!.json.position.x).toBeGreaterThan(views[0]!.json.position.x)
      expect(Number(views[0]!.timestamp / 1_000_000n)).toBeGreaterThan(Date.now() - 60_000)
      expect(v.messages.every((m) => m.subscriptionId === first)).toBe(true)

      // The server handles requests in order: once the new subscription has data, the old one is gone.
      v.client.unsubscribe(first)
      const second = v.client.subscribe(channelOf(v, "/robots/arm-1/state")!.id)
      yield* until(() => v.messages.filter((m) => m.subscriptionId === second).length >= 3, "three views on the new subscription")
      const firstOfSecond = v.messages.findIndex((m) => m.subscriptionId === second)
      expect(v.messages.slice(firstOfSecond).filter((m) => m.subscriptionId === first)).toEqual([])
    })))

  it.live("streams a robot's link events on its events channel", () =>
    Effect.scoped(Effect.gen(function*() {
      const { publish, url } = yield* setup()
      yield* publish(armTelemetry("arm-1", 0))
      const v = yield* viewer(url, "foxglove.sdk.v1")
      yield* until(() => v.channels.length === 2, "arm-1 advertised")
      const id = v.client.subscribe(channelOf(v, "/robots/arm-1/events")!.id)
      // Published until it arrives: the subscription is made when the server reads the request.
      const alarm: LinkEvent.LinkEvent = {
        _tag: "Alarm",
        robot: "arm-1",
        kind: "arm",
        code: "SRVO-050",
        level: "fatal",
        message: "Collision detected",
        at: 1_700_000_000_000
      }
      const publisher = yield* Effect.fork(
        Effect.repeat(publish(alarm), Schedule.spaced("20 millis"))
      )
      yield* until(() => v.messages.some((m) => m.subscriptionId === id), "the alarm")
      yield* Fiber.interrupt(publisher)
      expect(v.messages[0]!.json).toEqual(alarm)
      expect(v.messages[0]!.timestamp).toBe(1_700_000_000_000_000_000n)
    })))

  it.live("accepts both subprotocol names and refuses any other with 400", () =>
    Effect.scoped(Effect.gen(function*() {
      const { url } = yield* setup()
      for (const name of Foxglove.Subprotocols) {
        const v = yield* viewer(url, name)
        yield* until(() => v.serverInfo.length === 1, `serverInfo over ${name}`)
        expect(v.ws.protocol).toBe(name)
      }
      const refused = (protocols: Array<string>) =>
        Effect.async<number>((resume) => {
          const ws = new WebSocket(url, protocols)
          ws.on("unexpected-response", (_, response) => {
            resume(Effect.succeed(response.statusCode ?? 0))
            ws.terminate()
          })
          ws.on("open", () => {
            resume(Effect.succeed(101))
            ws.terminate()
          })
          ws.on("error", () => resume(Effect.succeed(-1)))
        }).pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("no answer to the upgrade") }))
      expect(yield* refused(["fleetvisor.v1.json"])).toBe(400)
      expect(yield* refused([])).toBe(400)
    })))

  it.live("each client is an actor under the foxglove supervisor, gone when the client goes", () =>
    Effect.scoped(Effect.gen(function*() {
      const { endpoint, system, url } = yield* setup()
      const v = yield* viewer(url, "foxglove.websocket.v1")
      yield* until(() => v.serverInfo.length === 1, "serverInfo")
      expect(yield* system.render).toContain("gateway (one_for_one)\n└─ foxglove (dynamic, 1/64)\n   └─ foxglove:1 running mailbox=0 restarts=0")
      v.ws.close()
      yield* TestKit.awaitUntil(
        Effect.map(DynamicSupervisor.countChildren(endpoint.supervisor), (c) => c.active === 0).pipe(Effect.orDie),
        { waitedFor: "no connection actor left" }
      )
    })))

  it.live("answers an unknown request with a status error, and close sends 1001", () =>
    Effect.scoped(Effect.gen(function*() {
      const { endpoint, url } = yield* setup()
      const v = yield* viewer(url, "foxglove.websocket.v1")
      yield* until(() => v.serverInfo.length === 1, "serverInfo")
      v.ws.send(JSON.stringify({ op: "getParameters", parameterNames: [] }))
      v.client.subscribe(12345)
      yield* until(() => v.statuses.length === 2, "two status messages")
      expect(v.statuses[0]).toMatchObject({ level: 2, message: expect.stringContaining("getParameters") })
      expect(v.statuses[1]).toMatchObject({ level: 1, message: expect.stringContaining("12345") })
      yield* endpoint.close
      yield* until(() => v.closed !== undefined, "the close")
      expect(v.closed!.code).toBe(1001)
    })))

  it.live("a client that stops reading costs at most its buffer: messages beyond it are dropped, and it catches up", () =>
    Effect.scoped(Effect.gen(function*() {
      const maxBufferedBytes = 64 * 1024
      const { endpoint, hub, publish, system, url } = yield* setup({ maxBufferedBytes, overflow: "dropping" })
      yield* publish(armTelemetry("arm-1", 0))
      const v = yield* viewer(url, "foxglove.websocket.v1")
      yield* until(() => v.channels.length === 2, "arm-1 advertised")
      const id = v.client.subscribe(channelOf(v, "/robots/arm-1/events")!.id)
      const alarm = (code: string, message: string): LinkEvent.LinkEvent => ({
        _tag: "Alarm",
        robot: "arm-1",
        kind: "arm",
        code,
        level: "warning",
        message,
        at: Date.now()
      })
      const untilReceived = (code: string) =>
        Effect.gen(function*() {
          const publisher = yield* Effect.fork(Effect.repeat(publish(alarm(code, "")), Schedule.spaced("20 millis")))
          yield* until(() => v.messages.some((m) => m.json.code === code), code)
          yield* Fiber.interrupt(publisher)
        })
      yield* untilReceived("FIRST")

      const [child] = yield* DynamicSupervisor.whichChildren(endpoint.supervisor)
      const connection = (yield* system.getState(Option.getOrThrow(child!.ref))) as { socket: WebSocket }
      ;(v.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause()
      // 300 events of 100 kB: 30 MB, far beyond what the kernel's socket buffers absorb.
      const fat = "x".repeat(100_000)
      let mostBuffered = 0
      for (let i = 0; i < 300; i++) {
        yield* publish(alarm("FAT", fat))
        mostBuffered = Math.max(mostBuffered, connection.socket.bufferedAmount)
      }
      expect(mostBuffered).toBeGreaterThan(maxBufferedBytes)
      expect(mostBuffered).toBeLessThan(maxBufferedBytes + 2 * 100_200)
      expect((yield* PubSub.stats(hub)).dropped).toBeGreaterThan(0)

      ;(v.ws as unknown as { _socket: { resume(): void } })._socket.resume()
      yield* untilReceived("LAST")
      const fatReceived = v.messages.filter((m) => m.subscriptionId === id && m.json.code === "FAT").length
      expect(fatReceived).toBeGreaterThan(0)
      expect(fatReceived).toBeLessThan(300)
      expect(v.closed).toBeUndefined()
    })))

  it.live("a client slower than its buffer is disconnected with 1008 under the disconnect policy", () =>
    Effect.scoped(Effect.gen(function*() {
      // A zero-byte buffer: the first broadcast finds it full.
      const { animate, endpoint, url } = yield* setup({ maxBufferedBytes: 0, overflow: "disconnect" })
      const v = yield* viewer(url, "foxglove.websocket.v1")
      yield* until(() => v.serverInfo.length === 1, "serverInfo")
      yield* animate("arm-1")
      yield* until(() => v.closed !== undefined, "the close")
      expect(v.closed!.code).toBe(1008)
      yield* TestKit.awaitUntil(
        Effect.map(DynamicSupervisor.countChildren(endpoint.supervisor), (c) => c.active === 0).pipe(Effect.orDie),
        { waitedFor: "no connection actor left" }
      )
    })))
})
