/**
 * The handlers of `FleetRpcs`, as a Layer for the `RpcBridge`, over the {@link Fleet} service.
 *
 * Who calls is the request's `Caller`, which the gateway's session provides through the bridge
 * (nothing of it comes from the wire): its session, its user, their roles, when their credential
 * ends, and the session's actor. Without a caller (no gateway in front: tests, embedding), the
 * bridge's client id stands in for the session and the user.
 *
 * Each RPC checks the caller's role once per request (never per frame of a stream):
 * `FleetSubscribe` needs `viewer`; `FleetAcquire`, `FleetRenew`, `FleetRelease` and
 * `FleetCommand` (a `Reset` too) need `operator`; `FleetEmergencyStop` needs the
 * {@link AccessPolicy}'s `stopRole` (`STOP_ROLE`, `viewer` by default). A refusal is a typed
 * `Forbidden` (`Unauthorized` when the credential expired meanwhile), counted through
 * `AccessPolicy.onRefused`. A caller without roles (no authentication) and no caller at all
 * are not checked. A lease holder's session actor (the caller's `owner`) is monitored, so its
 * leases are released the moment it dies; without a caller, leases only expire.
 *
 * `FleetSubscribe` streams through the bridge's fast path: a snapshot first, then each
 * conflated update of the `fleet/state` actor, encoded once for all subscribers (per subscriber
 * only when it asked for some robots). A subscriber that fell behind and lost an update, or
 * whose `fleet/state` restarted (its ticks count from 1 again), gets a fresh full view instead,
 * so it never misses a robot's latest state.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type { Encoded } from "../../actors/Encoded.js"
import * as PubSub from "../../actors/PubSub.js"
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
import { Caller, type CallerInfo } from "../../protocol/Caller.js"
import * as RpcBridge from "../../protocol/RpcBridge.js"
import * as SharedFrame from "../../protocol/SharedFrame.js"
import { Fleet, type Holder } from "./Fleet.js"

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

/** Whether `caller` may do what needs `needed`; `undefined` when it may (or nothing is checked). */
export const refusal = (caller: CallerInfo | undefined, needed: Role, now: number): Unauthorized | Forbidden | undefined => {
  const roles = caller?.roles
  if (roles === undefined) return undefined
  if (caller!.expiresAt !== undefined && caller!.expiresAt <= now) return new Unauthorized({ reason: "expired" })
  for (const role of roles) if ((rank[role] ?? -1) >= rank[needed]) return undefined
  return new Forbidden({ needed, user: caller!.user })
}

/** The highest of `roles`, for audit rows. */
const highest = (roles: ReadonlyArray<string>): string | undefined => {
  let best: string | undefined
  for (const role of roles) if (role in rank && (best === undefined || rank[role]! > rank[best]!)) best = role
  return best
}

/** The lease holder of a request: its caller, or without one the bridge's client. */
const holderOf = (caller: CallerInfo | undefined, clientId: number): Holder => {
  if (caller === undefined) return { session: `client-${clientId}`, user: `client-${clientId}` }
  const roles = caller.roles
  return {
    session: caller.session,
    user: caller.user,
    ...(roles === undefined ? {} : { role: highest(roles) }),
    ref: caller.owner
  }
}

const currentCaller = Effect.map(Effect.serviceOption(Caller), Option.getOrUndefined)

const frameKey = "fleetvisor/FleetSubscribe"

/**
 * The subscribers of the views take turns in slices of 1 ms: a tick's frame to a hundred
 * dashboards never holds the event loop in one piece, so an emergency stop arriving meanwhile
 * is read and handled between two slices.
 */
const viewScheduler = SlicedScheduler.make({ sliceMs: 1 })

/** The `FleetRpcs` handlers; needs `Fleet`, and reads each request's `Caller` when there is one. */
export const layer = FleetRpcs.toLayer(
  Effect.gen(function*() {
    const fleet = yield* Fleet
    const policy = Option.getOrUndefined(yield* Effect.serviceOption(AccessPolicy))
    const stopRole = policy?.stopRole ?? "viewer"

    /** `effect` for the caller's lease holder if the caller may do what needs `needed`, else the refusal (counted). */
    const guarded = <A, E>(clientId: number, needed: Role, effect: (holder: Holder) => Effect.Effect<A, E>) =>
      Effect.flatMap(currentCaller, (caller): Effect.Effect<A, E | Unauthorized | Forbidden> => {
        const refused = refusal(caller, needed, Date.now())
        if (refused === undefined) return effect(holderOf(caller, clientId))
        policy?.onRefused?.(refused)
        return Effect.fail(refused)
      })

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
            // A restarted fleet/state counts its ticks from 1 again: that is a gap too.
            const restarted = update.tick === 1 && tick > 1
            if (update.tick <= tick && !restarted) continue
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
      FleetSubscribe: ({ robots }) =>
        Stream.unwrap(Effect.map(currentCaller, (caller) => {
          const refused = refusal(caller, "viewer", Date.now())
          if (refused === undefined) return subscribe(robots)
          policy?.onRefused?.(refused)
          return Stream.fail(refused)
        })),
      FleetAcquire: ({ robot, ttlMs }, { clientId }) =>
        guarded(clientId, "operator", (holder) => fleet.acquire(robot, holder, ttlMs)),
      FleetRenew: ({ robot, ttlMs }, { clientId }) =>
        guarded(clientId, "operator", (holder) => fleet.renew(robot, holder, ttlMs)),
      FleetRelease: ({ robot }, { clientId }) =>
        guarded(clientId, "operator", (holder) => fleet.release(robot, holder)),
      FleetCommand: ({ command, robot }, { clientId }) =>
        guarded(clientId, "operator", (holder) => fleet.command(robot, holder, command)),
      FleetEmergencyStop: ({ copyOf, robot }, { clientId }) =>
        guarded(clientId, stopRole, (holder) => fleet.emergencyStop(robot, holder, copyOf))
    }
  })
)
