/**
 * `fleet/state`: the actor that keeps the fleet's view. It subscribes to every link event
 * (PubSub topic `fleet`), keeps the latest view of each robot, grants and ends the control
 * leases, and 30 times a second publishes the robots that changed, conflated (the latest view of
 * each), as one `FleetUpdate` wrapped in `Encoded` so it is encoded once for every subscriber.
 *
 * Samples are not messages: an AGV's `visualization`s and an arm's polls are written to the
 * fleet's sample columns (`samples`), and at each tick this actor sweeps every robot's slot,
 * marks the robots whose sequence number moved as changed, and takes their pose (an arm's
 * position and joints) from the columns when it is newer than what their events said.
 *
 * What must survive a crash of this actor is not kept in it:
 * - the leases are in a table the fleet service owns ({@link Leases}); a restarted `state`
 *   finds them there and monitors each holder's session again;
 * - the emergency-stop latches are in the fleet's latch table, read when a view is made;
 * - the robots it has heard of are written to the fleet's roster, from which a restarted
 *   `state` lists them again;
 * - liveness is rebuilt from the sources of truth: on start it asks every running link to
 *   announce itself ({@link LinkEvent.Announce}), so within a moment every live robot is
 *   online and commandable again.
 *
 * With a placement (several nodes share the fleet, `NodeViews.ts`), it shares the views of the
 * robots this node runs with the other nodes at each tick, answers resyncs with all of them, and
 * asks for the others' when it starts. It keeps the latest view of every robot another node
 * runs: `GetState` and the snapshots list every robot of the cluster once, and a view from
 * another node goes to this node's subscribers as soon as it arrives, as an update of this
 * node's own numbering (one tick more), so a subscriber's ticks stay one sequence.
 *
 * Leases: one session holds a robot at a time, until its TTL passes, it releases it, or the
 * session actor dies (the lease ends by a monitor's `Down`, not by anyone remembering). A lease
 * that ends by its TTL or its holder's death is reported to `onLeaseLost` (the fleet pauses the
 * robot, per kind). A request this actor cannot handle is answered with an error, never by a
 * crash that would take every lease's monitor with it.
 *
 * @since 0.1.0
 */
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schedule from "effect/Schedule"
import * as Actor from "../../actors/Actor.js"
import type { Reply } from "../../actors/ActorRef.js"
import * as Encoded from "../../actors/Encoded.js"
import * as PubSub from "../../actors/PubSub.js"
import * as Registry from "../../actors/Registry.js"
import type { MonitorRef } from "../../actors/Signal.js"
import * as LinkEvent from "../../links/LinkEvent.js"
import type * as Placement from "../../links/Placement.js"
import * as ArmSample from "../../links/rmi/ArmSample.js"
import * as SampleColumns from "../../links/SampleColumns.js"
import type { Latch } from "../../links/StopLatch.js"
import {
  ControlHeld,
  type FleetUpdate,
  InvalidRequest,
  type Lease,
  NotController,
  RobotOffline,
  type RobotView,
  UnknownRobot
} from "../../protocol/FleetRpcs.js"
import * as Leases from "./Leases.js"
import * as NodeViews from "./NodeViews.js"
import type { StopLatches } from "./StopLatches.js"

export type { Holder } from "./Leases.js"

/** The PubSub topic of conflated view updates (`Encoded<FleetUpdate>`). */
export const ViewsTopic = "fleet/views"

/** How long an AGV may leave a stop unconfirmed before its view carries the fatal alarm `STOP-UNCONFIRMED`. */
export const stopConfirmDeadlineMs = 10_000

/** Every robot now, with the tick of the last update published. */
export interface FleetView {
  readonly tick: number
  readonly robots: ReadonlyArray<RobotView>
}

/** A robot the command may go to. */
export interface Authorized {
  readonly robot: string
  readonly kind: LinkEvent.RobotKind
  /** The node that runs the robot when another node does, with its lease token if it told it. */
  readonly owner?: { readonly node: string; readonly token: string | undefined } | undefined
}

/** Takes a lease. */
export interface Acquire {
  readonly _tag: "Acquire"
  readonly robot: string
  readonly holder: Leases.Holder
  readonly ttlMs: number
  readonly reply: Reply<Lease, ControlHeld | UnknownRobot | InvalidRequest>
}

