/**
 * What robot links tell the rest of the service, over PubSub. Every event goes to two topics:
 * {@link FleetTopic} (every robot) and {@link robotTopic} (one robot), so a fleet view
 * subscribes once and a per-robot stream (SSE, Foxglove) subscribes narrowly.
 *
 * A link publishes `LinkUp` when its robot is reachable, telemetry while it is, `Alarm`s as
 * they happen, and `LinkDown` whenever it stops being reachable, its own crash included (its
 * `terminate` publishes it), so a robot shows as disconnected while its supervisor waits out
 * the restart backoff.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as PubSub from "../actors/PubSub.js"
import type * as RmiPacket from "./rmi/RmiPacket.js"
import type { State as AgvState } from "./vda5050/State.js"
import type { Visualization } from "./vda5050/Visualization.js"

/** The topic of every link event of every robot. */
export const FleetTopic = "fleet"

/** The topic of one robot's link events, e.g. `robot:arm-1` or `robot:KIT/0001`. */
export const robotTopic = (robot: string): string => `robot:${robot}`

/** An arm over FANUC RMI, or an AGV over VDA 5050. */
export type RobotKind = "arm" | "agv"

/** The robot is reachable: an RMI session is open, or an AGV said ONLINE (or simply spoke). */
export interface LinkUp {
  readonly _tag: "LinkUp"
  readonly robot: string
  readonly kind: RobotKind
  readonly at: number
}

/**
 * The robot is not reachable. `offline` is an orderly goodbye (VDA 5050 OFFLINE, or a link
 * stopped on purpose); `disconnected` is a loss (a broken connection, a last will, silence).
 */
export interface LinkDown {
  readonly _tag: "LinkDown"
  readonly robot: string
  readonly kind: RobotKind
  readonly status: "offline" | "disconnected"
  readonly reason: string
  readonly at: number
}

/** Something an operator must see: a controller fault, an AGV error, a silent robot. */
export interface Alarm {
  readonly _tag: "Alarm"
  readonly robot: string
  readonly kind: RobotKind
  /** e.g. `SRVO-050`, `LINK-SILENT`, a VDA 5050 `errorType`. */
  readonly code: string
  readonly level: "warning" | "fatal"
  readonly message: string
  readonly at: number
}

/** An emergency stop was sent to the robot (FRC_Abort, or startPause + cancelOrder), or latched it while unreachable. */
export interface EmergencyStopped {
  readonly _tag: "EmergencyStopped"
  readonly robot: string
  readonly kind: RobotKind
  readonly at: number
  /** Who stopped it, when the sender knows. */
  readonly by?: string | undefined
}

/** An operator's Reset cleared the robot's stop latch (and, for an arm, its faults). */
export interface Cleared {
  readonly _tag: "Cleared"
  readonly robot: string
  readonly kind: RobotKind
  readonly at: number
}

/** One poll of an arm: status, tool position and joint angles. */
export interface ArmTelemetry {
  readonly _tag: "ArmTelemetry"
  readonly robot: string
  readonly at: number
  readonly programStatus: "running" | "paused" | "aborted"
  readonly servoReady: boolean
  /** The teach pendant is enabled (`TPMode`): the arm is under the pendant's control. */
  readonly tpMode: boolean
  readonly override: number
  /** Whether the arm is executing a motion. */
  readonly moving: boolean
  readonly position: RmiPacket.Position
  readonly joints: RmiPacket.JointAngle
  /** The controller's clock of the position reading, ms. */
  readonly timeTag: number
}

/** A VDA 5050 `state` or `visualization` of an AGV. */
export interface AgvTelemetry {
  readonly _tag: "AgvTelemetry"
  readonly robot: string
  readonly at: number
  readonly state?: AgvState | undefined
  readonly visualization?: Visualization | undefined
}

/** What links publish. */
export type LinkEvent = LinkUp | LinkDown | Alarm | EmergencyStopped | Cleared | ArmTelemetry | AgvTelemetry

/**
 * Asks a link to publish again what it knows: `LinkUp` or `LinkDown`, and its latest telemetry.
 * A restarted `fleet/state` sends it to every link, so it rebuilds its view from the links
 * instead of waiting for news. Every robot link accepts it.
 */
export class Announce {
  readonly _tag = "Announce"
}

/** The one `Announce` message (it carries nothing). */
export const announce: Announce = new Announce()

/** Publishes `event` on the fleet topic and on its robot's topic. */
export const publish = (hub: PubSub.PubSub, event: LinkEvent): Effect.Effect<void> =>
  Effect.zipRight(PubSub.broadcast(hub, FleetTopic, event), PubSub.broadcast(hub, robotTopic(event.robot), event))

/** Publishes now, from synchronous code (a `receive` handler). */
export const unsafePublish = (hub: PubSub.PubSub, event: LinkEvent): void => {
  PubSub.unsafeBroadcast(hub, FleetTopic, event)
  PubSub.unsafeBroadcast(hub, robotTopic(event.robot), event)
}
