/**
 * One board across nodes, in one process: canvases on SQLite files of their own, joined by the
 * in-memory backplane, each given the board's lease by hand (a `CanvasCluster` whose `owns` the
 * test sets). A placement on a node without the board is forwarded and answered by the owner,
 * applied to the other node's board and file; bad input stays on the entry node; an older
 * owner's tick is fenced off; and a node given the board with a replica behind another's adopts
 * the most advanced replica before it writes.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import * as ActorSystem from "../../../src/actors/ActorSystem.js"
import * as Backplane from "../../../src/actors/Backplane.js"
import * as BoardMessages from "../../../src/apps/canvas/BoardMessages.js"
import * as Canvas from "../../../src/apps/canvas/Canvas.js"
import type { BoardToken, CanvasCluster } from "../../../src/apps/canvas/CanvasCluster.js"
import { CanvasCluster as CanvasClusterTag } from "../../../src/apps/canvas/CanvasCluster.js"
import { packPixels, type Snapshot } from "../../../src/protocol/CanvasRpcs.js"
import { CanvasStore } from "../../../src/store/CanvasStore.js"
import { storeLayer, tempDirectory } from "./support.js"

const width = 8

/** A node of the test: its canvas, its store, its lease (given and taken by hand), and its scope. */
interface TestNode {
  readonly canvas: Canvas.Canvas["Type"]
  readonly store: CanvasStore["Type"]
  readonly give: (token: BoardToken) => void
  readonly take: () => void
  readonly stop: Effect.Effect<void>
}

const startNode = (backplane: Backplane.Backplane, node: string, filename: string, token?: BoardToken) =>
  Effect.gen(function*() {
    let held: BoardToken | undefined = token
    const listeners = new Set<(owned: boolean) => void>()
    const cluster: CanvasCluster = {
      node,
      backplane,
      owns: () => held !== undefined,
      token: () => held,
      watch: (listener) => {
        listeners.add(listener)
        return () => void listeners.delete(listener)
      }
    }
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(
      Canvas.layer.pipe(
        Layer.provideMerge(storeLayer(filename, { cooldown: Duration.zero })),
        Layer.provideMerge(ActorSystem.layer({ logFailures: false })),
        Layer.provide(Layer.succeed(CanvasClusterTag, cluster))
      ),
      scope
    )
    return {
      canvas: Context.get(context, Canvas.Canvas),
      store: Context.get(context, CanvasStore),
      give: (next) => {
        held = next
        for (const listener of listeners) listener(true)
      },
      take: () => {
        held = undefined
        for (const listener of listeners) listener(false)
      },
      stop: Scope.close(scope, Exit.void)
    } satisfies TestNode
  })

/** Places until it is not `Unavailable` (the owner may still be taking the board over). */
const place = (node: TestNode, user: string, x: number, y: number, color: number) =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 100; attempt++) {
      const result = yield* Effect.either(node.canvas.place(user, x, y, color))
      if (result._tag === "Right" || result.left._tag !== "Unavailable") return result
      yield* Effect.sleep("50 millis")
    }
    return yield* Effect.dieMessage(`(${x}, ${y}) stayed Unavailable`)
  })

const boardOf = (node: TestNode) => Effect.map(Effect.orDie(node.canvas.snapshot), (frame) => frame.event as Snapshot)

/** Waits until `f` holds, polling every 20 ms, for at most 5 s. */
const eventually = (what: string, f: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 250; i++) {
      if (yield* f) return
      yield* Effect.sleep("20 millis")
    }
    return yield* Effect.dieMessage(`timed out waiting for ${what}`)
  })

const run = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Effect.scoped(effect))

