/**
 * `fleet/state`: the actor that owns the fleet's state. It subscribes to every link event
 * (PubSub topic `fleet`), keeps the latest view of each robot, holds the control leases, and
 * 30 times a second publishes the robots that changed, conflated (the latest view of each),
 * as one `FleetUpdate` wrapped in `Encoded` so it is encoded once for every subscriber.
 *
 * Leases: one session holds a robot at a time, until its TTL passes, it releases it, or the
 * session actor dies (the lease is released by a monitor's `Down`, not by anyone remembering).
 *
 * @since 0.1.0
 */
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Actor from "../../actors/Actor.js"
import type { ActorRef, Reply } from "../../actors/ActorRef.js"
import * as Encoded from "../../actors/Encoded.js"
import * as PubSub from "../../actors/PubSub.js"
import type { MonitorRef } from "../../actors/Signal.js"
import * as LinkEvent from "../../links/LinkEvent.js"
import {
  ControlHeld,
  type FleetUpdate,
  type Lease,
  NotController,
  RobotOffline,
  type RobotView,
  UnknownRobot
} from "../../protocol/FleetRpcs.js"

/** The PubSub topic of conflated view updates (`Encoded<FleetUpdate>`). */
export const ViewsTopic = "fleet/views"

/** Who asks: the session (its id, its user, and its actor if the gateway has one). */
export interface Holder {
  readonly session: string
  readonly user: string
  readonly ref?: ActorRef<never> | undefined
}

/** Every robot now, with the tick of the last update published. */
export interface FleetView {
  readonly tick: number
  readonly robots: ReadonlyArray<RobotView>
}

/** A robot the command may go to. */
export interface Authorized {
  readonly robot: string
  readonly kind: LinkEvent.RobotKind
}

/** Takes a lease. */
export interface Acquire {
  readonly _tag: "Acquire"
  readonly robot: string
  readonly holder: Holder
  readonly ttlMs: number
  readonly reply: Reply<Lease, ControlHeld | UnknownRobot>
}

/** Extends a lease. */
export interface Renew {
  readonly _tag: "Renew"
  readonly robot: string
  readonly holder: Holder
  readonly ttlMs: number
  readonly reply: Reply<Lease, NotController | UnknownRobot>
}

/** Gives a lease back. */
export interface Release {
  readonly _tag: "Release"
  readonly robot: string
  readonly holder: Holder
  readonly reply: Reply<void, NotController | UnknownRobot>
}

/** Checks that `holder` may command `robot` now. */
export interface Authorize {
  readonly _tag: "Authorize"
  readonly robot: string
  readonly holder: Holder
  readonly reply: Reply<Authorized, NotController | UnknownRobot | RobotOffline>
}

/** Whether a robot is known (for the emergency stop of a robot without a live link). */
export interface Lookup {
  readonly _tag: "Lookup"
  readonly robot: string
  readonly reply: Reply<LinkEvent.RobotKind | undefined>
}

/** The operator cleared a stop or a fault (Reset, Resume): the robot's `estop` status and alarms go. */
export interface Cleared {
  readonly _tag: "Cleared"
  readonly robot: string
}

/** Every robot now. */
export interface GetState {
  readonly _tag: "GetState"
  readonly reply: Reply<FleetView>
}

class Flush {
  readonly _tag = "Flush"
}

/** What the control actor accepts: requests, and the link events it subscribes to. */
export type FleetStateMessage =
  | Acquire
  | Renew
  | Release
  | Authorize
  | Lookup
  | Cleared
  | GetState
  | Flush
  | LinkEvent.LinkEvent

/** Options of the control actor. */
export interface FleetStateOptions {
  readonly hub: PubSub.PubSub
  /** Arms known from the configuration: listed (disconnected) before their first connection. */
  readonly arms: ReadonlyArray<string>
  /** View updates per second; default 30. */
  readonly updateHz?: number | undefined
}

interface LeaseRecord {
  readonly holder: Holder
  expiresAt: number
  monitor: MonitorRef | undefined
}

interface RobotRecord {
  readonly id: string
  readonly kind: LinkEvent.RobotKind
  connected: boolean
  down: "offline" | "disconnected"
  estop: boolean
  alarms: Map<string, { code: string; level: "warning" | "fatal"; message: string }>
  arm: LinkEvent.ArmTelemetry | undefined
  agv: { state?: LinkEvent.AgvTelemetry["state"]; visualization?: LinkEvent.AgvTelemetry["visualization"] }
  /** When the latest telemetry arrived, ms since the epoch. */
  heardAt: number | undefined
  /** The latest AGV message's header timestamp (ISO 8601), parsed only when a view is made. */
  stamp: string | undefined
}

interface State {
  readonly robots: Map<string, RobotRecord>
  readonly leases: Map<string, LeaseRecord>
  readonly dirty: Set<string>
  tick: number
}

const jointList = (joints: LinkEvent.ArmTelemetry["joints"]): Array<number> =>
  [joints.J1, joints.J2, joints.J3, joints.J4, joints.J5, joints.J6, joints.J7, joints.J8, joints.J9].filter(
    (j): j is number => j !== undefined
  )

