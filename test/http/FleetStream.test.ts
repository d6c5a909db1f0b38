import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as http from "node:http"
import * as net from "node:net"
import * as Encoded from "../../src/actors/Encoded.js"
import * as PubSub from "../../src/actors/PubSub.js"
import * as TestKit from "../../src/actors/TestKit.js"
import * as FleetStream from "../../src/http/FleetStream.js"
import * as Route from "../../src/http/Route.js"
import * as ServerSentEvents from "../../src/http/ServerSentEvents.js"
import type { RobotView } from "../../src/protocol/FleetRpcs.js"
import * as FleetNode from "../service/support/FleetNode.js"

interface ServerEvent {
  readonly event: string
  readonly id: string
  readonly data: any
}

/** Splits an event-stream text into its events (comments skipped); returns the unfinished rest. */
const parse = (text: string): { events: Array<ServerEvent>; rest: string } => {
  const blocks = text.split("\n\n")
  const rest = blocks.pop()!
  const events: Array<ServerEvent> = []
  for (const block of blocks) {
    const fields = new Map<string, string>()
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue
      const colon = line.indexOf(":")
      fields.set(line.slice(0, colon), line.slice(colon + 1).trimStart())
    }
    if (fields.has("event")) events.push({ event: fields.get("event")!, id: fields.get("id")!, data: JSON.parse(fields.get("data")!) })
  }
  return { events, rest }
}

/**
 * A plain HTTP server serving `handle`, and a client that sends one request for `path` and then
 * does not read a byte; resolves with the server's response once the request arrived.
 */
