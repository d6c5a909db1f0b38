/**
 * The limits of one session count work, not frames, in both wire formats: the rate limit counts
 * requests (a MessagePack frame of 7 requests takes 7 tokens), a frame of more requests than
 * `RATE_LIMIT_BURST` closes with 1008, and past `MAX_REQUESTS_IN_FLIGHT` or
 * `MAX_STREAMS_PER_SESSION` a request gets the typed refusal `Overloaded` while the session goes
 * on. Every refusal is counted in `/metrics`; another session is served throughout.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as TestKit from "../../src/actors/TestKit.js"
import * as ServiceConfig from "../../src/http/ServiceConfig.js"
import type * as Main from "../../src/main.js"
import * as CloseCode from "../../src/protocol/CloseCode.js"
import * as Rejection from "../../src/protocol/Rejection.js"
import * as Subprotocol from "../../src/protocol/Subprotocol.js"
import * as WireCodec from "../../src/protocol/WireCodec.js"
import { type RawSocket, rawSocket } from "../protocol/support/TestClients.js"
import * as TestService from "./support/TestService.js"

type Wire = Subprotocol.WireFormat
type Answer = { readonly _tag: string; readonly requestId?: string; readonly exit?: any }

const request = (id: string, tag: string, payload: unknown = undefined) => ({ _tag: "Request", id, tag, payload, headers: [] })
const pings = (from: number, count: number) => Array.from({ length: count }, (_, i) => request(String(from + i), "Ping"))

/** One frame of `messages`: MessagePack carries them all in one; JSON carries one message a frame. */
const framesOf = (wire: Wire, messages: ReadonlyArray<unknown>, perFrame: number): Array<string | Uint8Array> => {
  if (wire === "json") return messages.map((message) => WireCodec.json.encode(message))
  const frames: Array<Uint8Array> = []
  for (let i = 0; i < messages.length; i += perFrame) {
    frames.push(Buffer.concat(messages.slice(i, i + perFrame).map((message) => WireCodec.msgpack.encode(message) as Uint8Array)))
  }
  return frames
}

const raw = (service: Main.Service, wire: Wire) => rawSocket(TestService.wsUrl(service), [Subprotocol.current(wire).name])

/** Reads `count` `Exit`s from a raw socket, each with when it came. */
const exits = (socket: RawSocket, wire: Wire, count: number) =>
  Effect.gen(function*() {
    const answers: Array<Answer & { readonly at: number }> = []
    while (answers.length < count) {
      const frame = yield* Queue.take(socket.received)
      for (const message of WireCodec.of(wire).decode(frame) as ReadonlyArray<Answer>) {
        if (message._tag === "Exit") answers.push({ ...message, at: performance.now() })
      }
    }
    return answers
  })

const counter = (service: Main.Service, name: string) =>
  Effect.map(service.metrics.text, (text) => Number(text.split("\n").find((l) => l.startsWith(name + " "))?.split(" ")[1] ?? 0))
const rejected = (service: Main.Service, reason: string) =>
  counter(service, `fleetvisor_ws_frames_rejected_total{reason="${reason}"}`)
const ended = (service: Main.Service, reason: string) => counter(service, `fleetvisor_sessions_ended_total{reason="${reason}"}`)
/** Sessions are counted as ended once their actor has stopped, a moment after the close frame. */
const awaitEnded = (service: Main.Service, reason: string, count: number) =>
  TestKit.awaitUntil(Effect.map(ended(service, reason), (n) => n === count), {
    describe: Effect.map(ended(service, reason), String),
    waitedFor: `${count} sessions ended by ${reason}`
  })

/** The defect a client saw, if the exit is a defect. */
const defectOf = <A, E>(exit: Exit.Exit<A, E>): unknown =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined

/** A bystander session answers a Ping. */
const served = (socket: RawSocket, wire: Wire, id: string) =>
  Effect.gen(function*() {
    socket.socket.send(framesOf(wire, [request(id, "Ping")], 1)[0])
    const [answer] = yield* exits(socket, wire, 1)
    expect(answer).toMatchObject({ requestId: id, exit: { _tag: "Success" } })
  })