const updatedAt = (stamp: string | undefined, heardAt: number): number => {
  const said = stamp === undefined ? NaN : Date.parse(stamp)
  return Number.isNaN(said) ? heardAt : said
}

const clampPercent = (n: number) => Math.max(0, Math.min(100, n))

/** The dashboard's view of one robot. */
const viewOf = (record: RobotRecord, lease: LeaseRecord | undefined, now: number): RobotView => {
  const alarms = [...record.alarms.values()]
  const fatal = alarms.some((a) => a.level === "fatal")
  const controlledBy = lease !== undefined && lease.expiresAt > now ? lease.holder.user : undefined
  const common = {
    id: record.id,
    alarms,
    ...(controlledBy === undefined ? {} : { controlledBy }),
    ...(record.heardAt === undefined ? {} : { updatedAt: updatedAt(record.stamp, record.heardAt) })
  }
  if (record.kind === "arm") {
    const t = record.arm
    const status = record.estop
      ? "estop"
      : !record.connected
      ? record.down
      : fatal
      ? "fault"
      : t?.programStatus === "paused"
      ? "paused"
      : "online"
    return {
      kind: "arm",
      ...common,
      status,
      position: t === undefined
        ? { x: 0, y: 0, z: 0, w: 0, p: 0, r: 0 }
        : { x: t.position.X, y: t.position.Y, z: t.position.Z, w: t.position.W, p: t.position.P, r: t.position.R },
      joints: t === undefined ? [] : jointList(t.joints)
    }
  }
  const s = record.agv.state
  const position = record.agv.visualization?.agvPosition ?? s?.agvPosition
  const status = record.estop
    ? "estop"
    : !record.connected
    ? record.down
    : fatal
    ? "fault"
    : s?.paused === true
    ? "paused"
    : "online"
  return {
    kind: "agv",
    ...common,
    status,
    ...(s === undefined ? {} : { battery: clampPercent(s.batteryState.batteryCharge) }),
    pose: position === undefined ? { x: 0, y: 0, theta: 0 } : { x: position.x, y: position.y, theta: position.theta }
  }
}

/** Answers a request with an error and keeps the state. */
const refuse = <E, S>(reply: Reply<any, E>, error: E, state: S): S => {
  reply.fail(error)
  return state
}

const newRecord = (id: string, kind: LinkEvent.RobotKind): RobotRecord => ({
  id,
  kind,
  connected: false,
  down: "disconnected",
  estop: false,
  alarms: new Map(),
  arm: undefined,
  agv: {},
  heardAt: undefined,
  stamp: undefined
})

const leaseOf = (robot: string, lease: LeaseRecord): Lease => ({
  robot,
  expiresAt: DateTime.unsafeMake(lease.expiresAt)
})

