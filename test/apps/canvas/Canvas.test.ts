import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as path from "node:path"
import { ActorSystem } from "../../../src/actors/ActorSystem.js"
import * as ExitReason from "../../../src/actors/ExitReason.js"
import * as PubSub from "../../../src/actors/PubSub.js"
import * as TestKit from "../../../src/actors/TestKit.js"
import { Canvas } from "../../../src/apps/canvas/Canvas.js"
import type { CanvasFrame } from "../../../src/apps/canvas/CanvasFrame.js"
import * as CanvasStream from "../../../src/apps/canvas/CanvasStream.js"
import { type Snapshot, unpackPixels, type Updates } from "../../../src/protocol/CanvasRpcs.js"
import * as SharedFrame from "../../../src/protocol/SharedFrame.js"
import { canvasLayer, recordingSink, tempDirectory } from "./support.js"

const tick = "34 millis"

/** The canvas actor's queued placements, read from its state. */
const pendingPlacements = (canvas: Canvas["Type"], system: ActorSystem) =>
  Effect.gen(function*() {
    const ref = yield* canvas.actor
    const state = (yield* system.getState(ref)) as { pending: ReadonlyArray<unknown> }
    return state.pending.length
  }).pipe(Effect.orDie)

/** Runs placements concurrently, waits until the actor queued them all, then lets one tick pass. */
const placeInOneTick = <A, E, R>(placements: ReadonlyArray<Effect.Effect<A, E, R>>) =>
  Effect.gen(function*() {
    const pending = pendingPlacements(yield* Canvas, yield* ActorSystem)
    const fibers = yield* Effect.forEach(placements, (placement) => Effect.fork(placement))
    yield* TestKit.awaitUntil(Effect.map(pending, (n) => n === placements.length), {
      waitedFor: `${placements.length} queued placements`
    })
    yield* TestClock.adjust(tick)
    return yield* Fiber.join(Fiber.all(fibers))
  })

/** Places one pixel and lets the tick that commits it pass. */
const placeOne = (user: string, x: number, y: number, color: number) =>
  Effect.flatMap(Canvas, (canvas) =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(canvas.place(user, x, y, color))
      yield* TestKit.awaitUntil(
        Effect.flatMap(Fiber.poll(fiber), (done) =>
          done._tag === "Some" ? Effect.succeed(true) : Effect.as(TestClock.adjust(tick), false))
      )
      return yield* Fiber.join(fiber)
    }))

const snapshotOf = (frame: CanvasFrame) => frame.event as Snapshot
const updatesOf = (frame: CanvasFrame) => frame.event as Updates

const withCanvas = <A, E>(body: Effect.Effect<A, E, Canvas | ActorSystem | Scope.Scope>) =>
  Effect.gen(function*() {
    const filename = path.join(yield* tempDirectory, "canvas.db")
    return yield* body.pipe(Effect.provide(canvasLayer(filename)))
  })

