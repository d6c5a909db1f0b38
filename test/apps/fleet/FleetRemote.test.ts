/**
 * Location transparency (issue #16): two nodes of one fleet in one process, `a` and `b`, joined by
 * an in-memory node network (the kernel's `Remote.memoryNetwork`; the TCP node link is tested in
 * test/cluster/NodeLink.test.ts), an in-memory backplane for their views, and control leases in a
 * real Redis. Node `b` runs a simulated arm; a session on `a` takes its lease, moves it through
 * `b`, and a session on `b` cannot take it meanwhile; a stop sent to `a` reaches the arm on `b`;
 * with `b` unreachable, a command fails as `RobotOffline` and nothing is sent; with `b` cut off
 * while a command is in flight, its outcome is unknown (`outcomeUnknown`) and it is not sent again.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { Actor, Backplane, PubSub, Registry, Remote, TestKit } from "../../../src/actors/index.js"
import type { ActorRef } from "../../../src/actors/ActorRef.js"
import * as Fleet from "../../../src/apps/fleet/Fleet.js"
import * as FleetConfig from "../../../src/apps/fleet/FleetConfig.js"
import * as NodeViews from "../../../src/apps/fleet/NodeViews.js"
import * as ControlLeases from "../../../src/cluster/ControlLeases.js"
import type * as Placement from "../../../src/links/Placement.js"
import * as RmiSimulator from "../../../src/links/rmi/RmiSimulator.js"
import { Backoff } from "../../../src/supervisors/index.js"
import { connect, redisServer } from "../../cluster/fixtures.js"
import { eventually } from "../../links/rmi/eventually.js"

const idle = Actor.make<unknown, null>({ name: "session", init: () => null, receive: (s) => s })

/** A placement that never changes: `node` runs `robots`. */
const fixed = (node: string, robots: ReadonlyArray<string>): Placement.Placement => ({
  node,
  owns: (robot) => robots.includes(robot),
  owned: () => robots,
  manage: () => Effect.void,
  watch: () => () => {},
  isLive: () => true,
  tokenOf: (robot) => (robots.includes(robot) ? "1.7" : undefined)
})


