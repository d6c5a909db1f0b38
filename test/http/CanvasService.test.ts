import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as PubSub from "../../src/actors/PubSub.js"
import * as TestKit from "../../src/actors/TestKit.js"
import { type CanvasEvent, unpackPixels } from "../../src/protocol/CanvasRpcs.js"
import * as TestService from "./support/TestService.js"

const get = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url, { redirect: "manual" })
    return { status: response.status, headers: response.headers, body: await response.text() }
  })

describe("the canvas in the service", () => {
  it.scopedLive("a pixel placed by one session reaches another session's CanvasJoin stream", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start()
      expect(yield* TestKit.renderTree(service.system, { under: "canvas" })).toBe("canvas running mailbox=0 restarts=0")
      const painter = yield* TestService.connect(service, "json")
      const viewer = yield* TestService.connect(service, "msgpack")
      const events = yield* Queue.unbounded<CanvasEvent>()
      yield* viewer.rpc.CanvasJoin().pipe(Stream.runForEach((event) => Queue.offer(events, event)), Effect.forkScoped)
      const snapshot = yield* Queue.take(events)
      expect(snapshot).toMatchObject({ _tag: "Snapshot", width: 64, height: 64 })
      const placed = yield* painter.rpc.CanvasPlace({ x: 3, y: 4, color: 5 })
      expect(placed.seq).toBeGreaterThan(0)
      let update = yield* Queue.take(events)
      while (update._tag !== "Updates" || !unpackPixels(update.pixels).some((p) => p.x === 3 && p.y === 4)) {
        update = yield* Queue.take(events)
      }
      expect(unpackPixels((update as { pixels: Uint8Array }).pixels)).toContainEqual({ x: 3, y: 4, color: 5 })
    }))

  it.scopedLive("a session's canvas subscription is owned by the session actor and ends with it", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start()
      const canvas = Option.getOrThrow(service.canvas)
      const scope = yield* Scope.make()
      const viewer = yield* Scope.extend(TestService.connect(service), scope)
      const join = yield* viewer.rpc.CanvasJoin().pipe(Stream.take(1), Stream.runDrain, Effect.fork)
      yield* Fiber.join(join)
      yield* viewer.rpc.CanvasJoin().pipe(Stream.runDrain, Effect.forkIn(scope))
      yield* TestKit.awaitUntil(Effect.sync(() => PubSub.subscribers(canvas.hub, "canvas").some((ref) => ref.name === "session:1")), {
        waitedFor: "session:1 to own a canvas subscription"
      })
      yield* Scope.close(scope, Exit.void)
      yield* TestKit.awaitUntil(Effect.sync(() => PubSub.subscribers(canvas.hub, "canvas").length === 0), {
        waitedFor: "no canvas subscriber left"
      })
    }))

  it.scopedLive("/ leads to the canvas page; its script is bundled; /canvas/stream sends the snapshot", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start()
      const home = yield* get(`${service.url}/`)
      expect(home.status).toBe(302)
      expect(home.headers.get("location")).toBe("/canvas/")
      const page = yield* get(`${service.url}/canvas/`)
      expect(page.status).toBe(200)
      expect(page.body).toContain("src=\"./main.js\"")
      const script = yield* get(`${service.url}/canvas/main.js`)
      expect(script.status).toBe(200)
      expect(script.headers.get("content-type")).toMatch(/^text\/javascript/)
      expect(script.body.length).toBeGreaterThan(1000)

      const controller = new AbortController()
      yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
      const first = yield* Effect.promise(async () => {
        const response = await fetch(`${service.url}/canvas/stream`, { signal: controller.signal })
        const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
        let text = ""
        while (!text.includes("\n\n")) text += (await reader.read()).value ?? ""
        return { type: response.headers.get("content-type"), event: text.slice(0, text.indexOf("\n\n")) }
      })
      expect(first.type).toMatch(/^text\/event-stream/)
      expect(first.event).toMatch(/^event: snapshot$/m)
      expect(first.event).toMatch(/"width":64/)
    }), { timeout: 30_000 })
})