/** Extends a lease. */
export interface Renew {
  readonly _tag: "Renew"
  readonly robot: string
  readonly holder: Leases.Holder
  readonly ttlMs: number
  readonly reply: Reply<Lease, NotController | UnknownRobot | InvalidRequest>
}

/** Gives a lease back. */
export interface Release {
  readonly _tag: "Release"
  readonly robot: string
  readonly holder: Leases.Holder
  readonly reply: Reply<void, NotController | UnknownRobot>
}

/** Checks that `holder` may command `robot` now. */
export interface Authorize {
  readonly _tag: "Authorize"
  readonly robot: string
  readonly holder: Leases.Holder
  readonly reply: Reply<Authorized, NotController | UnknownRobot | RobotOffline>
}

/** Every robot now. */
export interface GetState {
  readonly _tag: "GetState"
  readonly reply: Reply<FleetView>
}

class Flush {
  readonly _tag = "Flush"
}

/** The end of a tick's gathering: what was gathered goes to this node's dashboards as one frame. */
class Gathered {
  readonly _tag = "Gathered"
}

/** A resync asked for the views of every robot this node runs. */
class Resend {
  readonly _tag = "Resend"
}

/** Something heard on the nodes' topic that is not a `NodeViews`. */
class Malformed {
  readonly _tag = "Malformed"
}

/** What the actor accepts: requests, the link events it subscribes to, and other nodes' views. */
export type FleetStateMessage =
  | Acquire
  | Renew
  | Release
  | Authorize
  | GetState
  | Flush
  | Gathered
  | Resend
  | Malformed
  | NodeViews.NodeViews
  | LinkEvent.LinkEvent

/** Options of the actor. */
export interface FleetStateOptions {
  readonly hub: PubSub.PubSub
  /** Arms known from the configuration: listed (disconnected) before their first connection. */
  readonly arms: ReadonlyArray<string>
  /** Where arms stand on the map (`FLEET_ARM_BASES`), shown in their views. */
  readonly armBases?: ReadonlyMap<string, { readonly x: number; readonly y: number }> | undefined
  /** The lease table, owned above this actor. */
  readonly leases: Leases.Leases
  /** The emergency-stop latches, owned above this actor. */
  readonly latches: Pick<StopLatches, "get" | "all">
  /** Every robot the fleet has heard of, kept above this actor: a restarted `state` lists them again. */
  readonly roster: Map<string, LinkEvent.RobotKind>
  /** Where the robot links are registered (`robot:<id>`, `agv:<id>`): asked to announce themselves at start. */
  readonly registry?: Registry.Registry<string, any> | undefined
  /** The least and most `ttlMs` a lease may be given for; default 1 s to 10 min. */
  readonly ttlBounds?: { readonly min: number; readonly max: number } | undefined
  /** Told when any lease ends: released, expired, or its holder gone. */
  readonly onLeaseEnded?: ((lease: Leases.LeaseRecord) => void) | undefined
  /** Told when a lease ends by its TTL or by its holder's death (not by a release). */
  readonly onLeaseLost?: ((lease: Leases.LeaseRecord, kind: LinkEvent.RobotKind, why: Leases.LeaseLost) => void) | undefined
  /** View updates per second; default 30. */
  readonly updateHz?: number | undefined
  /** The fleet's sample columns, swept at each tick. */
  readonly samples?: SampleColumns.Directory | undefined
  /** Which robots this node runs, when several nodes share the fleet: their views are shared with the others. */
  readonly placement?: Placement.Placement | undefined
  /**
   * With a placement, how long after each tick the node gathers the other nodes' views of the
   * same tick (every node ticks on the same wall-clock grid) before sending its dashboards one
   * frame of all, ms; default 5. Views arriving later go out at once, each in a frame of its own.
   * 0: every node's views in frames of their own, as they arrive.
   */
  readonly gatherMs?: number | undefined
}

type AlarmView = { code: string; level: "warning" | "fatal"; message: string }

interface RobotRecord {
  readonly id: string
  readonly kind: LinkEvent.RobotKind
  connected: boolean
  down: "offline" | "disconnected"
  alarms: Map<string, AlarmView>
  arm: LinkEvent.ArmTelemetry | undefined
  agv: { state?: LinkEvent.AgvTelemetry["state"]; visualization?: LinkEvent.AgvTelemetry["visualization"] }
  /** When the latest telemetry arrived, ms since the epoch. */
  heardAt: number | undefined
  /** The latest AGV message's header timestamp (ISO 8601), parsed only when a view is made. */
  stamp: string | undefined
  /** The robot's slot in the sample columns, once it has one. */
  slot: number | undefined
  /** The slot's sequence number at the last sweep. */
  seen: number
}