const silentClient = (path: string, handle: (request: http.IncomingMessage, response: http.ServerResponse) => void) =>
  Effect.gen(function*() {
    const responses: Array<http.ServerResponse> = []
    const server = http.createServer((request, response) => {
      responses.push(response)
      handle(request, response)
    })
    yield* Effect.acquireRelease(
      Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
      () => Effect.sync(() => server.close())
    )
    const port = (server.address() as net.AddressInfo).port
    const socket = yield* Effect.acquireRelease(
      Effect.async<net.Socket>((resume) => {
        const socket = net.connect(port, "127.0.0.1", () => {
          socket.write(`GET ${path} HTTP/1.0\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
          resume(Effect.succeed(socket))
        })
      }),
      (socket) => Effect.sync(() => socket.destroy())
    )
    socket.pause()
    yield* TestKit.awaitUntil(Effect.sync(() => responses.length === 1), { waitedFor: "the request" })
    return { socket, response: responses[0] }
  })

/** An open event stream over real HTTP: its status, headers, the events so far; closed with the scope. */
const open = (url: string) =>
  Effect.acquireRelease(
    Effect.async<{ status: number; type: string; events: Array<ServerEvent>; request: http.ClientRequest }, Error>((resume) => {
      const request = http.get(url, (response) => {
        const events: Array<ServerEvent> = []
        let buffered = ""
        response.setEncoding("utf8").on("data", (chunk: string) => {
          const parsed = parse(buffered + chunk)
          buffered = parsed.rest
          events.push(...parsed.events)
        })
        resume(Effect.succeed({
          status: response.statusCode ?? 0,
          type: String(response.headers["content-type"]),
          events,
          request
        }))
      })
      request.once("error", (error) => resume(Effect.fail(error)))
    }),
    ({ request }) => Effect.sync(() => request.destroy())
  )

describe("the fleet's Server-Sent Events", () => {
  it.scopedLive("GET /stream: a snapshot of every robot first, then updates of the robots that changed", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 2 })
      const stream = yield* open(`${node.service.url}/stream`)
      expect(stream.status).toBe(200)
      expect(stream.type).toBe("text/event-stream; charset=utf-8")
      yield* TestKit.awaitUntil(Effect.sync(() => stream.events.length >= 4), { waitedFor: "a snapshot and 3 updates" })
      const [snapshot, ...updates] = stream.events
      expect(snapshot.event).toBe("snapshot")
      expect(snapshot.data.robots.map((r: RobotView) => r.id).sort()).toEqual([...node.arms, ...node.agvs].sort())
      expect(snapshot.id).toBe(String(snapshot.data.tick))
      expect(updates.every((u) => u.event === "update" && u.data.robots.length > 0)).toBe(true)
      const ticks = updates.map((u) => u.data.tick)
      expect(ticks[0]).toBeGreaterThan(snapshot.data.tick)
      expect(ticks).toEqual([...ticks].sort((a, b) => a - b))
    }), { timeout: 20_000 })

  it.scopedLive("GET /stream/{manufacturer}/{serial}: one AGV's snapshot, then its updates only; unknown robots are 404", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 2 })
      const [agv] = node.agvs
      const stream = yield* open(`${node.service.url}/stream/${agv}`)
      expect(stream.status).toBe(200)
      yield* TestKit.awaitUntil(Effect.sync(() => stream.events.length >= 3), { waitedFor: "a snapshot and 2 updates" })
      expect(stream.events[0].event).toBe("snapshot")
      expect(stream.events[0].data.robot).toMatchObject({ id: agv, kind: "agv" })
      expect(stream.events.slice(1).every((e) => e.event === "update" && e.data.robot.id === agv)).toBe(true)
      // The AGV drives: its pose changes between the events.
      yield* TestKit.awaitUntil(
        Effect.sync(() => new Set(stream.events.map((e) => JSON.stringify(e.data.robot.pose))).size > 1),
        { waitedFor: `${agv} to move` }
      )
      const arm = yield* open(`${node.service.url}/stream/${node.arms[0]}`)
      expect(arm.status).toBe(200)
      for (const path of ["/stream/fleetvisor/nobody", "/stream/", "/stream/a/b/c"]) {
        expect((yield* Effect.promise(() => fetch(`${node.service.url}${path}`))).status).toBe(404)
      }
    }), { timeout: 20_000 })

  it.scopedLive("a client that leaves takes its subscription with it", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 1 })
      const subscriptions = Effect.map(PubSub.stats(node.fleet.hub), (stats) => stats.subscriptions)
      const before = yield* subscriptions
      const request = yield* Effect.async<http.ClientRequest>((resume) => {
        const request = http.get(`${node.service.url}/stream`, () => resume(Effect.succeed(request)))
      })
      yield* TestKit.awaitUntil(Effect.map(subscriptions, (n) => n === before + 1), { waitedFor: "one more subscription" })
      request.destroy()
      yield* TestKit.awaitUntil(Effect.map(subscriptions, (n) => n === before), { waitedFor: "the subscription gone" })
    }), { timeout: 20_000 })
})

describe("backpressure of the fleet's event stream", () => {
  /** A fleet of `count` robots whose every update is about 12 kB. */
  const fakeFleet = (count: number) =>
    Effect.gen(function*() {
      const hub = yield* PubSub.make()
      let tick = 0
      const robots = (): Array<RobotView> =>
        Array.from({ length: count }, (_, i) => ({
          kind: "agv" as const,
          id: `m/r${i}`,
          status: "online" as const,
          alarms: [{ code: "NOISE", level: "warning" as const, message: "x".repeat(500) }],
          pose: { x: tick, y: i, theta: 0 }
        }))
      const source: FleetStream.FleetSource = {
        hub,
        viewsTopic: "views",
        state: Effect.sync(() => ({ tick, robots: robots() }))
      }
      const publish = Effect.suspend(() => {
        tick++
        return PubSub.broadcast(hub, "views", Encoded.make({ _tag: "FleetUpdate" as const, tick, robots: robots() }))
      })
      return { source, publish, tick: () => tick }
    })

  it.scopedLive("an update of /stream is encoded once for all its clients", () =>
    Effect.gen(function*() {
      const fleet = yield* fakeFleet(2)
      const routes = FleetStream.routes(fleet.source)
      const server = http.createServer((request, response) => {
        const url = new URL(request.url!, "http://localhost")
        void Route.find(routes, request.method!, url.pathname)!.handler(request, response, url)
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.sync(() => server.close())
      )
      const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/stream`
      const clients = [yield* open(url), yield* open(url), yield* open(url)]
      yield* TestKit.awaitUntil(Effect.sync(() => clients.every((c) => c.events.length === 1)), { waitedFor: "3 snapshots" })
      const update = Encoded.make({ _tag: "FleetUpdate" as const, tick: 1, robots: (yield* fleet.source.state).robots })
      yield* PubSub.broadcast(fleet.source.hub, "views", update)
      yield* TestKit.awaitUntil(Effect.sync(() => clients.every((c) => c.events.length === 2)), { waitedFor: "3 updates" })
      expect(clients.map((c) => c.events[1].data.tick)).toEqual([1, 1, 1])
      expect(update.computed).toBe(1)
    }), { timeout: 20_000 })

  it.scopedLive("a client that stops reading makes the server wait for drain, not buffer; it then catches up with a full view", () =>
    Effect.gen(function*() {
      const fleet = yield* fakeFleet(20)
      const routes = FleetStream.routes(fleet.source, { bufferSize: 8 })
      // A client that sends its request and then does not read a byte.
      const { response, socket } = yield* silentClient("/stream", (request, response) => {
        const url = new URL(request.url!, "http://localhost")
        void Route.find(routes, request.method!, url.pathname)!.handler(request, response, url)
      })

      // Publish until the socket is full and the server waits for it to drain…
      for (let i = 0; i < 20_000 && !response.writableNeedDrain; i++) {
        yield* fleet.publish
        yield* TestKit.tick
      }
      expect(response.writableNeedDrain).toBe(true)
      // …then publish 8 MB more: none of it piles up in the response.
      for (let i = 0; i < 700; i++) {
        yield* fleet.publish
        if (i % 10 === 0) yield* TestKit.tick
      }
      yield* TestKit.tick
      const eventBytes = FleetStream.event("update", fleet.tick(), { tick: fleet.tick(), robots: (yield* fleet.source.state).robots }).length
      expect(response.writableLength).toBeLessThan(response.writableHighWaterMark + 2 * eventBytes)

      // The client reads again: it gets every robot at the last tick, as one full view.
      let text = ""
      socket.setEncoding("utf8").on("data", (chunk: string) => (text += chunk))
      socket.resume()
      const last = fleet.tick()
      yield* TestKit.awaitUntil(Effect.sync(() => text.includes(`id: ${last}\n`)), {
        timeoutMillis: 8_000,
        waitedFor: `the event of tick ${last}`,
        describe: Effect.sync(() => `${text.length} chars, ids ${[...text.matchAll(/id: (\d+)/g)].map((m) => m[1]).slice(-5)}; needDrain ${response.writableNeedDrain} ${response.writableLength}`)
      })
      const body = text.slice(text.indexOf("\r\n\r\n") + 4)
      const events = parse(body).events
      expect(events[0].event).toBe("snapshot")
      const final = events.find((e) => e.id === String(last))!
      expect(final.event).toBe("update")
      expect(final.data.robots).toHaveLength(20)
      expect(final.data.robots.every((r: RobotView) => r.kind === "agv" && r.pose.x === last)).toBe(true)
      // Fewer events than ticks arrived: the slow client skipped, it was not queued for.
      expect(events.length).toBeLessThan(last)
    }), { timeout: 20_000 })

  it.scopedLive("a client that reads nothing at all is cut off once its socket stayed full for the stall timeout", () =>
    Effect.gen(function*() {
      const fleet = yield* fakeFleet(20)
      const routes = FleetStream.routes(fleet.source, { bufferSize: 8 })
      // The listener's stall guard, as its stream actors apply it to every event-stream route.
      const streams = ServerSentEvents.stallGuard(500)
      const { response } = yield* silentClient("/stream", (request, response) => {
        const url = new URL(request.url!, "http://localhost")
        const route = Route.find(routes, request.method!, url.pathname)!
        expect(route.eventStream).toBe(true)
        streams.watch(response)
        void route.handler(request, response, url)
      })
      let published = 0
      for (; published < 20_000 && !response.writableNeedDrain; published++) {
        yield* fleet.publish
        yield* TestKit.tick
      }
      expect(response.writableNeedDrain).toBe(true)
      const fullAt = Date.now()
      // Updates go on; the writer drops to the latest, and the socket stays full.
      yield* Effect.forkScoped(Effect.forever(Effect.zipRight(fleet.publish, Effect.sleep("20 millis"))))
      yield* TestKit.awaitUntil(Effect.sync(() => response.destroyed), { timeoutMillis: 5_000, waitedFor: "the stream cut off" })
      const cutAfterMs = Date.now() - fullAt
      yield* TestKit.awaitUntil(Effect.sync(() => streams.count() === 0), { waitedFor: "the stream's slot free" })
      expect(streams.endOf(response)).toBe("stalled")
      expect(cutAfterMs).toBeGreaterThanOrEqual(250)
      expect(cutAfterMs).toBeLessThan(2_000)
      console.log(JSON.stringify({ test: "FleetStream stall", updatesBeforeFull: published, cutAfterMs }))
    }), { timeout: 30_000 })
})
