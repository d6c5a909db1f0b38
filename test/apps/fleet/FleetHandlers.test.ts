import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import { Actor, ActorSystem } from "../../../src/actors/index.js"
import type { ActorRef } from "../../../src/actors/ActorRef.js"
import * as Exit from "effect/Exit"
import * as FleetApp from "../../../src/apps/fleet/index.js"
import type { FleetEvent } from "../../../src/protocol/FleetRpcs.js"
import { eventually } from "../../links/rmi/eventually.js"
import * as TestClients from "../../protocol/support/TestClients.js"
import * as TestGateway from "../../protocol/support/TestGateway.js"
import * as ArmFleet from "./support/ArmFleet.js"

/** Session actors by the order their sockets were accepted in, as a gateway's sessions own their sockets. */
const sessions = new Map<number, ActorRef<never>>()
/** Each socket's requests are called by its session (the actor set for it here, if any) and its user. */
const callerOf: TestGateway.CallerOf = (index, socket) => ({
  session: `session-${index}`,
  user: `user-${index}`,
  roles: undefined,
  expiresAt: undefined,
  address: "127.0.0.1",
  get owner() {
    return sessions.get(index) as ActorRef<never>
  },
  backlog: () => socket.bufferedAmount
})

/** A simulated arm, the fleet over it, its RPC handlers behind the stand-in gateway. */
const server = ArmFleet.server(callerOf)

describe("FleetHandlers over the RPC bridge", () => {
  it.scopedLive("two clients contend for control: typed errors for the one without the lease; anyone stops", () =>
    Effect.gen(function*() {
      const fleet = yield* FleetApp.Fleet
      yield* eventually(fleet.state, (s) => s.robots.some((r) => r.id === "arm-1" && r.status === "online"))
      const alice = yield* TestClients.connect("json")
      const bob = yield* TestClients.connect("msgpack")

      const events = yield* Queue.unbounded<FleetEvent>()
      yield* bob.rpc.FleetSubscribe({ robots: ["arm-1"] }).pipe(
        Stream.runForEach((event) => Queue.offer(events, event)),
        Effect.forkScoped
      )
      const first = yield* Queue.take(events)
      expect(first._tag).toBe("FleetSnapshot")
      expect(first.robots.map((r) => r.id)).toEqual(["arm-1"])

      const lease = yield* alice.rpc.FleetAcquire({ robot: "arm-1", ttlMs: 10_000 })
      expect(lease.robot).toBe("arm-1")
      expect(yield* Effect.flip(bob.rpc.FleetAcquire({ robot: "arm-1" }))).toMatchObject({ _tag: "ControlHeld" })
      expect(yield* Effect.flip(bob.rpc.FleetCommand({ robot: "arm-1", command: { _tag: "Pause" } }))).toMatchObject({
        _tag: "NotController"
      })
      expect(yield* Effect.flip(alice.rpc.FleetAcquire({ robot: "nope" }))).toMatchObject({ _tag: "UnknownRobot" })
      yield* alice.rpc.FleetCommand({ robot: "arm-1", command: { _tag: "Pause" } })
      yield* alice.rpc.FleetRenew({ robot: "arm-1" })

      const held = yield* Queue.take(events).pipe(
        Effect.repeat({ until: (e) => e.robots.some((r) => r.controlledBy !== undefined && r.status === "paused") })
      )
      expect(held._tag).toBe("FleetUpdate")

      yield* bob.rpc.FleetEmergencyStop({})
      yield* Queue.take(events).pipe(Effect.repeat({ until: (e) => e.robots.some((r) => r.status === "estop") }))

      yield* alice.rpc.FleetRelease({ robot: "arm-1" })
      yield* bob.rpc.FleetAcquire({ robot: "arm-1" })
    }).pipe(Effect.provide(server)))

  it.scopedLive("a lease is released when the holder's session actor dies", () =>
    Effect.gen(function*() {
      const system = yield* ActorSystem.ActorSystem
      const fleet = yield* FleetApp.Fleet
      yield* eventually(fleet.state, (s) => s.robots.some((r) => r.id === "arm-1" && r.status === "online"))
      const alice = yield* TestClients.connect("json")
      const bob = yield* TestClients.connect("json")
      // Alice's socket is the first the stand-in gateway accepted: its caller's actor is this one.
      const aliceSession = yield* system.spawn(
        Actor.make<unknown, null>({ name: "session", init: () => null, receive: (s) => s }),
        { name: "session:alice" }
      )
      sessions.set(0, aliceSession as ActorRef<never>)
      yield* alice.rpc.FleetAcquire({ robot: "arm-1", ttlMs: 60_000 })
      expect(yield* Effect.flip(bob.rpc.FleetAcquire({ robot: "arm-1" }))).toMatchObject({ _tag: "ControlHeld" })
      yield* system.crash(aliceSession, "socket reset")
      yield* eventually(Effect.exit(bob.rpc.FleetAcquire({ robot: "arm-1" })), Exit.isSuccess)
    }).pipe(Effect.provide(server)))
})