describe("Canvas", () => {
  it.scoped("places a pixel, answers once it is committed, and refuses bad ones", () =>
    withCanvas(Effect.gen(function*() {
      const canvas = yield* Canvas
      const placed = yield* placeOne("ada", 3, 2, 2)
      expect(placed.seq).toBe(1)
      expect(DateTime.toEpochMillis(placed.cooldownUntil)).toBe(5_000)

      const snapshot = snapshotOf(yield* canvas.snapshot)
      expect(snapshot).toMatchObject({ width: 8, height: 4, seq: 1 })
      expect(snapshot.palette).toHaveLength(4)
      expect(snapshot.pixels[2 * 8 + 3]).toBe(2)

      expect(yield* Effect.flip(canvas.place("bob", 8, 0, 1))).toMatchObject({ _tag: "OutOfBounds" })
      expect(yield* Effect.flip(canvas.place("bob", 0, 4, 1))).toMatchObject({ _tag: "OutOfBounds" })
      expect(yield* Effect.flip(canvas.place("bob", 0, 0, 4))).toMatchObject({ _tag: "InvalidColor" })
    })))

  it.scoped("holds each user to the cooldown, measured on the clock", () =>
    withCanvas(Effect.gen(function*() {
      const canvas = yield* Canvas
      const first = yield* placeOne("ada", 0, 0, 1)
      const refused = yield* Effect.flip(canvas.place("ada", 1, 0, 1))
      expect(refused._tag).toBe("Cooldown")
      const retryAfterMs = (refused as { retryAfterMs: number }).retryAfterMs
      expect(retryAfterMs).toBeGreaterThan(4_900)
      expect(retryAfterMs).toBeLessThanOrEqual(5_000)

      // Another user is not held back by ada's cooldown.
      expect((yield* placeOne("bob", 1, 0, 1)).seq).toBe(2)

      const until = DateTime.toEpochMillis(first.cooldownUntil)
      yield* TestClock.adjust(until - (yield* Clock.currentTimeMillis) - 1)
      expect(yield* Effect.flip(canvas.place("ada", 1, 0, 1))).toMatchObject({ _tag: "Cooldown", retryAfterMs: 1 })
      yield* TestClock.adjust(1)
      expect((yield* placeOne("ada", 1, 0, 2)).seq).toBe(3)
    })))

  it.scoped("coalesces the placements of one tick into one frame, encoded once for every subscriber", () =>
    withCanvas(Effect.gen(function*() {
      const canvas = yield* Canvas
      const sinks = Array.from({ length: 100 }, recordingSink)
      for (const sink of sinks) yield* canvas.join(sink)
      expect(sinks.every((sink) => sink.frames.length === 1 && sink.frames[0].event._tag === "Snapshot")).toBe(true)
      // Joiners of an unchanged board share one snapshot frame.
      expect(new Set(sinks.map((sink) => sink.frames[0])).size).toBe(1)

      const placed = yield* placeInOneTick(
        Array.from({ length: 20 }, (_, i) => canvas.place(`user-${i}`, i % 8, Math.floor(i / 8), (i % 3) + 1))
      )
      expect(placed.map((p) => p.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))

      yield* TestKit.awaitUntil(Effect.sync(() => sinks.every((sink) => sink.frames.length === 2)))
      const frames = new Set(sinks.map((sink) => sink.frames[1]))
      expect(frames.size).toBe(1)
      const [frame] = frames
      const updates = updatesOf(frame)
      expect(updates.seq).toBe(20)
      expect(unpackPixels(updates.pixels)).toHaveLength(20)
      expect(unpackPixels(updates.pixels)).toContainEqual({ x: 3, y: 1, color: 3 })

      // Every subscriber's writer asks for the RPC chunk: one schema encoding, one serialization per wire.
      const tails = sinks.map((sink) => sink.frames[1].rpc.tail("msgpack"))
      expect(new Set(tails).size).toBe(1)
      expect(frame.encodeCount).toBe(1)
      // Subscribers whose requests have the same id (clients number them alike) share the frame itself.
      const frames1 = sinks.map((sink) => SharedFrame.chunkFrame(sink.frames[1].rpc, "msgpack", "1"))
      expect(new Set(frames1).size).toBe(1)
      expect(SharedFrame.chunkFrame(frame.rpc, "msgpack", "2")).not.toBe(frames1[0])
      expect((yield* PubSub.stats(canvas.hub)).delivered).toBe(100)
    })))

  it.scoped("stops a subscriber over its backlog under `disconnect`; the others keep receiving", () =>
    withCanvas(Effect.gen(function*() {
      const canvas = yield* Canvas
      const slow = recordingSink()
      const fast = recordingSink()
      const slowMember = yield* canvas.join(slow)
      yield* canvas.join(fast)
      const ended = yield* Effect.fork(slowMember.ended)

      slow.backlogBytes = 10 * 1024 * 1024
      yield* placeOne("ada", 0, 0, 1)
      yield* TestKit.awaitUntil(Effect.sync(() => fast.frames.length === 2))
      expect(slow.frames).toHaveLength(1)
      const reason = yield* Fiber.join(ended)
      expect(ExitReason.format(reason)).toMatch(/^shutdown\(slow consumer/)
      expect(slowMember.subscription.isActive()).toBe(false)
      expect((yield* PubSub.stats(canvas.hub)).disconnected).toBe(1)

      yield* placeOne("bob", 1, 0, 1)
      yield* TestKit.awaitUntil(Effect.sync(() => fast.frames.length === 3))
      expect(slow.frames).toHaveLength(1)
    })))

  it.scoped("skips frames of a subscriber over its backlog under `dropping`, and resumes when it catches up", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDirectory, "canvas.db")
      yield* Effect.gen(function*() {
        const canvas = yield* Canvas
        const slow = recordingSink()
        const member = yield* canvas.join(slow)
        slow.backlogBytes = 10 * 1024 * 1024
        yield* placeOne("ada", 0, 0, 1)
        expect(member.subscription.dropped()).toBe(1)
        expect(member.subscription.isActive()).toBe(true)
        slow.backlogBytes = 0
        yield* placeOne("bob", 1, 0, 2)
        yield* TestKit.awaitUntil(Effect.sync(() => slow.frames.length === 2))
        // The gap in seq (1 is missing before 2) tells the page to join again.
        expect(updatesOf(slow.frames[1]).seq).toBe(2)
      }).pipe(Effect.provide(canvasLayer(filename, { slowClient: "dropping" })))
    }))

  it.scopedLive("a restarted canvas reloads the committed board and cooldowns; subscribers keep receiving", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDirectory, "canvas.db")
      yield* Effect.gen(function*() {
        const canvas = yield* Canvas
        const system = yield* ActorSystem
        const sink = recordingSink()
        yield* canvas.join(sink)
        yield* canvas.place("ada", 5, 3, 3)
        const before = yield* canvas.actor

        yield* system.crash(before, "injected")
        yield* TestKit.awaitTree(system, `
          canvas-supervisor (one_for_one)
          └─ canvas running mailbox=0 restarts=1
          canvas-viewer running mailbox=0 restarts=0`)
        const after = yield* canvas.actor
        expect(after).not.toBe(before)
        expect(snapshotOf(yield* canvas.snapshot).pixels[3 * 8 + 5]).toBe(3)
        expect(snapshotOf(yield* canvas.snapshot).seq).toBe(1)
        expect(yield* Effect.flip(canvas.place("ada", 0, 0, 1))).toMatchObject({ _tag: "Cooldown" })

        yield* canvas.place("bob", 0, 0, 1)
        yield* TestKit.awaitUntil(Effect.sync(() => sink.frames.length === 3))
        expect(sink.frames.map((frame) => frame.seq)).toEqual([0, 1, 2])
      }).pipe(Effect.scoped, Effect.provide(canvasLayer(filename)))

      // A new node on the same file starts from the same board.
      const board = yield* Effect.flatMap(Canvas, (canvas) => canvas.snapshot).pipe(
        Effect.provide(canvasLayer(filename))
      )
      expect(board.seq).toBe(2)
      expect(snapshotOf(board).pixels[0]).toBe(1)
      expect(snapshotOf(board).pixels[3 * 8 + 5]).toBe(3)
    }))

  it.scopedLive("a graceful stop commits and answers the placements still queued", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDirectory, "canvas.db")
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(canvasLayer(filename, { tick: Duration.seconds(10) }), scope)
      const canvas = Context.get(context, Canvas)
      const placement = yield* Effect.fork(canvas.place("ada", 2, 2, 2))
      yield* TestKit.awaitUntil(Effect.map(pendingPlacements(canvas, Context.get(context, ActorSystem)), (n) => n === 1))
      yield* Scope.close(scope, Exit.void)
      expect((yield* Fiber.join(placement)).seq).toBe(1)

      const board = yield* Effect.flatMap(Canvas, (c) => c.snapshot).pipe(Effect.provide(canvasLayer(filename)))
      expect(snapshotOf(board).pixels[2 * 8 + 2]).toBe(2)
    }))
})

