/**
 * The handlers of `FleetRpcs`, as a Layer for the `RpcBridge`, over the {@link Fleet} service.
 *
 * Who calls is read from the request headers the gateway sets (a client cannot override
 * them): {@link SessionHeader} names the session, {@link UserHeader} the authenticated user.
 * Without a session header, the bridge's client id stands in. When a {@link SessionDirectory}
 * is provided, a lease holder's session actor is monitored, so its leases are released the
 * moment it dies; without one, leases only expire.
 *
 * `FleetSubscribe` streams through the bridge's fast path: a snapshot first, then each
 * conflated update of the `fleet/state` actor, encoded once for all subscribers (per subscriber
 * only when it asked for some robots). A subscriber that fell behind and lost an update gets
 * a fresh full view instead, so it never misses a robot's latest state.
 *
 * @since 0.1.0
 */
import type { Headers } from "@effect/platform/Headers"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type { ActorRef } from "../../actors/ActorRef.js"
import type { Encoded } from "../../actors/Encoded.js"
import * as PubSub from "../../actors/PubSub.js"
import * as Registry from "../../actors/Registry.js"
import * as SlicedScheduler from "../../actors/SlicedScheduler.js"
import { FleetRpcs, FleetSnapshot, FleetSubscribe, FleetUpdate, type RobotView } from "../../protocol/FleetRpcs.js"
import * as RpcBridge from "../../protocol/RpcBridge.js"
import * as SharedFrame from "../../protocol/SharedFrame.js"
import { Fleet, type Holder } from "./Fleet.js"

/** The request header naming the caller's session. */
export const SessionHeader = "x-session-id"

/** The request header naming the caller's authenticated user. */
export const UserHeader = "x-user"

/** Finds the actor of a session, to monitor lease holders. The gateway provides it. */
export class SessionDirectory extends Context.Tag("fleetvisor/apps/fleet/SessionDirectory")<SessionDirectory, {
  readonly lookup: (session: string) => ActorRef<never> | undefined
}>() {
  /** The directory of a gateway whose sessions are registered as `session:<id>` in `registry`. */
  static fromRegistry(registry: Registry.Registry<string, any>): Layer.Layer<SessionDirectory> {
    return Layer.succeed(SessionDirectory, {
      lookup: (session) => Registry.unsafeLookup(registry, `session:${session}`)[0]?.ref as ActorRef<never> | undefined
    })
  }
}

const frameKey = "fleetvisor/FleetSubscribe"

/**
 * The subscribers of the views take turns in slices of 1 ms: a tick's frame to a hundred
 * dashboards never holds the event loop in one piece, so an emergency stop arriving meanwhile
 * is read and handled between two slices.
 */
const viewScheduler = SlicedScheduler.make({ sliceMs: 1 })

/** The `FleetRpcs` handlers; needs `Fleet`, and uses `SessionDirectory` when present. */
export const layer = FleetRpcs.toLayer(
  Effect.gen(function*() {
    const fleet = yield* Fleet
    const directory = Option.getOrUndefined(yield* Effect.serviceOption(SessionDirectory))

    const holderOf = (clientId: number, headers: Headers): Holder => {
      const session = headers[SessionHeader] ?? `client-${clientId}`
      return { session, user: headers[UserHeader] ?? session, ref: directory?.lookup(session) }
    }

    const subscribe = (only: ReadonlyArray<string> | undefined) =>
      RpcBridge.directStream((writer) =>
        Effect.withScheduler(Effect.gen(function*() {
          const wanted = only === undefined ? undefined : new Set(only)
          const pick = (robots: ReadonlyArray<RobotView>) =>
            wanted === undefined ? robots : robots.filter((robot) => wanted.has(robot.id))
          const updates = yield* PubSub.subscribeQueue<Encoded<typeof FleetUpdate.Type>>(fleet.hub, fleet.viewsTopic, {
            bufferSize: 64,
            overflow: "sliding"
          })
          const snapshot = yield* fleet.state
          writer.write(SharedFrame.encodeOnce(FleetSubscribe, [FleetSnapshot.make({ tick: snapshot.tick, robots: pick(snapshot.robots) })]))
          let tick = snapshot.tick
          while (true) {
            const encoded = yield* Queue.take(updates)
            const update = encoded.value
            if (update.tick <= tick) continue
            let ok: boolean
            if (update.tick !== tick + 1) {
              const now = yield* fleet.state
              ok = writer.write(SharedFrame.encodeOnce(FleetSubscribe, [FleetUpdate.make({ tick: now.tick, robots: pick(now.robots) })]))
              tick = Math.max(update.tick, now.tick)
            } else if (wanted === undefined) {
              ok = writer.write(encoded.get(frameKey, (value) => SharedFrame.encodeOnce(FleetSubscribe, [value])))
              tick = update.tick
            } else {
              const robots = pick(update.robots)
              ok = robots.length === 0 || writer.write(SharedFrame.encodeOnce(FleetSubscribe, [FleetUpdate.make({ tick: update.tick, robots })]))
              tick = update.tick
            }
            if (!ok) return
          }
        }), viewScheduler)
      )

    return {
      FleetSubscribe: ({ robots }) => subscribe(robots),
      FleetAcquire: ({ robot, ttlMs }, { clientId, headers }) => fleet.acquire(robot, holderOf(clientId, headers), ttlMs),
      FleetRenew: ({ robot, ttlMs }, { clientId, headers }) => fleet.renew(robot, holderOf(clientId, headers), ttlMs),
      FleetRelease: ({ robot }, { clientId, headers }) => fleet.release(robot, holderOf(clientId, headers)),
      FleetCommand: ({ command, robot }, { clientId, headers }) =>
        fleet.command(robot, holderOf(clientId, headers), command),
      FleetEmergencyStop: ({ robot }, { clientId, headers }) =>
        fleet.emergencyStop(robot, holderOf(clientId, headers).user)
    }
  })
)