interface State {
  readonly robots: Map<string, RobotRecord>
  readonly dirty: Set<string>
  /** The monitor of each lease-holding session. */
  readonly monitors: Map<string, MonitorRef>
  /** AGVs whose view already shows `STOP-UNCONFIRMED`. */
  readonly overdue: Set<string>
  tick: number
  /** The views other nodes sent of the robots they run. */
  readonly remote: NodeViews.RemoteViews
  /** The robots the other nodes were last told this node runs. */
  readonly shared: Set<string>
  /** The nodes heard from since this actor started. */
  readonly heard: Set<string>
  /** The lease token last sent to the other nodes for each robot this node runs. */
  readonly sentTokens: Map<string, string>
  /** The control leases of this node's sessions last told the other nodes (`robot user` lines, sorted). */
  sentHolders: string
  /** The views of this tick's frame while it gathers the other nodes' (see `gatherMs`). */
  gathering: Map<string, RobotView> | undefined
}

const jointList = (joints: LinkEvent.ArmTelemetry["joints"]): Array<number> =>
  [joints.J1, joints.J2, joints.J3, joints.J4, joints.J5, joints.J6, joints.J7, joints.J8, joints.J9].filter(
    (j): j is number => j !== undefined
  )

const updatedAt = (stamp: string | undefined, heardAt: number): number => {
  const said = stamp === undefined ? NaN : Date.parse(stamp)
  return Number.isNaN(said) ? heardAt : said
}

const { Field } = SampleColumns

/** The robot's latest sample, when the columns hold one newer than its latest telemetry event. */
const newerSample = (record: RobotRecord, sample: Float64Array | undefined): Float64Array | undefined =>
  sample !== undefined && !(record.heardAt !== undefined && record.heardAt > sample[Field.at]) ? sample : undefined

/** When a sample was taken, ms since the epoch: an AGV's header timestamp; an arm's clock is the controller's own, so when it was read. */
const sampledAt = (sample: Float64Array): number =>
  sample[Field.kind] === 0 || Number.isNaN(sample[Field.clock]) ? sample[Field.at] : sample[Field.clock]

const clampPercent = (n: number) => Math.max(0, Math.min(100, n))

const overdue = (latch: Latch | undefined, now: number) =>
  latch !== undefined && !latch.confirmed && now - latch.unconfirmedSince >= stopConfirmDeadlineMs

/** The dashboard's view of one robot. */
const viewOf = (
  record: RobotRecord,
  lease: Leases.LeaseRecord | undefined,
  latch: Latch | undefined,
  now: number,
  base: { readonly x: number; readonly y: number } | undefined,
  sample: Float64Array | undefined
): RobotView => {
  const newer = newerSample(record, sample)
  const alarms = [...record.alarms.values()]
  if (overdue(latch, now)) {
    alarms.push({
      code: "STOP-UNCONFIRMED",
      level: "fatal",
      message: `the AGV has not confirmed the stop for ${Math.round((now - latch!.unconfirmedSince) / 1000)} s: it may never have arrived`
    })
  }
  const fatal = alarms.some((a) => a.level === "fatal")
  const controlledBy = lease !== undefined && lease.expiresAt > now ? lease.holder.user : undefined
  const paused = record.kind === "arm" ? record.arm?.programStatus === "paused" : record.agv.state?.paused === true
  const connection = record.connected ? "online" as const : record.down === "offline" ? "offline" as const : "broken" as const
  const common = {
    id: record.id,
    alarms,
    status: latch !== undefined
      ? "estop" as const
      : !record.connected
      ? record.down
      : fatal
      ? "fault" as const
      : paused
      ? "paused" as const
      : "online" as const,
    connection,
    safety: latch !== undefined ? "stopped" as const : fatal ? "fault" as const : paused ? "paused" as const : "normal" as const,
    ...(controlledBy === undefined ? {} : { controlledBy }),
    ...(newer !== undefined
      ? { updatedAt: sampledAt(newer) }
      : record.heardAt === undefined
      ? {}
      : { updatedAt: updatedAt(record.stamp, record.heardAt) }),
    ...(latch === undefined ? {} : { stop: { since: latch.since, by: latch.by, confirmed: latch.confirmed } })
  }
  if (record.kind === "arm") {
    const t = record.arm
    const polled = newer !== undefined && newer[Field.kind] === 0 ? newer : undefined
    return {
      kind: "arm",
      ...common,
      ...(t === undefined ? {} : { reportedSafety: { servoReady: t.servoReady, tpMode: t.tpMode } }),
      position: polled !== undefined
        ? { x: polled[Field.x], y: polled[Field.y], z: polled[Field.z], w: polled[Field.w], p: polled[Field.p], r: polled[Field.r] }
        : t === undefined
        ? { x: 0, y: 0, z: 0, w: 0, p: 0, r: 0 }
        : { x: t.position.X, y: t.position.Y, z: t.position.Z, w: t.position.W, p: t.position.P, r: t.position.R },
      joints: polled !== undefined ? jointList(ArmSample.jointsOf(polled)) : t === undefined ? [] : jointList(t.joints),
      ...(base === undefined ? {} : { base })
    }
  }
  const s = record.agv.state
  const position = newer !== undefined && newer[Field.poseKnown] === 1
    ? { x: newer[Field.x], y: newer[Field.y], theta: newer[Field.theta] }
    : record.agv.visualization?.agvPosition ?? s?.agvPosition
  return {
    kind: "agv",
    ...common,
    ...(s === undefined ? {} : {
      battery: clampPercent(s.batteryState.batteryCharge),
      reportedSafety: { eStop: s.safetyState.eStop, fieldViolation: s.safetyState.fieldViolation }
    }),
    pose: position === undefined ? { x: 0, y: 0, theta: 0 } : { x: position.x, y: position.y, theta: position.theta },
    poseKnown: position !== undefined,
    ...(s === undefined || (s.nodeStates.length === 0 && s.edgeStates.length === 0) ? {} : { order: orderOf(s) })
  }
}

