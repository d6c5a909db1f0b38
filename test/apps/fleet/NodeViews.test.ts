/**
 * Several nodes' `fleet/state` actors joined by an in-memory backplane, each with a placement set
 * by hand: every node shows every robot once (its own view where it runs the robot, the owner's
 * otherwise), another node's view reaches its subscribers as an update of its own consecutive
 * ticks, a tick's frame carries every node's views of that tick (the nodes tick together and
 * gather for a few ms), a handed-over robot ends up shown from its new owner, a node that left has its robots
 * shown disconnected, a node that starts gets everyone's views whole, a gap makes every node send
 * its robots whole, and link events never cross.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import { Backplane, PubSub, TestKit } from "../../../src/actors/index.js"
import type { Encoded } from "../../../src/actors/Encoded.js"
import * as FleetState from "../../../src/apps/fleet/FleetState.js"
import * as Leases from "../../../src/apps/fleet/Leases.js"
import * as NodeViews from "../../../src/apps/fleet/NodeViews.js"
import * as StopLatches from "../../../src/apps/fleet/StopLatches.js"
import * as LinkEvent from "../../../src/links/LinkEvent.js"
import type * as Placement from "../../../src/links/Placement.js"
import type { FleetUpdate, RobotView } from "../../../src/protocol/FleetRpcs.js"

type Update = Encoded<typeof FleetUpdate.Type>

const live = new Set<string>()

/** One node: its hub on the shared backplane, a hand placement, and its `fleet/state`. */
const node = (backplane: Backplane.Backplane, id: string, gatherMs?: number) =>
  Effect.gen(function*() {
    const system = yield* TestKit.system()
    const hub = yield* PubSub.make({ nodeId: id, backplane, shares: NodeViews.shares })
    const owned = new Set<string>()
    const placement: Placement.Placement = {
      node: id,
      owns: (robot) => owned.has(robot),
      owned: () => [...owned],
      manage: () => Effect.void,
      watch: () => () => {},
      isLive: (other) => live.has(other)
    }
    const updates = yield* PubSub.subscribeQueue<Update>(hub, FleetState.ViewsTopic, { bufferSize: 4096 })
    const leases = Leases.make()
    const ref = yield* system.spawn(
      FleetState.make({
        hub,
        arms: [],
        leases,
        latches: yield* StopLatches.make({}),
        roster: new Map(),
        placement,
        updateHz: 50,
        gatherMs
      }),
      { name: "state" }
    )
    live.add(id)
    const state = Effect.orDie(ref.ask<FleetState.FleetView>((reply) => ({ _tag: "GetState", reply })))
    /** The robot is up on this node's link, at `x`. */
    const drive = (robot: string, x: number) =>
      Effect.gen(function*() {
        yield* PubSub.broadcast(hub, LinkEvent.FleetTopic, { _tag: "LinkUp", robot, kind: "agv", at: Date.now() })
        yield* PubSub.broadcast(hub, LinkEvent.FleetTopic, {
          _tag: "AgvTelemetry",
          robot,
          at: Date.now(),
          visualization: {
            timestamp: new Date().toISOString(),
            agvPosition: { x, y: 0, theta: 0, mapId: "map", positionInitialized: true }
          } as unknown as LinkEvent.AgvTelemetry["visualization"]
        })
      })
    return { hub, owned, updates, state, drive, leases }
  })

const byId = (robots: ReadonlyArray<RobotView>) => {
  const ids = robots.map((robot) => robot.id)
  expect(new Set(ids).size).toBe(ids.length)
  return new Map(robots.map((robot) => [robot.id, robot]))
}

const poseX = (view: RobotView | undefined) => (view?.kind === "agv" ? view.pose.x : undefined)

/** Resolves once `f` holds of the node's state. */
const until = (state: Effect.Effect<FleetState.FleetView>, f: (robots: Map<string, RobotView>) => boolean) =>
  TestKit.awaitUntil(Effect.map(state, (view) => f(byId(view.robots))))

