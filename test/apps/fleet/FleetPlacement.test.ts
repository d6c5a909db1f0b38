/**
 * The fleet with a placement (several nodes share it), over two simulated arms: an arm's link runs
 * only while this node owns the arm, starts when it is given and stops when it is taken away; a
 * command is refused as soon as the node's claim ends, before its link is stopped.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Actor, PubSub, Registry, TestKit } from "../../../src/actors/index.js"
import type { ActorRef } from "../../../src/actors/ActorRef.js"
import * as Fleet from "../../../src/apps/fleet/Fleet.js"
import * as FleetConfig from "../../../src/apps/fleet/FleetConfig.js"
import type * as Placement from "../../../src/links/Placement.js"
import * as RmiSimulator from "../../../src/links/rmi/RmiSimulator.js"
import { Backoff } from "../../../src/supervisors/index.js"
import { eventually } from "../../links/rmi/eventually.js"

const idle = Actor.make<unknown, null>({ name: "session", init: () => null, receive: (s) => s })

describe("the fleet with a placement", () => {
  it.scopedLive("runs an arm's link only while it owns the arm, and refuses commands once its claim ended", () =>
    Effect.gen(function*() {
      const owned = new Set(["arm-1"])
      const managed = new Set<string>()
      const listeners = new Set<(robot: string, owned: boolean) => void>()
      const placement: Placement.Placement = {
        node: "test",
        owns: (robot) => owned.has(robot),
        owned: () => [...owned],
        manage: (robots) => Effect.sync(() => { for (const robot of robots) managed.add(robot) }),
        watch: (listener) => {
          listeners.add(listener)
          return () => void listeners.delete(listener)
        }
      }
      const tell = (robot: string, own: boolean) => {
        for (const listener of listeners) listener(robot, own)
      }
      const sims = [yield* RmiSimulator.make({ port: 0, timeScale: 5 }), yield* RmiSimulator.make({ port: 0, timeScale: 5 })]
      const system = yield* TestKit.system()
      const fleet = yield* Fleet.make({
        settings: FleetConfig.make({
          rmiRobots: sims.map((sim, i) => ({ id: `arm-${i + 1}`, host: "127.0.0.1", port: sim.port })),
          pollHz: 25
        }),
        hub: yield* PubSub.make(),
        system,
        placement,
        linkBackoff: Backoff.exponential({ min: "100 millis", max: "1 second" })
      })
      const link = (robot: string) => Effect.sync(() => Registry.unsafeWhereis(fleet.registry, `robot:${robot}`))
      const connected = (i: number) => Effect.map(sims[i].snapshot, (s) => s.connected)

      // Every configured arm is managed; only the owned one has a link and a session.
      yield* eventually(connected(0), (c) => c)
      expect([...managed].sort()).toEqual(["arm-1", "arm-2"])
      expect(yield* link("arm-2")).toBeUndefined()
      expect(yield* connected(1)).toBe(false)

      // A command reaches the owned arm's link (the controller answers it).
      const holder = { session: "a", user: "a", ref: (yield* system.spawn(idle, { name: "session:a" })) as ActorRef<never> }
      yield* eventually(Effect.map(fleet.state, (s) => s.robots.find((r) => r.id === "arm-1")?.status), (s) => s === "online")
      yield* fleet.acquire("arm-1", holder)
      const reached = yield* Effect.flip(fleet.command("arm-1", holder, { _tag: "Continue" }))
      expect(reached._tag).toBe("CommandRefused")

      // The claim ends by the node's own deadline before any word of it: refused, nothing sent.
      owned.delete("arm-1")
      const refused = yield* Effect.flip(fleet.command("arm-1", holder, { _tag: "Continue" }))
      expect(refused._tag).toBe("RobotOffline")

      // Lost: the link stops and the controller's session ends; given the other arm: its link starts.
      tell("arm-1", false)
      owned.add("arm-2")
      tell("arm-2", true)
      yield* eventually(Effect.all([link("arm-1"), connected(0), connected(1)]), ([l, c0, c1]) => l === undefined && !c0 && c1)
    }))
})