describe("Canvas Server-Sent Events", () => {
  it.scoped("an SSE client that stops reading is cut off once its buffer is full, and its stream ends", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDirectory, "canvas.db")
      yield* Effect.gen(function*() {
        const canvas = yield* Canvas
        const pull = yield* Stream.toPull(CanvasStream.serverSentEvents)
        const decoder = new TextDecoder()
        const first = decoder.decode(Chunk.unsafeHead(yield* pull))
        expect(first).toMatch(/^event: snapshot\nid: 0\ndata: \{"_tag":"Snapshot"/)

        // Six ticks of updates while the client reads nothing: over its buffer of two.
        for (let i = 0; i < 6; i++) yield* placeOne(`user-${i}`, i, 0, 1)
        expect((yield* PubSub.stats(canvas.hub)).disconnected).toBe(1)
        const events: Array<string> = []
        const end = yield* Effect.flip(Effect.forever(
          Effect.map(pull, (chunk) => events.push(...Chunk.toReadonlyArray(chunk).map((bytes) => decoder.decode(bytes))))
        ))
        expect(end).toEqual(Option.none())
        expect(events.length).toBeLessThan(6)
        expect(events.every((event) => event.startsWith("event: updates\n"))).toBe(true)
      }).pipe(Effect.provide(canvasLayer(filename, { sseBuffer: 2 })))
    }))
})
