import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import { CanvasJoin, type CanvasEvent, packPixels, Updates } from "../../src/protocol/CanvasRpcs.js"
import * as CloseCode from "../../src/protocol/CloseCode.js"
import * as SharedFrame from "../../src/protocol/SharedFrame.js"
import * as Subprotocol from "../../src/protocol/Subprotocol.js"
import * as WireCodec from "../../src/protocol/WireCodec.js"
import { connect, type RawSocket, rawSocket } from "./support/TestClients.js"
import { TestGateway } from "./support/TestGateway.js"
import * as TestServer from "./support/TestServer.js"

const updates = Updates.make({ seq: 8, pixels: packPixels([{ x: 3, y: 1, color: 1 }]) })

const sendMessage = (socket: RawSocket, wire: Subprotocol.WireFormat, message: unknown) =>
  Effect.sync(() => socket.socket.send(WireCodec.of(wire).encode(message)))

const nextMessage = (socket: RawSocket, wire: Subprotocol.WireFormat) =>
  Effect.map(Queue.take(socket.received), (frame) => WireCodec.of(wire).decode(frame)[0] as Record<string, any>)

const openRaw = (subprotocol: Subprotocol.Subprotocol) =>
  Effect.flatMap(TestGateway, ({ url }) => rawSocket(url, [subprotocol.name]))