/** What is left of an AGV's order, from its state. */
const orderOf = (state: NonNullable<LinkEvent.AgvTelemetry["state"]>) => ({
  orderId: state.orderId,
  nodes: state.nodeStates.map(({ nodeId, nodePosition, released, sequenceId }) => ({
    nodeId,
    sequenceId,
    released,
    ...(nodePosition === undefined ? {} : { x: nodePosition.x, y: nodePosition.y })
  })),
  edges: state.edgeStates.map(({ edgeId, released, sequenceId }) => ({ edgeId, sequenceId, released }))
})

const newRecord = (id: string, kind: LinkEvent.RobotKind): RobotRecord => ({
  id,
  kind,
  connected: false,
  down: "disconnected",
  alarms: new Map(),
  arm: undefined,
  agv: {},
  heardAt: undefined,
  stamp: undefined,
  slot: undefined,
  seen: 0
})

const leaseOf = (lease: Leases.LeaseRecord): Lease => ({
  robot: lease.robot,
  expiresAt: DateTime.unsafeMake(lease.expiresAt)
})

/** The default bounds of a lease's `ttlMs`: 1 second to 10 minutes. */
export const defaultTtlBounds = { min: 1_000, max: 600_000 } as const

/** Why `ttlMs` cannot be a lease's length within `bounds`; `undefined` when it can. */
export const checkLeaseTtl = (
  bounds: { readonly min: number; readonly max: number },
  ttlMs: number
): InvalidRequest | undefined =>
  Number.isInteger(ttlMs) && ttlMs >= bounds.min && ttlMs <= bounds.max
    ? undefined
    : new InvalidRequest({ field: "ttlMs", reason: `a lease lasts ${bounds.min} to ${bounds.max} ms, not ${ttlMs}` })