/** The control actor's behaviour; see the module documentation. */
export const make = (options: FleetStateOptions): Actor.Behaviour<FleetStateMessage, State> => {
  const period = Duration.millis(1000 / (options.updateHz ?? 30))

  const live = (state: State, robot: string, now: number): LeaseRecord | undefined => {
    const lease = state.leases.get(robot)
    return lease !== undefined && lease.expiresAt > now ? lease : undefined
  }

  const record = (state: State, robot: string, kind: LinkEvent.RobotKind): RobotRecord => {
    let r = state.robots.get(robot)
    if (r === undefined) {
      r = newRecord(robot, kind)
      state.robots.set(robot, r)
    }
    state.dirty.add(robot)
    return r
  }

  const onLink = (state: State, event: LinkEvent.LinkEvent): State => {
    switch (event._tag) {
      case "LinkUp": {
        const r = record(state, event.robot, event.kind)
        r.connected = true
        r.alarms.delete("LINK-SILENT")
        return state
      }
      case "LinkDown": {
        const r = record(state, event.robot, event.kind)
        r.connected = false
        r.down = event.status
        return state
      }
      case "Alarm":
        record(state, event.robot, event.kind).alarms.set(event.code, {
          code: event.code,
          level: event.level,
          message: event.message
        })
        return state
      case "EmergencyStopped":
        record(state, event.robot, event.kind).estop = true
        return state
      case "ArmTelemetry": {
        const r = record(state, event.robot, "arm")
        r.arm = event
        r.connected = true
        r.heardAt = event.at
        return state
      }
      case "AgvTelemetry": {
        const r = record(state, event.robot, "agv")
        r.heardAt = event.at
        r.stamp = event.visualization?.timestamp ?? event.state?.timestamp
        if (event.visualization !== undefined) r.agv.visualization = event.visualization
        if (event.state !== undefined) {
          r.agv.state = event.state
          if (event.state.agvPosition !== undefined) r.agv.visualization = undefined
          const kept = [...r.alarms.values()].filter((a) => a.code === "LINK-SILENT")
          r.alarms = new Map(kept.map((a) => [a.code, a]))
          for (const e of event.state.errors) {
            r.alarms.set(e.errorType, {
              code: e.errorType,
              level: e.errorLevel === "FATAL" ? "fatal" : "warning",
              message: e.errorDescription ?? e.errorType
            })
          }
        }
        return state
      }
    }
  }

  const releaseLease = (state: State, robot: string, ctx: Actor.ActorContext<FleetStateMessage>) => {
    const lease = state.leases.get(robot)
    if (lease === undefined) return
    state.leases.delete(robot)
    if (lease.monitor !== undefined && ![...state.leases.values()].some((l) => l.monitor === lease.monitor)) {
      ctx.demonitor(lease.monitor)
    }
    state.dirty.add(robot)
  }

  return Actor.make<FleetStateMessage, State>({
    name: "fleet_state",
    init: (ctx) =>
      Effect.gen(function*() {
        yield* PubSub.subscribe(options.hub, LinkEvent.FleetTopic, ctx.self, { bufferSize: 8192, overflow: "sliding" })
        yield* Effect.forkScoped(
          Effect.repeat(Effect.sync(() => ctx.self.unsafeTellUrgent(new Flush())), Schedule.fixed(period))
        )
        const state: State = { robots: new Map(), leases: new Map(), dirty: new Set(), tick: 0 }
        for (const arm of options.arms) state.robots.set(arm, newRecord(arm, "arm"))
        return state
      }),
    receive: (state, message, ctx) => {
      const now = Date.now()
      switch (message._tag) {
        case "Acquire": {
          const { holder, robot } = message
          if (!state.robots.has(robot)) return refuse(message.reply, new UnknownRobot({ robot }), state)
          const current = live(state, robot, now)
          if (current !== undefined && current.holder.session !== holder.session) {
            message.reply.fail(new ControlHeld({ robot, holder: current.holder.user }))
            return state
          }
          releaseLease(state, robot, ctx)
          const existing = [...state.leases.values()].find((l) => l.holder.session === holder.session)
          const monitor = existing?.monitor ?? (holder.ref === undefined ? undefined : ctx.monitor(holder.ref))
          const lease: LeaseRecord = { holder, expiresAt: now + message.ttlMs, monitor }
          state.leases.set(robot, lease)
          state.dirty.add(robot)
          message.reply.succeed(leaseOf(robot, lease))
          return state
        }
        case "Renew": {
          const { holder, robot } = message
          if (!state.robots.has(robot)) return refuse(message.reply, new UnknownRobot({ robot }), state)
          const lease = live(state, robot, now)
          if (lease === undefined || lease.holder.session !== holder.session) {
            message.reply.fail(new NotController({ robot }))
            return state
          }
          lease.expiresAt = now + message.ttlMs
          message.reply.succeed(leaseOf(robot, lease))
          return state
        }
        case "Release": {
          const { holder, robot } = message
          if (!state.robots.has(robot)) return refuse(message.reply, new UnknownRobot({ robot }), state)
          const lease = live(state, robot, now)
          if (lease === undefined || lease.holder.session !== holder.session) {
            message.reply.fail(new NotController({ robot }))
            return state
          }
          releaseLease(state, robot, ctx)
          message.reply.succeed()
          return state
        }
        case "Authorize": {
          const { holder, robot } = message
          const r = state.robots.get(robot)
          if (r === undefined) return refuse(message.reply, new UnknownRobot({ robot }), state)
          const lease = live(state, robot, now)
          if (lease === undefined || lease.holder.session !== holder.session) {
            message.reply.fail(new NotController({ robot }))
          } else if (!r.connected) {
            message.reply.fail(new RobotOffline({ robot }))
          } else {
            message.reply.succeed({ robot, kind: r.kind })
          }
          return state
        }
        case "Lookup":
          message.reply.succeed(state.robots.get(message.robot)?.kind)
          return state
        case "Cleared": {
          const r = state.robots.get(message.robot)
          if (r !== undefined) {
            r.estop = false
            if (r.kind === "arm") r.alarms.clear()
            state.dirty.add(message.robot)
          }
          return state
        }
        case "GetState":
          message.reply.succeed({
            tick: state.tick,
            robots: [...state.robots.values()].map((r) => viewOf(r, state.leases.get(r.id), now))
          })
          return state
        case "Flush": {
          for (const [robot, lease] of state.leases) {
            if (lease.expiresAt <= now) releaseLease(state, robot, ctx)
          }
          if (state.dirty.size === 0) return state
          state.tick++
          const robots: Array<RobotView> = []
          for (const id of state.dirty) {
            const r = state.robots.get(id)
            if (r !== undefined) robots.push(viewOf(r, state.leases.get(id), now))
          }
          state.dirty.clear()
          const update: typeof FleetUpdate.Type = { _tag: "FleetUpdate", tick: state.tick, robots }
          return Effect.as(PubSub.broadcast(options.hub, ViewsTopic, Encoded.make(update)), state)
        }
        default:
          return onLink(state, message)
      }
    },
    onSignal: (state, signal, ctx) => {
      if (signal._tag !== "Down") return state
      for (const [robot, lease] of [...state.leases]) {
        if (lease.monitor?.id === signal.monitor.id) {
          lease.monitor = undefined
          releaseLease(state, robot, ctx)
        }
      }
      return state
    }
  })
}
