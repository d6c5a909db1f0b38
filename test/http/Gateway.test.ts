import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Exit from "effect/Exit"
import * as http from "node:http"
import { WebSocket } from "ws"
import * as Registry from "../../src/actors/Registry.js"
import * as TestKit from "../../src/actors/TestKit.js"
import type * as Main from "../../src/main.js"
import * as CloseCode from "../../src/protocol/CloseCode.js"
import * as Subprotocol from "../../src/protocol/Subprotocol.js"
import * as WireCodec from "../../src/protocol/WireCodec.js"
import { rawSocket } from "../protocol/support/TestClients.js"
import * as TestService from "./support/TestService.js"
import * as Ports from "../support/Ports.js"

/** The gateway's subtree, rendered. */
const gatewayTree = (service: Main.Service) => TestKit.renderTree(service.system, { under: "gateway" })

const awaitGateway = (service: Main.Service, expected: string) =>
  TestKit.awaitTree(service.system, expected, { under: "gateway" })

const registered = (service: Main.Service) => Registry.all(service.registries.sessions).map((entry) => entry.key)

const raw = (service: Main.Service, protocols: ReadonlyArray<string> = [Subprotocol.v1Json.name]) =>
  rawSocket(TestService.wsUrl(service), protocols)

const hello = (id: string) =>
  WireCodec.json.encode({ _tag: "Request", id, tag: "Hello", payload: { app: "raw", version: "1" }, headers: [] }) as string

/** An upgrade request answered with a plain HTTP status (no WebSocket). */
const upgradeStatus = (service: Main.Service, headers: Record<string, string> = {}) =>
  Effect.async<number>((resume) => {
    const request = http.request(`${service.url}/ws`, {
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-protocol": Subprotocol.v1Json.name,
        ...headers
      }
    })
    request.on("response", (response) => {
      response.resume()
      resume(Effect.succeed(response.statusCode ?? 0))
    })
    request.on("upgrade", (_, socket) => {
      socket.destroy()
      resume(Effect.succeed(101))
    })
    request.on("error", () => resume(Effect.succeed(-1)))
    request.end()
  })

const metric = (service: Main.Service, line: string) =>
  Effect.map(service.metrics.text, (text) => text.split("\n").find((l) => l.startsWith(line + " "))?.split(" ")[1])

/** A port nothing listens on now, for a service that must bind the same port again after a restart. */
const freePort = Effect.promise(Ports.freePort)

