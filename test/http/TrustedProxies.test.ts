import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import { WebSocket } from "ws"
import * as Registry from "../../src/actors/Registry.js"
import type * as Main from "../../src/main.js"
import * as Subprotocol from "../../src/protocol/Subprotocol.js"
import * as WireCodec from "../../src/protocol/WireCodec.js"
import * as TestService from "./support/TestService.js"

/** A WebSocket of the JSON protocol as a reverse proxy on 127.0.0.1 would open it for `client`. */
interface Forwarded {
  /** The HTTP status of a refused upgrade, or 101. */
  readonly status: number
  readonly socket: WebSocket
  readonly received: Queue.Queue<string>
}

const forwardedFor = (service: Main.Service, client: string) =>
  Effect.gen(function*() {
    const received = yield* Queue.unbounded<string>()
    const opened = yield* Effect.acquireRelease(
      Effect.async<{ status: number; socket: WebSocket }>((resume) => {
        const socket = new WebSocket(TestService.wsUrl(service), [Subprotocol.v1Json.name], {
          headers: { "x-forwarded-for": `198.51.100.250, ${client}` }
        })
        socket.on("message", (data) => Queue.unsafeOffer(received, (data as Buffer).toString("utf8")))
        socket.once("open", () => resume(Effect.succeed({ status: 101, socket })))
        socket.once("unexpected-response", (_, response) => {
          response.resume()
          resume(Effect.succeed({ status: response.statusCode ?? 0, socket }))
        })
        socket.once("error", () => resume(Effect.succeed({ status: -1, socket })))
      }),
      ({ socket }) => Effect.sync(() => socket.terminate())
    )
    return { ...opened, received } satisfies Forwarded
  })

const byAddress = (service: Main.Service, address: string) =>
  Registry.unsafeLookup(service.registries.byAddress, address).length

/** Places a pixel over a raw socket; the tag of the request's exit, or of its failure. */
const place = (socket: Forwarded, id: string, x: number) =>
  Effect.gen(function*() {
    socket.socket.send(WireCodec.json.encode({
      _tag: "Request",
      id,
      tag: "CanvasPlace",
      payload: { x, y: 0, color: 1 },
      headers: [["x-fleetvisor-user", "spoofed"]]
    }) as string)
    for (;;) {
      const frames = WireCodec.json.decode(yield* Queue.take(socket.received)) as Array<Record<string, unknown>>
      const exit = frames.find((frame) => frame._tag === "Exit" && frame.requestId === id)?.exit
      if (exit !== undefined) return JSON.stringify(exit).includes("\"Cooldown\"") ? "Cooldown" : (exit as { _tag: string })._tag
    }
  }).pipe(Effect.timeout("5 seconds"))

describe("behind a reverse proxy", () => {
  it.scopedLive("with TRUSTED_PROXIES=loopback each forwarded client has its own per-address budget", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start({ MAX_CONNECTIONS_PER_ADDRESS: "1", TRUSTED_PROXIES: "loopback", AUTH: "none" })
      expect((yield* forwardedFor(service, "203.0.113.7")).status).toBe(101)
      expect((yield* forwardedFor(service, "203.0.113.7")).status).toBe(429)
      expect((yield* forwardedFor(service, "203.0.113.8")).status).toBe(101)
      expect(byAddress(service, "203.0.113.7")).toBe(1)
      expect(byAddress(service, "203.0.113.8")).toBe(1)
      expect(byAddress(service, "127.0.0.1")).toBe(0)
    }))

  it.scopedLive("without TRUSTED_PROXIES a client's X-Forwarded-For is ignored: the socket's address counts", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start({ MAX_CONNECTIONS_PER_ADDRESS: "1" })
      expect((yield* forwardedFor(service, "203.0.113.7")).status).toBe(101)
      expect((yield* forwardedFor(service, "203.0.113.8")).status).toBe(429)
      expect(byAddress(service, "127.0.0.1")).toBe(1)
      expect(byAddress(service, "203.0.113.7")).toBe(0)
    }))

  it.scopedLive("the canvas cooldown counts per forwarded client", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start({ TRUSTED_PROXIES: "loopback", CANVAS_COOLDOWN: "1 minute", AUTH: "none" })
      const ada = yield* forwardedFor(service, "203.0.113.7")
      const adaAgain = yield* forwardedFor(service, "203.0.113.7")
      const bob = yield* forwardedFor(service, "203.0.113.8")
      expect(yield* place(ada, "1", 1)).toBe("Success")
      expect(yield* place(adaAgain, "1", 2)).toBe("Cooldown")
      expect(yield* place(bob, "1", 3)).toBe("Success")
    }))

  it.scopedLive("a forwarded address never changes the admin endpoints' loopback check", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start({ TRUSTED_PROXIES: "loopback", AUTH: "none" })
      const response = yield* Effect.promise(() =>
        fetch(`${service.url}/admin/actors`, { headers: { "x-forwarded-for": "203.0.113.7" } })
      )
      yield* Effect.promise(() => response.arrayBuffer())
      expect(response.status).toBe(200)
    }))
})
