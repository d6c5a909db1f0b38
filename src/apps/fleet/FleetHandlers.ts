/**
 * The handlers of `FleetRpcs`, as a Layer for the `RpcBridge`, over the {@link Fleet} service.
 *
 * Who calls is read from the request headers the gateway sets (a client cannot override
 * them): {@link SessionHeader} names the session, {@link UserHeader} the authenticated user,
 * {@link RolesHeader} their roles and {@link ExpiresHeader} when their credential ends.
 * Without a session header, the bridge's client id stands in.
 *
 * Each RPC checks the caller's role once per request (never per frame of a stream):
 * `FleetSubscribe` needs `viewer`; `FleetAcquire`, `FleetRenew`, `FleetRelease` and
 * `FleetCommand` (a `Reset` too) need `operator`; `FleetEmergencyStop` needs the
 * {@link AccessPolicy}'s `stopRole` (`STOP_ROLE`, `viewer` by default). A refusal is a typed
 * `Forbidden` (`Unauthorized` when the credential expired meanwhile), counted through
 * `AccessPolicy.onRefused`. Without a roles header (no gateway in front: tests, embedding)
 * nothing is checked. When a {@link SessionDirectory}
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
import * as SlicedScheduler from "../../node/SlicedScheduler.js"
import * as Stream from "effect/Stream"
import {
  FleetRpcs,
  FleetSnapshot,
  FleetSubscribe,
  FleetUpdate,
  Forbidden,
  type RobotView,
  Unauthorized
} from "../../protocol/FleetRpcs.js"
import * as RpcBridge from "../../protocol/RpcBridge.js"
import * as SharedFrame from "../../protocol/SharedFrame.js"
import { Fleet, type Holder } from "./Fleet.js"

/** The request header naming the caller's session. */
export const SessionHeader = "x-session-id"

/** The request header naming the caller's authenticated user. */
export const UserHeader = "x-user"

/** The request header of the caller's roles, comma-separated (`operator`). */
export const RolesHeader = "x-roles"

/** The request header of when the caller's credential expires, ms since the epoch; absent: never. */
export const ExpiresHeader = "x-credential-expires"

/** A role, lowest first: what a user may do (docs/security.md). */
export type Role = "viewer" | "operator" | "admin"

const rank: Record<string, number> = { viewer: 0, operator: 1, admin: 2 }

/** Who may stop, and where refusals are counted. The node provides it; default: viewers may stop. */
export class AccessPolicy extends Context.Tag("fleetvisor/apps/fleet/AccessPolicy")<AccessPolicy, {
  /** The least role of `FleetEmergencyStop` (`STOP_ROLE`). */
  readonly stopRole: Role
  /** Hears each refused request. */
  readonly onRefused?: ((error: Unauthorized | Forbidden) => void) | undefined
}>() {}

/** Whether the caller of `headers` may do what needs `needed`; `undefined` when it may. */
export const refusal = (headers: Headers, needed: Role, now: number): Unauthorized | Forbidden | undefined => {
  const roles = headers[RolesHeader]
  if (roles === undefined) return undefined
  const expires = headers[ExpiresHeader]
  if (expires !== undefined && Number(expires) <= now) return new Unauthorized({ reason: "expired" })
  for (const role of roles.split(",")) if ((rank[role] ?? -1) >= rank[needed]) return undefined
  return new Forbidden({ needed, user: headers[UserHeader] ?? "" })
}

/** Finds the actor of a session, to monitor lease holders. The gateway provides it. */
export class SessionDirectory extends Context.Tag("fleetvisor/apps/fleet/SessionDirectory")<SessionDirectory, {
  readonly lookup: (session: string) => ActorRef<never> | undefined
}>() {
  /** The directory of a gateway whose sessions are registered as `session:<id>` in `registry`. */
  static fromRegistry(registry: Registry.Registry<string, any>): Layer.Layer<SessionDirectory> {
    return Layer.succeed(SessionDirectory, {
      lookup: (session) => Registry.unsafeWhereis(registry, `session:${session}`) as ActorRef<never> | undefined
    })
  }
}

/** The highest role of a roles header, for audit rows. */
const highest = (roles: string): string | undefined => {
  let best: string | undefined
  for (const role of roles.split(",")) if (role in rank && (best === undefined || rank[role]! > rank[best]!)) best = role
  return best
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
    const policy = Option.getOrUndefined(yield* Effect.serviceOption(AccessPolicy))
    const stopRole = policy?.stopRole ?? "viewer"

    const holderOf = (clientId: number, headers: Headers): Holder => {
      const session = headers[SessionHeader] ?? `client-${clientId}`
      const roles = headers[RolesHeader]
      return {
        session,
        user: headers[UserHeader] ?? session,
        ...(roles === undefined ? {} : { role: highest(roles) }),
        ref: directory?.lookup(session)
      }
    }

    /** `effect` if the caller may do what needs `needed`, else the refusal (counted). */
    const guarded = <A, E>(headers: Headers, needed: Role, effect: () => Effect.Effect<A, E>) => {
      const refused = refusal(headers, needed, Date.now())
      if (refused === undefined) return effect()
      policy?.onRefused?.(refused)
      return Effect.fail(refused)
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
      FleetSubscribe: ({ robots }, { headers }) => {
        const refused = refusal(headers, "viewer", Date.now())
        if (refused === undefined) return subscribe(robots)
        policy?.onRefused?.(refused)
        return Stream.fail(refused)
      },
      FleetAcquire: ({ robot, ttlMs }, { clientId, headers }) =>
        guarded(headers, "operator", () => fleet.acquire(robot, holderOf(clientId, headers), ttlMs)),
      FleetRenew: ({ robot, ttlMs }, { clientId, headers }) =>
        guarded(headers, "operator", () => fleet.renew(robot, holderOf(clientId, headers), ttlMs)),
      FleetRelease: ({ robot }, { clientId, headers }) =>
        guarded(headers, "operator", () => fleet.release(robot, holderOf(clientId, headers))),
      FleetCommand: ({ command, robot }, { clientId, headers }) =>
        guarded(headers, "operator", () => fleet.command(robot, holderOf(clientId, headers), command)),
      FleetEmergencyStop: ({ robot }, { clientId, headers }) =>
        guarded(headers, stopRole, () => fleet.emergencyStop(robot, holderOf(clientId, headers)))
    }
  })
)