describe("a fleet of two nodes", () => {
  it.scopedLive("commands and stops a robot the other node runs, under one cluster-wide lease", () =>
    Effect.gen(function*() {
      const redis = yield* redisServer
      const sim = yield* RmiSimulator.make({ port: 0, timeScale: 5 })
      const network = Remote.memoryNetwork()
      const backplane = Backplane.memory()
      const node = (id: string, runs: ReadonlyArray<string>) =>
        Effect.gen(function*() {
          const system = yield* TestKit.system()
          const leases = yield* ControlLeases.make({ redis: yield* connect(redis), node: id })
          const fleet = yield* Fleet.make({
            settings: FleetConfig.make({ rmiRobots: [{ id: "arm-1", host: "127.0.0.1", port: sim.port }], pollHz: 25 }),
            hub: yield* PubSub.make({ nodeId: id, backplane, shares: NodeViews.shares }),
            system,
            placement: fixed(id, runs),
            sharedLeases: leases,
            peers: { transport: network.transport(id), others: () => ["a", "b"].filter((other) => other !== id) },
            linkBackoff: Backoff.exponential({ min: "100 millis", max: "1 second" })
          })
          yield* fleet.serveRemote
          const session = (name: string) =>
            Effect.map(system.spawn(idle, { name: `session:${name}` }), (ref) => ({ session: name, user: name, ref: ref as ActorRef<never> }))
          return { fleet, session, system, leases }
        })
      const a = yield* node("a", [])
      const b = yield* node("b", ["arm-1"])
      const stats = Effect.map(sim.stats, (s) => s)

      // a knows the arm from b's views: online.
      yield* eventually(Effect.map(a.fleet.state, (s) => s.robots.find((r) => r.id === "arm-1")?.connection), (c) => c === "online")

      // One lease for the cluster: alice on a holds it, bob on b cannot take it.
      const alice = yield* a.session("alice")
      const bob = yield* b.session("bob")
      // Absurd lease lengths are refused as on a single node, before Redis is asked.
      for (const ttlMs of [-5, 0, Number.NaN, 1e15, 1.5e3 + 0.5]) {
        expect(yield* Effect.flip(a.fleet.acquire("arm-1", alice, ttlMs))).toMatchObject({ _tag: "InvalidRequest", field: "ttlMs" })
      }
      expect(a.leases.counts()).toMatchObject({ granted: 0, held: 0, redisErrors: 0 })
      yield* a.fleet.acquire("arm-1", alice)
      const held = yield* Effect.flip(b.fleet.acquire("arm-1", bob))
      expect(held).toMatchObject({ _tag: "ControlHeld", holder: "alice" })
      // Both nodes' dashboards show who controls it.
      const controller = (fleet: Fleet.FleetService) =>
        Effect.map(fleet.state, (s) => s.robots.find((r) => r.id === "arm-1")?.controlledBy)
      yield* eventually(Effect.all([controller(a.fleet), controller(b.fleet)]), ([onA, onB]) => onA === "alice" && onB === "alice")
      // b runs the arm but bob does not hold it: refused there too.
      expect((yield* Effect.flip(b.fleet.command("arm-1", bob, { _tag: "Pause" })))._tag).toBe("NotController")

      // alice's motion goes through b to the arm's controller.
      const before = (yield* stats).instructionsAccepted
      yield* a.fleet.command("arm-1", alice, { _tag: "MoveJoint", joints: [10, 0, 0, 0, 0, 0], speed: 20 })
      yield* eventually(stats, (s) => s.instructionsAccepted > before)

      // A stop sent to a reaches the arm on b, and latches it on both nodes.
      const aborts = (yield* stats).abortsReceived
      const report = yield* a.fleet.emergencyStop("arm-1", "alice")
      expect(report.reached).toEqual(["arm-1"])
      expect((yield* stats).abortsReceived).toBeGreaterThan(aborts)
      expect(a.fleet.latches.get("arm-1")).toBeDefined()
      expect(b.fleet.latches.get("arm-1")).toBeDefined()
      const stopped = yield* Effect.flip(a.fleet.command("arm-1", alice, { _tag: "MoveJoint", joints: [0, 0, 0, 0, 0, 0], speed: 20 }))
      expect(stopped._tag).toBe("RobotStopped")

      // b unreachable: a command is not sent, and says the robot is offline.
      network.down("b")
      const accepted = (yield* stats).instructionsAccepted
      expect((yield* Effect.flip(a.fleet.command("arm-1", alice, { _tag: "Pause" })))._tag).toBe("RobotOffline")
      network.up("b")
      expect((yield* stats).instructionsAccepted).toBe(accepted)

      // b cut off while the command is in flight (its link is busy): the outcome is unknown, never retried.
      const link = Registry.unsafeWhereis(b.fleet.registry, "robot:arm-1") as ActorRef<never>
      yield* b.system.suspend(link)
      const inFlight = yield* Effect.fork(Effect.flip(a.fleet.command("arm-1", alice, { _tag: "Reset" })))
      yield* Effect.sleep("200 millis")
      network.down("b")
      const unknown = yield* Fiber.join(inFlight)
      expect(unknown).toMatchObject({ _tag: "CommandRefused", code: "outcomeUnknown" })
      network.up("b")
      yield* b.system.resume(link)

      // Released on a: bob on b takes it.
      yield* a.fleet.release("arm-1", alice)
      yield* b.fleet.acquire("arm-1", bob)
      yield* eventually(Effect.all([controller(a.fleet), controller(b.fleet)]), ([onA, onB]) => onA === "bob" && onB === "bob")
      // Held from a and let go there: b, which runs the arm, shows nobody again.
      yield* b.fleet.release("arm-1", bob)
      yield* a.fleet.acquire("arm-1", alice)
      yield* eventually(controller(b.fleet), (onB) => onB === "alice")
      yield* a.fleet.release("arm-1", alice)
      yield* eventually(Effect.all([controller(a.fleet), controller(b.fleet)]), ([onA, onB]) => onA === undefined && onB === undefined)
    }), { timeout: 30_000 })
})