describe("the canvas on several nodes (in-memory backplane)", () => {
  it("forwards a placement to the owner, relays and replicates its tick, keeps bad input home, and fences off an older owner", () =>
    run(Effect.gen(function*() {
      const dir = yield* tempDirectory
      const backplane = Backplane.memory()
      const owner = yield* startNode(backplane, "a", path.join(dir, "a.db"), { epoch: 1, counter: 5 })
      const entry = yield* startNode(backplane, "b", path.join(dir, "b.db"))
      yield* Effect.addFinalizer(() => Effect.zipRight(entry.stop, owner.stop))

      const placed = yield* place(entry, "user-1", 3, 1, 2)
      expect(placed._tag).toBe("Right")
      const { seq } = (placed as { right: { seq: number } }).right
      expect(entry.canvas.stats().forwarded).toBe(1)
      expect(owner.canvas.stats().forwardsReceived).toBe(1)
      // The owner's board and file, and the entry node's board and file (its replica).
      expect((yield* boardOf(owner)).pixels[1 * width + 3]).toBe(2)
      yield* eventually("the replica's board", Effect.map(boardOf(entry), (board) => board.pixels[1 * width + 3] === 2 && board.seq === seq))
      yield* eventually(
        "the replica's file",
        Effect.map(Effect.orDie(entry.store.load), (stored) => stored.pixels[1 * width + 3] === 2 && stored.version === seq)
      )
      expect((yield* Effect.orDie(owner.store.load)).version).toBe(seq)

      // Bad input is refused on the entry node and never forwarded.
      expect(yield* Effect.flip(entry.canvas.place("user-2", 99, 0, 1))).toMatchObject({ _tag: "OutOfBounds" })
      expect(yield* Effect.flip(entry.canvas.place("user-2", 0, 0, 9))).toMatchObject({ _tag: "InvalidColor" })
      expect(entry.canvas.stats()).toMatchObject({ refusedAtEntry: 2, forwarded: 1 })
      expect(owner.canvas.stats().forwardsReceived).toBe(1)

      // A tick of an older owner (a smaller token) that would follow the board is dropped.
      const ghost: BoardMessages.Tick = {
        _tag: "Tick",
        token: { epoch: 1, counter: 4 },
        seq: seq + 1,
        pixels: packPixels([{ x: 0, y: 0, color: 3 }]),
        users: ["ghost"],
        ats: [Date.now()],
        answers: []
      }
      yield* backplane.publish({ origin: "ghost", topic: BoardMessages.BoardTopic, message: ghost })
      yield* eventually("the ghost tick fenced off", Effect.sync(() => entry.canvas.stats().fenced === 1))
      expect((yield* boardOf(entry)).pixels[0]).toBe(0)
      expect((yield* boardOf(entry)).seq).toBe(seq)
    })), 30_000)

  it("a node given the board with a replica behind adopts the most advanced replica before it writes", () =>
    run(Effect.gen(function*() {
      const dir = yield* tempDirectory
      const backplane = Backplane.memory()
      const first = yield* startNode(backplane, "a", path.join(dir, "a.db"), { epoch: 1, counter: 1 })
      const replica = yield* startNode(backplane, "b", path.join(dir, "b.db"))
      yield* Effect.addFinalizer(() => replica.stop)
      for (let x = 0; x < 3; x++) expect((yield* place(first, `user-${x}`, x, 2, 1))._tag).toBe("Right")
      yield* eventually("the replica following", Effect.map(boardOf(replica), (board) => board.seq === 3))
      // The owner dies; a node whose file never heard of the board is given it.
      first.take()
      yield* first.stop
      const next = yield* startNode(backplane, "c", path.join(dir, "c.db"), { epoch: 1, counter: 2 })
      yield* Effect.addFinalizer(() => next.stop)
      expect((yield* place(next, "user-9", 5, 3, 3))._tag).toBe("Right")
      const board = yield* boardOf(next)
      expect(board.seq).toBe(4)
      expect([0, 1, 2].map((x) => board.pixels[2 * width + x])).toEqual([1, 1, 1])
      expect(board.pixels[3 * width + 5]).toBe(3)
      expect(next.canvas.stats()).toMatchObject({ takeovers: 1, adopted: 1 })
      const stored = yield* Effect.orDie(next.store.load)
      expect(stored.version).toBe(4)
      expect([0, 1, 2].map((x) => stored.pixels[2 * width + x])).toEqual([1, 1, 1])
      // The replica follows the new owner.
      yield* eventually("the replica following the new owner", Effect.map(boardOf(replica), (b) => b.seq === 4 && b.pixels[3 * width + 5] === 3))
    })), 30_000)
})