describe("RpcBridge", () => {
  for (const wire of ["json", "msgpack"] as const) {
    it.scoped(`answers requests and typed errors over ${wire}`, () =>
      Effect.gen(function*() {
        const client = yield* connect(wire)
        expect(yield* client.rpc.Hello({ app: "test", version: "1" })).toEqual({
          serverVersion: "test",
          protocolVersion: 1,
          features: ["canvas", "fleet"],
          node: "node-a"
        })
        yield* client.rpc.Ping()
        const placed = yield* client.rpc.CanvasPlace({ x: 1, y: 1, color: 1 })
        expect(placed.seq).toBe(8)
        expect(DateTime.toEpochMillis(placed.cooldownUntil)).toBe(1_700_000_005_000)
        expect(yield* Effect.flip(client.rpc.CanvasPlace({ x: 1, y: 1, color: 9 }))).toMatchObject({ _tag: "InvalidColor" })
        expect(yield* Effect.flip(client.rpc.FleetAcquire({ robot: "arm-1" }))).toMatchObject({
          _tag: "ControlHeld",
          robot: "arm-1",
          holder: "session-9"
        })
        yield* client.rpc.FleetCommand({ robot: "agv-1", command: { _tag: "SendOrder", nodes: [{ nodeId: "n1", x: 1, y: 2, mapId: "hall" }] } })
        const hub = yield* TestServer.TestHub
        expect(hub.calls.find((call) => call.tag === "FleetCommand")?.payload).toEqual({
          robot: "agv-1",
          command: { _tag: "SendOrder", nodes: [{ nodeId: "n1", x: 1, y: 2, mapId: "hall" }] }
        })
      }).pipe(Effect.provide(TestServer.layer())))
  }

  it.scoped("gives handlers the gateway's headers, which a client cannot override", () =>
    Effect.gen(function*() {
      const socket = yield* openRaw(Subprotocol.v1Json)
      yield* sendMessage(socket, "json", {
        _tag: "Request",
        id: "1",
        tag: "Hello",
        payload: { app: "raw", version: "1" },
        headers: [["x-remote-address", "10.0.0.66"], ["x-client", "raw"]]
      })
      expect(yield* nextMessage(socket, "json")).toMatchObject({ _tag: "Exit", requestId: "1", exit: { _tag: "Success" } })
      const { headers } = (yield* TestServer.TestHub).calls.find((call) => call.tag === "Hello")!
      expect(headers["x-remote-address"]).toBe("127.0.0.1")
      expect(headers["x-client"]).toBe("raw")
    }).pipe(Effect.provide(TestServer.layer())))

  it.scoped("streams the snapshot, then what the application publishes, until the client cancels", () =>
    Effect.gen(function*() {
      const hub = yield* TestServer.TestHub
      const client = yield* connect("msgpack")
      const received = yield* Queue.unbounded<CanvasEvent>()
      const subscription = yield* client.rpc.CanvasJoin().pipe(
        Stream.runForEach((event) => Queue.offer(received, event)),
        Effect.fork
      )
      expect(yield* Queue.take(received)).toEqual(TestServer.board)
      yield* hub.canvas.awaitSubscribers(1)
      hub.canvas.publish(SharedFrame.encodeOnce(CanvasJoin, [updates]))
      expect(yield* Queue.take(received)).toEqual(updates)

      yield* Fiber.interrupt(subscription)
      yield* hub.canvas.awaitSubscribers(0)
    }).pipe(Effect.provide(TestServer.layer())))

  it.scoped("fans one encoded frame out to every subscriber, in both wire formats", () =>
    Effect.gen(function*() {
      const hub = yield* TestServer.TestHub
      const clients = yield* Effect.forEach(["json", "json", "json", "msgpack", "msgpack", "msgpack"] as const, connect)
      const subscriptions = yield* Effect.forEach(clients, (client) =>
        client.rpc.CanvasJoin().pipe(Stream.take(2), Stream.runCollect, Effect.fork))
      yield* hub.canvas.awaitSubscribers(clients.length)

      expect(hub.canvas.publish(SharedFrame.encodeOnce(CanvasJoin, [updates]))).toBe(clients.length)

      for (const events of yield* Effect.forEach(subscriptions, Fiber.join)) {
        expect(Chunk.toReadonlyArray(events)).toEqual([TestServer.board, updates])
      }
      yield* hub.canvas.awaitSubscribers(0)
    }).pipe(Effect.provide(TestServer.layer())))

  it.scoped("refuses an unsupported version with a close reason that tells the page to reload", () =>
    Effect.gen(function*() {
      const { url } = yield* TestGateway
      for (const offered of [["fleetvisor.v0.json"], ["fleetvisor.v2.msgpack", "chat"], []]) {
        const socket = yield* rawSocket(url, offered)
        expect(socket.protocol).toBe(offered[0] ?? "")
        const closed = yield* Deferred.await(socket.closed)
        expect(closed.code).toBe(CloseCode.VersionRefused)
        expect(closed.reason).toBe("Unsupported fleetvisor protocol version (this server speaks v1). Reload the page.")
      }
    }).pipe(Effect.provide(TestServer.layer())))

  describe("bad input", () => {
    const closesWith = (subprotocol: Subprotocol.Subprotocol, frame: string | Uint8Array, code: number) =>
      Effect.gen(function*() {
        const socket = yield* openRaw(subprotocol)
        socket.socket.send(frame)
        const closed = yield* Deferred.await(socket.closed)
        expect(closed.code).toBe(code)
        return closed.reason
      })

    it.scoped("closes with 1003 on a frame of the wrong kind", () =>
      Effect.gen(function*() {
        expect(yield* closesWith(Subprotocol.v1Json, new Uint8Array([1, 2, 3]), CloseCode.UnsupportedData)).toMatch(
          /^Binary frame on a JSON connection/
        )
        expect(yield* closesWith(Subprotocol.v1MsgPack, "{}", CloseCode.UnsupportedData)).toMatch(
          /^Text frame on a MessagePack connection/
        )
        expect((yield* TestServer.TestHub).rejections.map((rejection) => rejection._tag)).toEqual([
          "WrongFrameType",
          "WrongFrameType"
        ])
      }).pipe(Effect.provide(TestServer.layer())))

    it.scoped("closes with 1007 on bytes that do not decode, and no other session notices", () =>
      Effect.gen(function*() {
        const hub = yield* TestServer.TestHub
        const bystander = yield* connect("json")
        const watching = yield* bystander.rpc.CanvasJoin().pipe(Stream.take(2), Stream.runCollect, Effect.fork)
        yield* hub.canvas.awaitSubscribers(1)

        expect(yield* closesWith(Subprotocol.v1Json, "{\"_tag\": \"Requ", CloseCode.InvalidPayload)).toMatch(
          /^Frame does not decode/
        )
        // a MessagePack array header announcing three items, with one
        yield* closesWith(Subprotocol.v1MsgPack, new Uint8Array([0x93, 0x01]), CloseCode.InvalidPayload)
        expect(hub.rejections.map((rejection) => rejection._tag)).toEqual(["Undecodable", "Undecodable"])

        hub.canvas.publish(SharedFrame.encodeOnce(CanvasJoin, [updates]))
        expect(Chunk.toReadonlyArray(yield* Fiber.join(watching))).toEqual([TestServer.board, updates])
      }).pipe(Effect.provide(TestServer.layer())))

    it.scoped("closes with 1007 on a frame that is not an RPC message", () =>
      Effect.gen(function*() {
        yield* closesWith(Subprotocol.v1Json, "{\"hello\":\"world\"}", CloseCode.InvalidPayload)
        yield* closesWith(Subprotocol.v1Json, "{\"_tag\":\"Request\",\"id\":\"x1\",\"tag\":\"Ping\",\"headers\":[]}", CloseCode.InvalidPayload)
        yield* closesWith(
          Subprotocol.v1MsgPack,
          WireCodec.msgpack.encode({ _tag: "Shout", requestId: "1" }) as Uint8Array,
          CloseCode.InvalidPayload
        )
        expect((yield* TestServer.TestHub).rejections.map((rejection) => rejection._tag)).toEqual([
          "MalformedMessage",
          "MalformedMessage",
          "MalformedMessage"
        ])
      }).pipe(Effect.provide(TestServer.layer())))

    for (const wire of ["json", "msgpack"] as const) {
      it.scoped(`fails only the request of an unknown RPC (${wire})`, () =>
        Effect.gen(function*() {
          const socket = yield* openRaw(Subprotocol.current(wire))
          yield* sendMessage(socket, wire, { _tag: "Request", id: "3", tag: "Teleport", payload: {}, headers: [] })
          expect(yield* nextMessage(socket, wire)).toEqual({
            _tag: "Exit",
            requestId: "3",
            exit: { _tag: "Failure", cause: { _tag: "Die", defect: "Unknown RPC: Teleport" } }
          })
          yield* sendMessage(socket, wire, { _tag: "Ping" })
          expect(yield* nextMessage(socket, wire)).toEqual({ _tag: "Pong" })
          expect((yield* TestServer.TestHub).rejections).toEqual([{ _tag: "UnknownRpc", tag: "Teleport", requestId: "3" }])
        }).pipe(Effect.provide(TestServer.layer())))

      it.scoped(`fails only the request whose payload does not match its schema (${wire})`, () =>
        Effect.gen(function*() {
          const socket = yield* openRaw(Subprotocol.current(wire))
          yield* sendMessage(socket, wire, { _tag: "Request", id: "4", tag: "CanvasPlace", payload: { x: "1" }, headers: [] })
          const answer = yield* nextMessage(socket, wire)
          expect(answer).toMatchObject({ _tag: "Exit", requestId: "4", exit: { _tag: "Failure", cause: { _tag: "Die" } } })
          expect(answer.exit.cause.defect).toMatch(/Expected number, actual "1"/)
          yield* sendMessage(socket, wire, { _tag: "Request", id: "5", tag: "Ping", payload: undefined, headers: [] })
          expect(yield* nextMessage(socket, wire)).toMatchObject({ _tag: "Exit", requestId: "5", exit: { _tag: "Success" } })
          expect((yield* TestServer.TestHub).rejections).toMatchObject([{ _tag: "InvalidPayload", tag: "CanvasPlace", requestId: "4" }])
        }).pipe(Effect.provide(TestServer.layer())))
    }
  })
})