describe("fleet/state across nodes", () => {
  it.scopedLive("every node shows every robot once, from the node that runs it", () =>
    Effect.gen(function*() {
      live.clear()
      const backplane = Backplane.memory()
      const a = yield* node(backplane, "a")
      const b = yield* node(backplane, "b")
      const linkEventsAtB = yield* PubSub.subscribeQueue(b.hub, LinkEvent.FleetTopic)

      a.owned.add("KIT/0001")
      b.owned.add("KIT/0002")
      yield* a.drive("KIT/0001", 1)
      yield* b.drive("KIT/0002", 2)
      yield* until(b.state, (robots) => poseX(robots.get("KIT/0001")) === 1 && robots.get("KIT/0001")?.connection === "online")
      yield* until(a.state, (robots) => poseX(robots.get("KIT/0002")) === 2)
      expect(yield* Queue.size(linkEventsAtB)).toBe(2)

      // A moves its robot: B's subscribers get it, in B's own consecutive ticks.
      yield* a.drive("KIT/0001", 5)
      yield* until(b.state, (robots) => poseX(robots.get("KIT/0001")) === 5)
      const ticks = [...(yield* Queue.takeAll(b.updates))].map((update) => update.value.tick)
      expect(ticks.length).toBeGreaterThan(1)
      ticks.forEach((tick, i) => expect(tick).toBe(ticks[0] + i))
      const latest = (yield* b.state).tick
      expect(latest).toBeGreaterThanOrEqual(ticks[ticks.length - 1])

      // Handed over to B: shown once, from B, on both nodes.
      a.owned.delete("KIT/0001")
      b.owned.add("KIT/0001")
      yield* b.drive("KIT/0001", 9)
      yield* until(b.state, (robots) => poseX(robots.get("KIT/0001")) === 9 && robots.get("KIT/0001")?.connection === "online")
      yield* until(a.state, (robots) => poseX(robots.get("KIT/0001")) === 9 && robots.get("KIT/0001")?.connection === "online")

      // A third node starts: it asks, and gets everyone's robots whole.
      a.owned.add("KIT/0003")
      yield* a.drive("KIT/0003", 3)
      yield* until(b.state, (robots) => poseX(robots.get("KIT/0003")) === 3)
      const c = yield* node(backplane, "c")
      yield* until(c.state, (robots) =>
        poseX(robots.get("KIT/0001")) === 9 && poseX(robots.get("KIT/0002")) === 2 && poseX(robots.get("KIT/0003")) === 3)

      // A leaves: its robot shows disconnected elsewhere, until a node that runs it says otherwise.
      live.delete("a")
      yield* until(b.state, (robots) => robots.get("KIT/0003")?.connection === "broken" && robots.get("KIT/0003")?.status === "disconnected")
      b.owned.add("KIT/0003")
      yield* b.drive("KIT/0003", 4)
      yield* until(c.state, (robots) => poseX(robots.get("KIT/0003")) === 4 && robots.get("KIT/0003")?.connection === "online")
      expect((yield* c.state).robots.length).toBe(3)

      // A gap anywhere: every node sends what it runs whole.
      const heard = yield* PubSub.subscribeQueue<NodeViews.NodeViews>(c.hub, NodeViews.Topic)
      backplane.signal(Backplane.resyncSignal(NodeViews.Topic, "gap"))
      const full = new Map<string, ReadonlyArray<string>>()
      while (!full.has("a") || !full.has("b")) {
        const message = yield* Queue.take(heard).pipe(Effect.timeout("3 seconds"))
        if (message.full) full.set(message.node, message.robots.map((robot) => robot.id).sort())
      }
      expect(full.get("b")).toEqual(["KIT/0001", "KIT/0002", "KIT/0003"])
      expect(full.get("a")).toEqual(["KIT/0003"])
    }))

  it.scopedLive("a tick's frame carries every node's views of that tick: the nodes tick together and gather", () =>
    Effect.gen(function*() {
      live.clear()
      const backplane = Backplane.memory()
      // A window of 200 ms, so that what is gathered does not hang on a loaded machine's scheduling
      // (the service's 5 ms is a figure of bench:cluster, not of this test).
      const a = yield* node(backplane, "a", 200)
      const b = yield* node(backplane, "b", 200)
      a.owned.add("KIT/0001")
      b.owned.add("KIT/0002")
      yield* until(b.state, () => true)
      yield* Queue.takeAll(b.updates)
      // Both robots move at every tick for half a second.
      for (let i = 0; i < 25; i++) {
        yield* a.drive("KIT/0001", i)
        yield* b.drive("KIT/0002", i)
        yield* Effect.sleep("20 millis")
      }
      yield* until(b.state, (robots) => poseX(robots.get("KIT/0001")) === 24 && poseX(robots.get("KIT/0002")) === 24)
      const frames = [...(yield* Queue.takeAll(b.updates))].map((update) => update.value.robots.map((robot) => robot.id))
      const both = frames.filter((ids) => ids.includes("KIT/0001") && ids.includes("KIT/0002"))
      // Without gathering, a's views would reach b's dashboards in frames of their own, never beside b's.
      expect(both.length).toBeGreaterThan(0)
      process.stdout.write(`[node views] ${frames.length} frames at b over 25 ticks of both nodes, ${both.length} with both nodes' robots\n`)
    }))

  it.scopedLive("who controls a robot crosses nodes: the node that runs it tells its dashboards, also while the robot is still", () =>
    Effect.gen(function*() {
      live.clear()
      const backplane = Backplane.memory()
      const a = yield* node(backplane, "a")
      const b = yield* node(backplane, "b")
      a.owned.add("KIT/0001")
      yield* a.drive("KIT/0001", 1)
      yield* until(b.state, (robots) => poseX(robots.get("KIT/0001")) === 1)
      /** Resolves once a frame of a's dashboards shows the robot controlled by `user` (fails after 3 s). */
      const shownOnA = (user: string | undefined) =>
        Effect.gen(function*() {
          while (true) {
            const update = yield* Queue.take(a.updates)
            const view = update.value.robots.find((robot) => robot.id === "KIT/0001")
            if (view !== undefined && view.controlledBy === user) return
          }
        }).pipe(Effect.timeout("3 seconds"))
      // A session of b takes the robot a runs; a's dashboards show it without the robot moving.
      b.leases.set("KIT/0001", { robot: "KIT/0001", holder: { session: "s1", user: "bob" }, expiresAt: Date.now() + 60_000 })
      yield* shownOnA("bob")
      b.leases.delete("KIT/0001")
      yield* shownOnA(undefined)
    }))

  it("a message heard on the nodes' topic is checked before use", () => {
    expect(NodeViews.isNodeViews({ _tag: "NodeViews", node: "a", full: false, robots: [{ id: "x" }], released: [] })).toBe(true)
    expect(NodeViews.isNodeViews({ _tag: "NodeViews", node: "a", full: false, robots: [{}], released: [] })).toBe(false)
    expect(NodeViews.isNodeViews({ _tag: "NodeViews", node: "a", robots: [], released: [] })).toBe(false)
    expect(NodeViews.isNodeViews("garbage")).toBe(false)
  })
})