describe("session limits count requests, not frames", () => {
  it("has deliberate defaults: 50 requests/s, bursts of 100, 32 in flight, 16 streams; each at least 1", () => {
    const config = Either.getOrThrow(ServiceConfig.load(new Map(), {}))
    expect(config).toMatchObject({ rateLimit: { perSecond: 50, burst: 100 }, maxRequestsInFlight: 32, maxStreamsPerSession: 16 })
    expect(Either.getLeft(ServiceConfig.load(new Map([["MAX_STREAMS_PER_SESSION", "0"]]), { MAX_REQUESTS_IN_FLIGHT: "x" })))
      .toEqual(Option.some([
        "MAX_REQUESTS_IN_FLIGHT: Expected an integer value but received \"x\"",
        "MAX_STREAMS_PER_SESSION: must be an integer from 1 to 9007199254740991"
      ]))
    expect(ServiceConfig.settings.map((s) => s.env)).toEqual(expect.arrayContaining(["MAX_REQUESTS_IN_FLIGHT", "MAX_STREAMS_PER_SESSION"]))
  })

  for (const wire of ["json", "msgpack"] as const) {
    it.scopedLive(`requests faster than the rate are delayed, and a session that keeps on is closed with 1008 (${wire})`, () =>
      Effect.gen(function*() {
        const service = yield* TestService.start({ RATE_LIMIT_PER_SECOND: "20", RATE_LIMIT_BURST: "10" })
        const polite = yield* raw(service, wire)
        const flooder = yield* raw(service, wire)
        // 14 requests: in MessagePack 2 frames of 7, which a frame count would let through at once.
        const sent = performance.now()
        for (const frame of framesOf(wire, pings(1, 14), 7)) flooder.socket.send(frame)
        const answers = yield* exits(flooder, wire, 14)
        expect(new Set(answers.map((a) => a.requestId)).size).toBe(14)
        for (const answer of answers) expect(answer.exit._tag).toBe("Success")
        // 4 requests beyond the burst at 20/s: the last answers come ~200 ms later, not at once.
        expect(Math.max(...answers.map((a) => a.at)) - sent).toBeGreaterThanOrEqual(150)
        expect(yield* rejected(service, "throttled")).toBeGreaterThan(0)

        // Keeping on (frames within the burst each): closed.
        for (const frame of framesOf(wire, pings(100, 400), 10)) flooder.socket.send(frame)
        const closed = yield* Deferred.await(flooder.closed)
        expect(closed.code).toBe(CloseCode.PolicyViolation)
        expect(closed.reason).toMatch(/Too many requests: the limit is 20\/s with bursts of 10/)
        expect(yield* rejected(service, "flood")).toBe(1)
        yield* awaitEnded(service, "flood", 1)
        expect(yield* counter(service, "fleetvisor_ws_requests_received_total")).toBeGreaterThanOrEqual(14)
        yield* served(polite, wire, "1")
      }))

    it.scopedLive(`past MAX_REQUESTS_IN_FLIGHT a request is refused with Overloaded, never a stop; the session goes on (${wire})`, () =>
      Effect.gen(function*() {
        // Placements are answered once their tick commits: they stay in flight for up to 2 s.
        const service = yield* TestService.start({ MAX_REQUESTS_IN_FLIGHT: "4", CANVAS_TICK: "2 seconds" })
        const client = yield* TestService.connect(service, wire)
        const placing = yield* Effect.forkScoped(Effect.all(
          Array.from({ length: 6 }, (_, i) => Effect.exit(client.rpc.CanvasPlace({ x: i, y: 0, color: 1 }))),
          { concurrency: "unbounded" }
        ))
        yield* TestKit.awaitUntil(Effect.map(rejected(service, "requests_in_flight"), (n) => n === 2), {
          waitedFor: "2 of 6 placements refused"
        })
        // While 4 are in flight: a Ping is refused too, an emergency stop is not.
        const ping = yield* Effect.exit(client.rpc.Ping())
        expect(Rejection.isOverloaded(defectOf(ping))).toBe(true)
        yield* client.rpc.FleetEmergencyStop({})
        const placed = yield* Fiber.join(placing)
        const refused = placed.map(defectOf).filter((defect) => defect !== undefined)
        expect(placed.filter(Exit.isSuccess).length).toBe(4)
        expect(refused.length).toBe(2)
        for (const defect of refused) {
          expect(Rejection.isOverloaded(defect)).toBe(true)
          expect(defect).toMatchObject({ name: "Overloaded", message: expect.stringMatching(/4 requests are in flight/) })
          expect((defect as Error).cause).toMatchObject({ _tag: "Overloaded", limit: "requests_in_flight", max: 4 })
        }
        expect(yield* rejected(service, "requests_in_flight")).toBe(3)
        // The same session goes on, with its places free again.
        yield* client.rpc.Ping()
        const again = yield* Effect.all(
          Array.from({ length: 4 }, (_, i) => client.rpc.CanvasPlace({ x: i, y: 1, color: 2 })),
          { concurrency: "unbounded" }
        )
        expect(again.length).toBe(4)
        expect(yield* rejected(service, "requests_in_flight")).toBe(3)
        expect(yield* ended(service, "flood")).toBe(0)
      }), 20_000)

    it.scopedLive(`past MAX_STREAMS_PER_SESSION a stream is refused with Overloaded; a closed one makes room (${wire})`, () =>
      Effect.gen(function*() {
        const service = yield* TestService.start({ MAX_STREAMS_PER_SESSION: "2" })
        const client = yield* TestService.connect(service, wire)
        /** Subscribes, and waits for the first item (the snapshot): the stream is open on the server. */
        const open = <A, E>(stream: Stream.Stream<A, E>) =>
          Effect.gen(function*() {
            const first = yield* Deferred.make<void>()
            const fiber = yield* stream.pipe(
              Stream.runForEach(() => Deferred.succeed(first, undefined)),
              Effect.forkScoped
            )
            yield* Deferred.await(first)
            return fiber
          })
        const canvas = yield* open(client.rpc.CanvasJoin())
        yield* open(client.rpc.FleetSubscribe({}))
        const third = yield* Effect.exit(Stream.runHead(client.rpc.FleetSubscribe({})))
        const defect = defectOf(third)
        expect(Rejection.isOverloaded(defect)).toBe(true)
        expect((defect as Error).cause).toMatchObject({ _tag: "Overloaded", limit: "open_streams", max: 2 })
        expect(yield* rejected(service, "open_streams")).toBe(1)
        // Requests answered once are not streams: they still go through.
        yield* client.rpc.Ping()
        // Closing a stream makes room once its end went out (the client's cancel takes a moment).
        yield* Fiber.interrupt(canvas)
        const reopened = yield* Stream.runHead(client.rpc.CanvasJoin()).pipe(
          Effect.catchAllDefect((defect) => Rejection.isOverloaded(defect) ? Effect.fail("overloaded" as const) : Effect.die(defect)),
          Effect.retry({ while: (error) => error === "overloaded", schedule: Schedule.spaced("20 millis"), times: 100 })
        )
        expect(Option.isSome(reopened)).toBe(true)
        expect(yield* ended(service, "flood")).toBe(0)
      }))
  }

  it.scopedLive("a frame carrying more requests than RATE_LIMIT_BURST closes with 1008 at once, counted; one of the burst is served", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start({ RATE_LIMIT_PER_SECOND: "20", RATE_LIMIT_BURST: "10" })
      const bystander = yield* raw(service, "msgpack")
      const full = yield* raw(service, "msgpack")
      full.socket.send(framesOf("msgpack", pings(1, 10), 10)[0])
      expect((yield* exits(full, "msgpack", 10)).every((answer) => answer.exit._tag === "Success")).toBe(true)

      const batch = yield* raw(service, "msgpack")
      batch.socket.send(framesOf("msgpack", pings(1, 11), 11)[0])
      const closed = yield* Deferred.await(batch.closed)
      expect(closed.code).toBe(CloseCode.PolicyViolation)
      expect(closed.reason).toBe("Too many requests in one frame: more than 10, the most a session may send at once")
      // None of its requests ran.
      expect(yield* Queue.size(batch.received)).toBe(0)
      expect(yield* rejected(service, "requests_per_frame")).toBe(1)
      yield* awaitEnded(service, "flood", 1)

      // JSON carries one message a frame: an array of requests is not a message at all (1007).
      const json = yield* raw(service, "json")
      json.socket.send(JSON.stringify(pings(1, 11)))
      expect((yield* Deferred.await(json.closed)).code).toBe(CloseCode.InvalidPayload)
      yield* served(bystander, "msgpack", "1")
      yield* served(full, "msgpack", "11")
    }))

  it.scopedLive("a reused request id counts once per request, and every answer frees one: the count never leaks", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start({ MAX_REQUESTS_IN_FLIGHT: "2" })
      const socket = yield* raw(service, "msgpack")
      // Three requests with the same id: two run (one after the other), the third is refused.
      socket.socket.send(framesOf("msgpack", [request("1", "Ping"), request("1", "Ping"), request("1", "Ping")], 3)[0])
      const answers = yield* exits(socket, "msgpack", 3)
      expect(answers.map((answer) => answer.exit._tag).sort()).toEqual(["Failure", "Success", "Success"])
      expect(yield* rejected(service, "requests_in_flight")).toBe(1)
      // Both places are free again.
      for (let round = 0; round < 3; round++) {
        socket.socket.send(framesOf("msgpack", pings(10 + round * 2, 2), 2)[0])
        expect((yield* exits(socket, "msgpack", 2)).every((answer) => answer.exit._tag === "Success")).toBe(true)
      }
      expect(yield* rejected(service, "requests_in_flight")).toBe(1)
    }))

  it.scopedLive("the refusal on the wire: an Exit whose defect is { _tag: Overloaded, limit, max } (msgpack frame past the cap)", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start({ MAX_REQUESTS_IN_FLIGHT: "4" })
      const socket = yield* raw(service, "msgpack")
      // The 6 requests of one frame are in flight together: 4 run, 2 are refused.
      socket.socket.send(framesOf("msgpack", pings(1, 6), 6)[0])
      const answers = yield* exits(socket, "msgpack", 6)
      const refusals = answers.filter((answer) => answer.exit._tag === "Failure")
      expect(answers.filter((answer) => answer.exit._tag === "Success").length).toBe(4)
      expect(refusals.map((answer) => answer.requestId).sort()).toEqual(["5", "6"])
      expect(refusals[0].exit).toEqual({
        _tag: "Failure",
        cause: {
          _tag: "Die",
          defect: {
            _tag: "Overloaded",
            name: "Overloaded",
            message: "Overloaded: Ping refused, 4 requests are in flight already (wait for their answers)",
            limit: "requests_in_flight",
            max: 4
          }
        }
      })
      expect(Rejection.isOverloaded(refusals[0].exit.cause.defect)).toBe(true)
      expect(yield* rejected(service, "requests_in_flight")).toBe(2)
      yield* served(socket, "msgpack", "7")
    }))
})
