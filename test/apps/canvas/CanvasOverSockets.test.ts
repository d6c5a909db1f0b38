import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import * as Stream from "effect/Stream"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import * as Actor from "../../../src/actors/Actor.js"
import type { ActorRef } from "../../../src/actors/ActorRef.js"
import * as ExitReason from "../../../src/actors/ExitReason.js"
import * as TestKit from "../../../src/actors/TestKit.js"
import { Canvas } from "../../../src/apps/canvas/Canvas.js"
import * as CanvasHandlers from "../../../src/apps/canvas/CanvasHandlers.js"
import * as CanvasStream from "../../../src/apps/canvas/CanvasStream.js"
import { type CanvasEvent, CanvasRpcs, unpackPixels } from "../../../src/protocol/CanvasRpcs.js"
import * as RpcBridge from "../../../src/protocol/RpcBridge.js"
import { connect } from "../../protocol/support/TestClients.js"
import * as TestGateway from "../../protocol/support/TestGateway.js"
import { canvasLayer, tempDirectory } from "./support.js"

/** The canvas behind the stand-in gateway, on a fresh file. */
const server = Effect.map(tempDirectory, (dir) =>
  TestGateway.layer().pipe(
    Layer.provideMerge(RpcBridge.layer(CanvasRpcs, { disableTracing: true })),
    Layer.provide(CanvasHandlers.layer),
    Layer.provideMerge(canvasLayer(path.join(dir, "canvas.db")))
  ))

const withServer = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.flatMap(server, (layer) => Effect.provide(body, layer))

describe("Canvas over real sockets", () => {
  it.scopedLive("a pixel placed by one client reaches the other, and a later joiner's snapshot has it", () =>
    withServer(Effect.gen(function*() {
      const painter = yield* connect("msgpack")
      const watcher = yield* connect("json")
      const received = yield* Queue.unbounded<CanvasEvent>()
      yield* watcher.rpc.CanvasJoin().pipe(Stream.runForEach((event) => Queue.offer(received, event)), Effect.fork)
      const snapshot = yield* Queue.take(received)
      expect(snapshot).toMatchObject({ _tag: "Snapshot", width: 8, height: 4, seq: 0 })

      const placed = yield* painter.rpc.CanvasPlace({ x: 3, y: 1, color: 2 })
      expect(placed.seq).toBe(1)
      const updates = yield* Queue.take(received)
      expect(updates._tag).toBe("Updates")
      expect(updates.seq).toBe(1)
      expect(unpackPixels((updates as { pixels: Uint8Array }).pixels)).toEqual([{ x: 3, y: 1, color: 2 }])

      expect(yield* Effect.flip(painter.rpc.CanvasPlace({ x: 4, y: 1, color: 2 }))).toMatchObject({ _tag: "Cooldown" })
      expect(yield* Effect.flip(watcher.rpc.CanvasPlace({ x: 9, y: 1, color: 2 }))).toMatchObject({ _tag: "OutOfBounds" })

      const late = yield* connect("msgpack")
      const first = yield* late.rpc.CanvasJoin().pipe(Stream.runHead)
      expect(first._tag === "Some" && first.value._tag === "Snapshot" && first.value.pixels[1 * 8 + 3]).toBe(2)
      expect(first._tag === "Some" && first.value.seq).toBe(1)
    })))

  it.scopedLive("cancelling a join ends its subscription on the server", () =>
    withServer(Effect.gen(function*() {
      const canvas = yield* Canvas
      const client = yield* connect("msgpack")
      const joined = yield* client.rpc.CanvasJoin().pipe(Stream.runDrain, Effect.fork)
      const subscribers = Effect.sync(() => canvas.hub.topics.get("canvas")?.length ?? 0)
      yield* TestKit.awaitUntil(Effect.map(subscribers, (n) => n === 1))
      yield* Fiber.interrupt(joined)
      yield* TestKit.awaitUntil(Effect.map(subscribers, (n) => n === 0))
    })))

  it.scopedLive("serves Server-Sent Events over HTTP: the snapshot, then updates", () =>
    withServer(Effect.gen(function*() {
      const canvas = yield* Canvas
      const runtime = yield* Effect.runtime<Canvas>()
      const httpServer = yield* Effect.acquireRelease(
        Effect.async<http.Server>((resume) => {
          const httpServer = http.createServer((_, response) => {
            response.writeHead(200, CanvasStream.headers)
            const fiber = Runtime.runFork(runtime)(
              Stream.runForEach(CanvasStream.serverSentEvents, (chunk) => Effect.sync(() => response.write(chunk)))
            )
            response.once("close", () => Runtime.runFork(runtime)(Fiber.interrupt(fiber)))
          })
          httpServer.listen(0, "127.0.0.1", () => resume(Effect.succeed(httpServer)))
        }),
        (httpServer) => Effect.async<void>((resume) => {
          httpServer.closeAllConnections()
          httpServer.close(() => resume(Effect.void))
        })
      )
      const { port } = httpServer.address() as AddressInfo
      const controller = new AbortController()
      yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
      const response = yield* Effect.promise(() =>
        fetch(`http://127.0.0.1:${port}/canvas/stream`, { signal: controller.signal })
      )
      expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8")
      const reader = response.body!.getReader()
      const decoder = new TextDecoder()
      let text = ""
      const nextEvent = Effect.promise(async () => {
        while (!text.includes("\n\n")) {
          const { done, value } = await reader.read()
          if (done) throw new Error("the stream ended")
          text += decoder.decode(value, { stream: true })
        }
        const end = text.indexOf("\n\n")
        const event = text.slice(0, end)
        text = text.slice(end + 2)
        return Object.fromEntries(event.split("\n").map((line) => {
          const colon = line.indexOf(": ")
          return [line.slice(0, colon), line.slice(colon + 2)]
        }))
      })

      const snapshot = yield* nextEvent
      expect(snapshot.event).toBe("snapshot")
      expect(snapshot.id).toBe("0")
      expect(JSON.parse(snapshot.data)).toMatchObject({ _tag: "Snapshot", width: 8, height: 4, seq: 0 })

      yield* canvas.place("ada", 7, 3, 1)
      const updates = yield* nextEvent
      expect(updates.event).toBe("updates")
      expect(updates.id).toBe("1")
      const data = JSON.parse(updates.data)
      expect(unpackPixels(Buffer.from(data.pixels, "base64"))).toEqual([{ x: 7, y: 3, color: 1 }])
    })))
})