describe("gateway sessions", () => {
  it.scopedLive("a WebSocket is a session actor under gateway/sessions, gone after a clean close", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start()
      yield* awaitGateway(service, `
        gateway (rest_for_one)
        ├─ listener running mailbox=0 restarts=0
        ├─ sessions (dynamic, 0/20000)
        └─ streams (dynamic, 0/1000)`)
      const scope = yield* Scope.make()
      const client = yield* Scope.extend(TestService.connect(service, "json"), scope)
      const reply = yield* client.rpc.Hello({ app: "test", version: "1" })
      expect(reply).toMatchObject({ protocolVersion: 1, features: ["canvas"] })
      yield* awaitGateway(service, `
        gateway (rest_for_one)
        ├─ listener running mailbox=0 restarts=0
        ├─ sessions (dynamic, 1/20000)
        │  └─ session:1 running mailbox=0 restarts=0
        └─ streams (dynamic, 0/1000)`)
      expect(registered(service)).toEqual(["session:1"])
      expect(yield* metric(service, "fleetvisor_sessions")).toBe("1")

      yield* Scope.close(scope, Exit.void)
      yield* awaitGateway(service, `
        gateway (rest_for_one)
        ├─ listener running mailbox=0 restarts=0
        ├─ sessions (dynamic, 0/20000)
        └─ streams (dynamic, 0/1000)`)
      expect(registered(service)).toEqual([])
      expect(yield* metric(service, "fleetvisor_sessions")).toBe("0")
      expect(yield* metric(service, "fleetvisor_sessions_ended_total{reason=\"closed\"}")).toBe("1")
    }))

  it.scopedLive("a socket cut without a close frame (terminate) ends its session", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start()
      const socket = yield* raw(service)
      yield* TestKit.awaitUntil(Effect.sync(() => registered(service).length === 1))
      socket.socket.terminate()
      yield* TestKit.awaitUntil(Effect.sync(() => registered(service).length === 0), { describe: gatewayTree(service) })
      yield* awaitGateway(service, `
        gateway (rest_for_one)
        ├─ listener running mailbox=0 restarts=0
        ├─ sessions (dynamic, 0/20000)
        └─ streams (dynamic, 0/1000)`)
    }))

  it.scopedLive("a crash injected into a session closes its socket with 1011 and leaves nothing behind", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start()
      const victim = yield* raw(service)
      const bystander = yield* raw(service)
      yield* awaitGateway(service, `
        gateway (rest_for_one)
        ├─ listener running mailbox=0 restarts=0
        ├─ sessions (dynamic, 2/20000)
        │  ├─ session:1 running mailbox=0 restarts=0
        │  └─ session:2 running mailbox=0 restarts=0
        └─ streams (dynamic, 0/1000)`)
      yield* TestKit.crashChild(service.system, "session:1", "injected")
      expect((yield* Deferred.await(victim.closed)).code).toBe(CloseCode.InternalError)
      yield* awaitGateway(service, `
        gateway (rest_for_one)
        ├─ listener running mailbox=0 restarts=0
        ├─ sessions (dynamic, 1/20000)
        │  └─ session:2 running mailbox=0 restarts=0
        └─ streams (dynamic, 0/1000)`)
      expect(registered(service)).toEqual(["session:2"])
      bystander.socket.send(hello("1"))
      expect(WireCodec.json.decode(yield* Queue.take(bystander.received))[0]).toMatchObject({
        _tag: "Exit",
        requestId: "1",
        exit: { _tag: "Success" }
      })
    }))

  it.scopedLive("over MAX_CONNECTIONS the upgrade is refused with HTTP 503", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start({ MAX_CONNECTIONS: "2" })
      yield* raw(service)
      yield* raw(service)
      expect(yield* upgradeStatus(service)).toBe(503)
      expect(yield* metric(service, "fleetvisor_ws_upgrades_refused_total{reason=\"capacity\"}")).toBe("1")
      yield* awaitGateway(service, `
        gateway (rest_for_one)
        ├─ listener running mailbox=0 restarts=0
        ├─ sessions (dynamic, 2/2)
        │  ├─ session:1 running mailbox=0 restarts=0
        │  └─ session:2 running mailbox=0 restarts=0
        └─ streams (dynamic, 0/1000)`)
    }))

  it.scopedLive("over MAX_CONNECTIONS_PER_ADDRESS one address is refused with 429; a session leaving makes room", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start({ MAX_CONNECTIONS_PER_ADDRESS: "2" })
      const first = yield* raw(service)
      yield* raw(service)
      expect(yield* upgradeStatus(service)).toBe(429)
      expect(yield* metric(service, "fleetvisor_ws_upgrades_refused_total{reason=\"address\"}")).toBe("1")
      expect(Registry.unsafeLookup(service.registries.byAddress, "127.0.0.1").length).toBe(2)
      first.socket.terminate()
      yield* TestKit.awaitUntil(Effect.sync(() => Registry.unsafeLookup(service.registries.byAddress, "127.0.0.1").length === 1))
      yield* raw(service)
      expect(Registry.all(service.registries.byAddress).length).toBe(2)
    }))

  it.scopedLive("an unsupported protocol version is closed with a reason that says to reload", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start()
      const socket = yield* raw(service, ["fleetvisor.v9.json"])
      const closed = yield* Deferred.await(socket.closed)
      expect(closed.code).toBe(CloseCode.VersionRefused)
      expect(closed.reason).toMatch(/Reload the page/)
      expect(registered(service)).toEqual([])
    }))

  it.scopedLive("a page of a foreign origin is refused with 403; the server's own and listed origins are not", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start({ ALLOWED_ORIGINS: "https://ops.example.com" })
      const host = new URL(service.url).host
      expect(yield* upgradeStatus(service, { origin: "https://evil.example.com" })).toBe(403)
      expect(yield* upgradeStatus(service, { origin: "https://ops.example.com" })).toBe(101)
      expect(yield* upgradeStatus(service, { origin: `http://${host}` })).toBe(101)
    }))

  it.scopedLive("an oversized frame closes that session with 1009, counted, and another session is not disturbed", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start({ MAX_FRAME_BYTES: "1024" })
      const big = yield* raw(service)
      const other = yield* raw(service)
      big.socket.send("x".repeat(2048))
      expect((yield* Deferred.await(big.closed)).code).toBe(CloseCode.MessageTooBig)
      other.socket.send(hello("7"))
      expect(WireCodec.json.decode(yield* Queue.take(other.received))[0]).toMatchObject({ requestId: "7" })
      expect(yield* metric(service, "fleetvisor_ws_frames_rejected_total{reason=\"too_big\"}")).toBe("1")
      yield* TestKit.awaitUntil(Effect.sync(() => registered(service).length === 1))
    }))

  it.scopedLive("undecodable bytes close that session with 1007 and are counted", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start()
      const socket = yield* raw(service)
      socket.socket.send("{not json")
      expect((yield* Deferred.await(socket.closed)).code).toBe(CloseCode.InvalidPayload)
      expect(yield* metric(service, "fleetvisor_ws_frames_rejected_total{reason=\"undecodable\"}")).toBe("1")
    }))

  it.scopedLive("a flood is throttled first, then closed with 1008; another session keeps being served", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start({ RATE_LIMIT_PER_SECOND: "20", RATE_LIMIT_BURST: "10" })
      const polite = yield* raw(service)
      const flooder = yield* raw(service)
      // Within the burst plus a little: throttled (delayed), every request still answered.
      for (let i = 1; i <= 14; i++) flooder.socket.send(hello(String(i)))
      const answered = new Set<string>()
      while (answered.size < 14) {
        const [message] = WireCodec.json.decode(yield* Queue.take(flooder.received)) as Array<{ requestId: string }>
        answered.add(message.requestId)
      }
      expect(Number(yield* metric(service, "fleetvisor_ws_frames_rejected_total{reason=\"throttled\"}"))).toBeGreaterThan(0)
      // Far beyond it: closed.
      for (let i = 100; i < 400; i++) flooder.socket.send(hello(String(i)))
      const closed = yield* Deferred.await(flooder.closed)
      expect(closed.code).toBe(CloseCode.PolicyViolation)
      expect(closed.reason).toMatch(/Too many requests/)
      polite.socket.send(hello("1"))
      expect(WireCodec.json.decode(yield* Queue.take(polite.received))[0]).toMatchObject({ requestId: "1" })
      expect(yield* metric(service, "fleetvisor_ws_frames_rejected_total{reason=\"flood\"}")).toBe("1")
      yield* TestKit.awaitUntil(Effect.sync(() => registered(service).length === 1))
    }))

  it.scopedLive("a client that stops answering pings is stopped by the heartbeat", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start({ HEARTBEAT_INTERVAL: "100 millis", HEARTBEAT_TIMEOUT: "200 millis" })
      const answering = yield* raw(service)
      const mute = yield* Effect.acquireRelease(
        Effect.async<WebSocket>((resume) => {
          const socket = new WebSocket(TestService.wsUrl(service), [Subprotocol.v1Json.name], { autoPong: false })
          socket.once("open", () => resume(Effect.succeed(socket)))
        }),
        (socket) => Effect.sync(() => socket.terminate())
      )
      const closed = yield* Effect.async<number>((resume) => {
        mute.once("close", (code) => resume(Effect.succeed(code)))
      })
      expect(closed).toBe(1006)
      expect(yield* metric(service, "fleetvisor_sessions_ended_total{reason=\"heartbeat\"}")).toBe("1")
      yield* TestKit.awaitUntil(Effect.sync(() => registered(service).length === 1))
      expect(registered(service)).toEqual(["session:1"])
      expect(answering.socket.readyState).toBe(WebSocket.OPEN)
    }))

  it.scopedLive("fleet RPCs answer from an empty fleet; with CANVAS=off canvas RPCs are unavailable", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start({ CANVAS: "off" })
      const client = yield* TestService.connect(service)
      expect((yield* client.rpc.Hello({ app: "test", version: "1" })).features).toEqual([])
      expect(yield* Effect.flip(client.rpc.FleetAcquire({ robot: "agv-1" }))).toMatchObject({ _tag: "UnknownRobot" })
      yield* client.rpc.FleetEmergencyStop({})
      expect(yield* Effect.flip(client.rpc.CanvasPlace({ x: 1, y: 1, color: 1 }))).toMatchObject({ _tag: "Unavailable" })
      const now = Date.now()
      const { now: serverNow } = yield* client.rpc.ServerTime()
      expect(Math.abs(serverNow.epochMillis - now)).toBeLessThan(5_000)
    }))

  it.scopedLive("a crashed listener is restarted with the sessions after it (rest_for_one); clients reconnect", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const service = yield* TestService.start({ PORT: String(port) })
      const client = yield* TestService.connect(service)
      yield* client.rpc.Ping()
      yield* TestKit.crashChild(service.system, "listener", "injected")
      yield* awaitGateway(service, `
        gateway (rest_for_one)
        ├─ listener running mailbox=0 restarts=1
        ├─ sessions (dynamic, 1/20000) restarts=1
        │  └─ session:2 running mailbox=0 restarts=0
        └─ streams (dynamic, 0/1000) restarts=1`)
      // session:2 is the client's new connection to the restarted listener; its calls get through
      // once its side of the socket is open too.
      yield* client.rpc.Ping().pipe(Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("3 seconds"))))
      expect(yield* metric(service, "fleetvisor_actor_restarts_total{child=\"listener\"}")).toBe("1")
      expect(yield* metric(service, "fleetvisor_actor_restarts_total{child=\"sessions\"}")).toBe("1")
    }))
})
