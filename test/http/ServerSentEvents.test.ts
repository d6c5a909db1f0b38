/**
 * The event-stream writer of `/admin/actors/stream` (drop to latest) and the bounds the listener
 * puts on every event stream (how many, how many per address, cut off when stalled), over real
 * sockets with a client that reads nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as http from "node:http"
import * as net from "node:net"
import * as TestKit from "../../src/actors/TestKit.js"
import * as ServerSentEvents from "../../src/http/ServerSentEvents.js"

/** A server whose every request is handed to `handle`; closed with the scope. */
const serve = (handle: (request: http.IncomingMessage, response: http.ServerResponse) => void) =>
  Effect.acquireRelease(
    Effect.async<{ server: http.Server; port: number }>((resume) => {
      const server = http.createServer(handle)
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, port: (server.address() as net.AddressInfo).port })))
    }),
    ({ server }) => Effect.sync(() => {
      server.close()
      server.closeAllConnections()
    })
  )

/** A raw client that sends `GET path` and then reads nothing until told. */
const stalledClient = (port: number, path: string, localAddress = "127.0.0.1") =>
  Effect.acquireRelease(
    Effect.async<{ socket: net.Socket; received: () => string }>((resume) => {
      let text = ""
      const socket = net.connect({ port, host: "127.0.0.1", localAddress }, () => {
        socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
        socket.pause()
        resume(Effect.succeed({ socket, received: () => text }))
      })
      socket.setEncoding("latin1").on("data", (chunk: string) => (text += chunk))
      socket.on("error", () => {})
    }),
    ({ socket }) => Effect.sync(() => socket.destroy())
  )

describe("ServerSentEvents.open (drop to latest)", () => {
  it.scopedLive("while the socket is full it keeps only the latest event, and sends it once the client reads again", () =>
    Effect.gen(function*() {
      let stream: ServerSentEvents.EventStream | undefined
      let response: http.ServerResponse | undefined
      const { port } = yield* serve((_, res) => {
        response = res
        stream = ServerSentEvents.open(res)
      })
      const client = yield* stalledClient(port, "/admin/actors/stream")
      yield* TestKit.awaitUntil(Effect.sync(() => stream !== undefined), { waitedFor: "the stream" })
      const big = "x".repeat(256 * 1024)
      let sent = 0
      // 64 MB of events to a client that reads nothing: far beyond what the kernel absorbs.
      for (; sent < 256; sent++) {
        expect(stream!.send("tree", `${sent} ${big}`)).toBe(true)
        if (sent % 8 === 0) yield* TestKit.tick
      }
      expect(response!.writableNeedDrain).toBe(true)
      // At most one event beyond the socket's high-water mark is held.
      expect(response!.writableLength).toBeLessThan(response!.writableHighWaterMark + 2 * big.length)
      const last = `${sent - 1} `
      client.socket.resume()
      yield* TestKit.awaitUntil(Effect.sync(() => client.received().includes(`data: ${last}`)), {
        timeoutMillis: 10_000,
        waitedFor: "the latest event"
      })
      const received = [...client.received().matchAll(/data: (\d+) /g)].map((m) => Number(m[1]))
      expect(received.at(-1)).toBe(sent - 1)
      expect(received.length).toBeLessThan(sent)
      console.log(JSON.stringify({ test: "ServerSentEvents drop to latest", sent, delivered: received.length }))
    }), { timeout: 30_000 })
})

describe("ServerSentEvents.stallGuard", () => {
  // How many streams there are (MAX_SSE_STREAMS, per address) is the gateway's `streams`
  // supervisor's business: test/chaos/EdgeAttacks.test.ts and test/service/GatewayTree.test.ts.
  it.scopedLive("watches each stream until it closes, and cuts off a stalled one", () =>
    Effect.gen(function*() {
      const streams = ServerSentEvents.stallGuard(300)
      const responses: Array<http.ServerResponse> = []
      const { port } = yield* serve((_, response) => {
        streams.watch(response)
        responses.push(response)
        const stream = ServerSentEvents.open(response)
        // 1 MB events every 20 ms: the socket of a client that reads nothing fills in a moment.
        const big = "y".repeat(1024 * 1024)
        const timer = setInterval(() => stream.send("tree", big), 20)
        stream.onClose(() => clearInterval(timer))
      })
      const a1 = yield* stalledClient(port, "/", "127.0.0.1")
      // This one reads (and drops what it reads), so however slow the machine, it never stalls: it leaves.
      a1.socket.removeAllListeners("data").on("data", () => {}).resume()
      yield* stalledClient(port, "/", "127.0.0.1")
      yield* stalledClient(port, "/", "127.0.0.2")
      yield* TestKit.awaitUntil(Effect.sync(() => responses.length === 3), { waitedFor: "3 streams" })
      expect(streams.count()).toBe(3)
      const [left, ...stalled] = responses
      // The client leaves: its slot is free at once.
      a1.socket.destroy()
      yield* TestKit.awaitUntil(Effect.sync(() => streams.count() === 2), { waitedFor: "a slot free" })
      // The others read nothing: each is cut off once its socket stayed full for 300 ms.
      const started = Date.now()
      yield* TestKit.awaitUntil(Effect.sync(() => streams.count() === 0), { timeoutMillis: 5_000, waitedFor: "stalled streams cut off" })
      expect(Date.now() - started).toBeLessThan(3_000)
      expect(stalled.map(streams.endOf)).toEqual(["stalled", "stalled"])
      expect(streams.endOf(left)).toBe("closed")
    }), { timeout: 30_000 })
})