describe("Canvas over real sockets, each with its Caller (its session's actor and backlog)", () => {
  it.scopedLive("a session over its backlog is stopped by the policy and its join fails with Unavailable", () =>
    Effect.gen(function*() {
      const dir = yield* tempDirectory
      const backlogs = new Map<number, number>()
      const owners = new Map<number, ActorRef<never>>()
      const system = yield* TestKit.system()
      const session = Actor.make<never, void>({ name: "session", receive: () => undefined })
      // Each accepted socket is owned by a session actor of its own, as the gateway's are.
      const callerOf = (index: number) => {
        const owner = Effect.runSync(Effect.orDie(system.spawn(session, { name: `session:${index}` })))
        owners.set(index, owner)
        return {
          session: String(index),
          owner,
          user: `user-${index}`,
          roles: undefined,
          expiresAt: undefined,
          address: "127.0.0.1",
          backlog: () => backlogs.get(index) ?? 0
        }
      }
      const layer = TestGateway.layer(undefined, { callerOf }).pipe(
        Layer.provideMerge(RpcBridge.layer(CanvasRpcs, { disableTracing: true })),
        Layer.provide(CanvasHandlers.layer),
        Layer.provideMerge(canvasLayer(path.join(dir, "canvas.db")))
      )
      yield* Effect.gen(function*() {
        const canvas = yield* Canvas
        const slow = yield* connect("msgpack")
        const fast = yield* connect("json")
        const slowEvents = yield* slow.rpc.CanvasJoin().pipe(Stream.runCollect, Effect.either, Effect.fork)
        const fastEvents = yield* fast.rpc.CanvasJoin().pipe(Stream.take(2), Stream.runCollect, Effect.fork)
        yield* TestKit.awaitUntil(Effect.sync(() => owners.size === 2 && canvas.hub.topics.get("canvas")?.length === 2))
        const slowId = Math.min(...owners.keys())
        backlogs.set(slowId, 100 * 1024 * 1024)

        yield* canvas.place("ada", 1, 1, 1)
        const ended = yield* Fiber.join(slowEvents)
        expect(ended._tag).toBe("Left")
        expect(ended._tag === "Left" && ended.left).toMatchObject({ _tag: "Unavailable" })
        expect(ExitReason.format(owners.get(slowId)!.exitReason()!)).toMatch(/^shutdown\(slow consumer/)
        expect(Chunk.toReadonlyArray(yield* Fiber.join(fastEvents)).map((event) => event._tag)).toEqual([
          "Snapshot",
          "Updates"
        ])
      }).pipe(Effect.provide(layer))
    }))
})