/** The actor's behaviour; see the module documentation. */
export const make = (options: FleetStateOptions): Actor.Behaviour<FleetStateMessage, State> => {
  const period = Duration.millis(1000 / (options.updateHz ?? 30))
  const { latches, leases, roster, samples } = options
  const bounds = options.ttlBounds ?? defaultTtlBounds

  const scratch = new Float64Array(SampleColumns.fieldCount)
  const placement = options.placement
  const runs = (robot: string) => placement === undefined || placement.owns(robot)
  const isLive = (node: string) => placement?.isLive?.(node) ?? true

  /** The robot's latest sample, read into a scratch array good until the next call; undefined when it has none. */
  const sampleOf = (record: RobotRecord): Float64Array | undefined => {
    if (samples === undefined) return undefined
    if (record.slot === undefined) record.slot = samples.slotOf(record.id)
    return record.slot !== undefined && SampleColumns.read(samples.columns, record.slot, scratch) > 0 ? scratch : undefined
  }

  /** Marks the robots whose slot was written since the last sweep as changed. */
  const sweep = (state: State) => {
    if (samples === undefined) return
    for (const record of state.robots.values()) {
      if (record.slot === undefined) record.slot = samples.slotOf(record.id)
      if (record.slot === undefined) continue
      const version = SampleColumns.version(samples.columns, record.slot)
      if (version !== record.seen && (version & 1) === 0) {
        record.seen = version
        state.dirty.add(record.id)
      }
    }
  }

  /** The view of the robot now. */
  const view = (record: RobotRecord, now: number, remote?: NodeViews.RemoteViews): RobotView => {
    const own = viewOf(record, leases.get(record.id), latches.get(record.id), now, options.armBases?.get(record.id), sampleOf(record))
    const holder = own.controlledBy === undefined ? remote?.holderOf(record.id) : undefined
    return holder === undefined ? own : { ...own, controlledBy: holder }
  }

  /** This node's sessions' control leases, as told to the other nodes. */
  const holdersOf = (now: number): Record<string, string> => {
    const held: Record<string, string> = {}
    for (const [robot, lease] of leases) if (lease.expiresAt > now) held[robot] = lease.holder.user
    return held
  }
  const holdersKey = (held: Record<string, string>) => Object.entries(held).map(([robot, user]) => `${robot} ${user}`).sort().join("\n")

  /**
   * Another node's view of the robot, stopped if this node holds a latch of it: a stop sent from
   * here shows here at once, also while Redis (and the other node's views) cannot reach us.
   */
  const remoteView = (state: State, robot: string, now = Date.now()): RobotView | undefined => {
    let remote = state.remote.view(robot)
    if (remote === undefined) return undefined
    // A session of this node holds the robot: the node that runs it does not know whose lease it is.
    const holder = Leases.live(leases, robot, now)?.holder.user ?? state.remote.holderOf(robot)
    if (holder !== undefined && remote.controlledBy === undefined) remote = { ...remote, controlledBy: holder }
    const latch = latches.get(robot)
    if (latch === undefined || remote.stop !== undefined) return remote
    return {
      ...remote,
      status: "estop",
      safety: "stopped",
      stop: { since: latch.since, by: latch.by, confirmed: latch.confirmed }
    }
  }

  /** Whether the robot is known here: it has a record, or another node sent its view. */
  const known = (state: State, robot: string) => state.robots.has(robot) || state.remote.view(robot) !== undefined

  /** What this node shows of the robot: its own view where it runs it, or where no other node sent one. */
  const shown = (state: State, robot: string, now: number): RobotView | undefined => {
    const local = state.robots.get(robot)
    if (local !== undefined && runs(robot)) return view(local, now, state.remote)
    return remoteView(state, robot, now) ?? (local === undefined ? undefined : view(local, now, state.remote))
  }

  /** Broadcasts an update of this node's numbering to its subscribers. */
  const publishUpdate = (state: State, robots: Array<RobotView>): Effect.Effect<number> => {
    state.tick++
    const update: typeof FleetUpdate.Type = { _tag: "FleetUpdate", tick: state.tick, robots }
    return PubSub.broadcast(options.hub, ViewsTopic, Encoded.make(update))
  }

  const gatherMs = placement === undefined ? 0 : Math.max(0, options.gatherMs ?? 5)

  /**
   * This tick's frame to this node's dashboards: at once on a single node; with a placement, after
   * `gatherMs`, with the other nodes' views of the same tick that arrived meanwhile.
   */
  const gather = (state: State, ctx: Actor.ActorContext<FleetStateMessage>, robots: Array<RobotView>): Effect.Effect<unknown> => {
    if (gatherMs === 0) return robots.length === 0 ? Effect.void : publishUpdate(state, robots)
    if (state.gathering === undefined) {
      state.gathering = new Map()
      setTimeout(() => ctx.self.unsafeTellUrgent(new Gathered()), gatherMs)
    }
    for (const view of robots) state.gathering.set(view.id, view)
    return Effect.void
  }

  /** Tells the other nodes about the robots this node runs. */
  const share = (
    state: State,
    ctx: Actor.ActorContext<FleetStateMessage>,
    full: boolean,
    robots: Array<RobotView>,
    released: Array<string>,
    holders?: Record<string, string>
  ): Effect.Effect<number> => {
    let tokens: Record<string, string> | undefined
    for (const { id } of robots) {
      const token = placement!.tokenOf?.(id)
      if (token === undefined || (!full && state.sentTokens.get(id) === token)) continue
      state.sentTokens.set(id, token)
      ;(tokens ??= {})[id] = token
    }
    for (const robot of released) state.sentTokens.delete(robot)
    const message: NodeViews.NodeViews = {
      _tag: "NodeViews",
      node: placement!.node,
      full,
      robots,
      released,
      ...(tokens === undefined ? {} : { tokens }),
      ...(holders === undefined ? {} : { holders })
    }
    return PubSub.broadcastFrom(options.hub, ctx.self, NodeViews.Topic, message)
  }

  /** Another node's views: kept, and handed to this node's subscribers at once. */
  const onNodeViews = (state: State, message: NodeViews.NodeViews, now: number): Effect.Effect<unknown> => {
    if (placement === undefined || message.node === placement.node) return Effect.void
    // A node first heard in the middle of its sequence: ask for every node's views whole.
    const ask = !state.heard.has(message.node) && !message.full ? PubSub.resync(options.hub, NodeViews.Topic) : Effect.void
    state.heard.add(message.node)
    const robots: Array<RobotView> = []
    for (const robot of state.remote.apply(message)) {
      // Its own robot: who holds it changed on that node; this node's view says so at its next tick.
      if (state.robots.has(robot) && runs(robot)) {
        state.dirty.add(robot)
        continue
      }
      const shownView = shown(state, robot, now)
      if (shownView !== undefined) robots.push(shownView)
    }
    if (state.gathering !== undefined) {
      for (const view of robots) state.gathering.set(view.id, view)
      return ask
    }
    return robots.length === 0 ? ask : Effect.zipRight(ask, publishUpdate(state, robots))
  }

  const checkTtl = (ttlMs: number) => checkLeaseTtl(bounds, ttlMs)

  const record = (state: State, robot: string, kind: LinkEvent.RobotKind): RobotRecord => {
    let r = state.robots.get(robot)
    if (r === undefined) {
      r = newRecord(robot, kind)
      state.robots.set(robot, r)
      roster.set(robot, kind)
    }
    state.dirty.add(robot)
    return r
  }

  const onLink = (state: State, event: LinkEvent.LinkEvent): State => {
    switch (event._tag) {
      case "LinkUp": {
        const r = record(state, event.robot, event.kind)
        r.connected = true
        // The link's own alarms about the connection it has again (silence, a protocol error).
        r.alarms.delete("LINK-SILENT")
        r.alarms.delete("LINK-PROTOCOL")
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
        record(state, event.robot, event.kind)
        return state
      case "Cleared": {
        const r = record(state, event.robot, event.kind)
        if (r.kind === "arm") r.alarms.clear()
        return state
      }
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

  const watch = (state: State, holder: Leases.Holder, ctx: Actor.ActorContext<FleetStateMessage>) => {
    if (holder.ref !== undefined && !state.monitors.has(holder.session)) {
      state.monitors.set(holder.session, ctx.monitor(holder.ref))
    }
  }

  /** Ends a lease; `why` when it ended without its holder's release. */
  const endLease = (
    state: State,
    robot: string,
    ctx: Actor.ActorContext<FleetStateMessage>,
    why?: Leases.LeaseLost
  ) => {
    const lease = leases.get(robot)
    if (lease === undefined) return
    leases.delete(robot)
    state.dirty.add(robot)
    const session = lease.holder.session
    const monitor = state.monitors.get(session)
    if (monitor !== undefined && ![...leases.values()].some((l) => l.holder.session === session)) {
      ctx.demonitor(monitor)
      state.monitors.delete(session)
    }
    options.onLeaseEnded?.(lease)
    if (why !== undefined) options.onLeaseLost?.(lease, roster.get(robot) ?? "arm", why)
  }

  const handle = (
    state: State,
    message: Exclude<FleetStateMessage, LinkEvent.LinkEvent | Flush>,
    ctx: Actor.ActorContext<FleetStateMessage>,
    now: number
  ): void => {
    switch (message._tag) {
      case "Acquire": {
        const { holder, robot } = message
        const invalid = checkTtl(message.ttlMs)
        if (invalid !== undefined) return message.reply.fail(invalid)
        if (!known(state, robot)) return message.reply.fail(new UnknownRobot({ robot }))
        const current = Leases.live(leases, robot, now)
        if (current !== undefined && current.holder.session !== holder.session) {
          return message.reply.fail(new ControlHeld({ robot, holder: current.holder.user }))
        }
        if (current === undefined) endLease(state, robot, ctx, leases.has(robot) ? "expired" : undefined)
        const lease: Leases.LeaseRecord = { robot, holder, expiresAt: now + message.ttlMs }
        leases.set(robot, lease)
        watch(state, holder, ctx)
        state.dirty.add(robot)
        return message.reply.succeed(leaseOf(lease))
      }
      case "Renew": {
        const { holder, robot } = message
        const invalid = checkTtl(message.ttlMs)
        if (invalid !== undefined) return message.reply.fail(invalid)
        if (!known(state, robot)) return message.reply.fail(new UnknownRobot({ robot }))
        const lease = Leases.live(leases, robot, now)
        if (lease === undefined || lease.holder.session !== holder.session) {
          return message.reply.fail(new NotController({ robot }))
        }
        lease.expiresAt = now + message.ttlMs
        return message.reply.succeed(leaseOf(lease))
      }
      case "Release": {
        const { holder, robot } = message
        if (!known(state, robot)) return message.reply.fail(new UnknownRobot({ robot }))
        const lease = Leases.live(leases, robot, now)
        if (lease === undefined || lease.holder.session !== holder.session) {
          return message.reply.fail(new NotController({ robot }))
        }
        endLease(state, robot, ctx)
        return message.reply.succeed()
      }
      case "Authorize": {
        const { holder, robot } = message
        const r = state.robots.get(robot)
        if (!known(state, robot)) return message.reply.fail(new UnknownRobot({ robot }))
        const lease = Leases.live(leases, robot, now)
        if (lease === undefined || lease.holder.session !== holder.session) {
          return message.reply.fail(new NotController({ robot }))
        }
        if (r !== undefined && runs(robot)) {
          if (!r.connected) return message.reply.fail(new RobotOffline({ robot }))
          return message.reply.succeed({ robot, kind: r.kind })
        }
        // Another node runs it: its views say whether it is online there.
        const owner = state.remote.owner(robot)
        const remote = state.remote.view(robot)
        if (owner === undefined || remote === undefined || remote.connection !== "online") {
          return message.reply.fail(new RobotOffline({ robot }))
        }
        return message.reply.succeed({ robot, kind: remote.kind, owner })
      }
      case "GetState": {
        const robots: Array<RobotView> = []
        for (const robot of state.robots.keys()) robots.push(shown(state, robot, now)!)
        for (const robot of state.remote.robots()) if (!state.robots.has(robot)) robots.push(remoteView(state, robot)!)
        return message.reply.succeed({ tick: state.tick, robots })
      }
    }
  }

  return Actor.make<FleetStateMessage, State>({
    name: "fleet_state",
    init: (ctx) =>
      Effect.gen(function*() {
        yield* PubSub.subscribe(options.hub, LinkEvent.FleetTopic, ctx.self, { bufferSize: 8192, overflow: "sliding" })
        // With several nodes, every node ticks on the same wall-clock grid, so their views of a tick arrive together.
        const periodMs = Duration.toMillis(period)
        const align = placement === undefined ? Effect.void : Effect.sleep(Duration.millis(periodMs - (Date.now() % periodMs)))
        yield* Effect.forkScoped(
          Effect.zipRight(align, Effect.repeat(Effect.sync(() => ctx.self.unsafeTellUrgent(new Flush())), Schedule.fixed(period)))
        )
        if (placement !== undefined) {
          yield* PubSub.subscribe(options.hub, NodeViews.Topic, ctx.self, {
            bufferSize: 8192,
            overflow: "sliding",
            map: (message) => (NodeViews.isNodeViews(message) ? message : new Malformed())
          })
          yield* PubSub.onResync(options.hub, NodeViews.Topic, () => Effect.sync(() => void ctx.self.unsafeTell(new Resend())))
          yield* PubSub.resync(options.hub, NodeViews.Topic)
        }
        const state: State = {
          robots: new Map(),
          dirty: new Set(),
          monitors: new Map(),
          overdue: new Set(),
          tick: 0,
          remote: new NodeViews.RemoteViews(),
          shared: new Set(),
          heard: new Set(),
          sentTokens: new Map(),
          sentHolders: "",
          gathering: undefined
        }
        for (const arm of options.arms) state.robots.set(arm, newRecord(arm, "arm"))
        for (const [robot, kind] of roster) state.robots.set(robot, newRecord(robot, kind))
        for (const latch of latches.all()) {
          if (!state.robots.has(latch.robot)) state.robots.set(latch.robot, newRecord(latch.robot, latch.kind))
        }
        for (const robot of state.robots.keys()) roster.set(robot, state.robots.get(robot)!.kind)
        for (const lease of leases.values()) watch(state, lease.holder, ctx)
        // Liveness comes from the links, not from memory: each running link says again where it stands.
        if (options.registry !== undefined) {
          for (const entry of Registry.all(options.registry)) {
            if (entry.key.startsWith("robot:") || entry.key.startsWith("agv:")) entry.ref.unsafeTell(LinkEvent.announce)
          }
        }
        return state
      }),
    receive: (state, message, ctx) => {
      const now = Date.now()
      switch (message._tag) {
        case "Acquire":
        case "Renew":
        case "Release":
        case "Authorize":
        case "GetState":
          try {
            handle(state, message, ctx, now)
          } catch (error) {
            // A bug meeting a request: the asker gets the defect, every lease and view stays.
            message.reply.complete(Exit.die(error))
            return Effect.as(Effect.logError(`fleet/state could not handle ${message._tag}`, error), state)
          }
          return state
        case "Flush": {
          for (const [robot, lease] of leases) {
            if (lease.expiresAt <= now) endLease(state, robot, ctx, "expired")
          }
          for (const latch of latches.all()) {
            if (overdue(latch, now) && !state.overdue.has(latch.robot)) {
              state.overdue.add(latch.robot)
              state.dirty.add(latch.robot)
            }
          }
          for (const robot of state.overdue) {
            if (!overdue(latches.get(robot), now)) state.overdue.delete(robot)
          }
          sweep(state)
          const released: Array<string> = []
          let holders: Record<string, string> | undefined
          if (placement !== undefined) {
            const held = holdersOf(now)
            const key = holdersKey(held)
            if (key !== state.sentHolders) {
              state.sentHolders = key
              holders = held
            }
            for (const robot of state.remote.leave(isLive)) state.dirty.add(robot)
            for (const robot of state.shared) {
              if (placement.owns(robot)) continue
              state.shared.delete(robot)
              released.push(robot)
              state.dirty.add(robot)
            }
          }
          if (state.dirty.size === 0 && holders === undefined) return Effect.as(gather(state, ctx, []), state)
          const robots: Array<RobotView> = []
          const mine: Array<RobotView> = []
          for (const id of state.dirty) {
            const r = state.robots.get(id)
            if (r !== undefined && runs(id)) {
              const own = view(r, now, state.remote)
              robots.push(own)
              if (placement !== undefined) {
                mine.push(own)
                state.shared.add(id)
              }
            } else {
              const other = shown(state, id, now)
              if (other !== undefined) robots.push(other)
            }
          }
          state.dirty.clear()
          const local = gather(state, ctx, robots)
          if (mine.length === 0 && released.length === 0 && holders === undefined) return Effect.as(local, state)
          return Effect.as(Effect.zipRight(local, share(state, ctx, false, mine, released, holders)), state)
        }
        case "Gathered": {
          const gathered = state.gathering
          state.gathering = undefined
          return gathered === undefined || gathered.size === 0 ? state : Effect.as(publishUpdate(state, [...gathered.values()]), state)
        }
        case "Resend": {
          if (placement === undefined) return state
          const robots: Array<RobotView> = []
          state.shared.clear()
          for (const [id, r] of state.robots) {
            if (!placement.owns(id)) continue
            robots.push(view(r, now, state.remote))
            state.shared.add(id)
          }
          const holders = holdersOf(now)
          state.sentHolders = holdersKey(holders)
          return Effect.as(share(state, ctx, true, robots, [], holders), state)
        }
        case "NodeViews":
          return Effect.as(onNodeViews(state, message, now), state)
        case "Malformed":
          return state
        default:
          return onLink(state, message)
      }
    },
    onSignal: (state, signal, ctx) => {
      if (signal._tag !== "Down") return state
      for (const [session, monitor] of state.monitors) {
        if (monitor.id !== signal.monitor.id) continue
        state.monitors.delete(session)
        for (const [robot, lease] of [...leases]) {
          if (lease.holder.session === session) endLease(state, robot, ctx, "holder gone")
        }
      }
      return state
    }
  })
}
