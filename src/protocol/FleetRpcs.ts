/**
 * RPCs of the robot fleet dashboard: live robot views, the control lease, commands and the
 * emergency stop.
 *
 * Control is leased: one session at a time holds a robot (`FleetAcquire`), keeps it by renewing
 * before `expiresAt`, and only the holder may command it. The emergency stop needs no lease; it
 * latches the robot, which then refuses every motion, order and program start
 * (`RobotStopped`) until its lease holder sends `Reset`.
 *
 * Roles (docs/security.md): subscribing needs `viewer`; leases and commands `operator`; the
 * emergency stop the server's `STOP_ROLE` (`viewer` by default). A refusal is `Forbidden`, a
 * credential that expired meanwhile `Unauthorized`.
 *
 * @since 0.1.0
 */
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Schema from "effect/Schema"

/** A robot's id, unique in the fleet (an AGV's is `<manufacturer>/<serialNumber>`). */
export const RobotId = Schema.String.pipe(Schema.minLength(1))

/** What a robot is doing, as far as the fleet knows. */
export const RobotStatus = Schema.Literal("online", "offline", "disconnected", "fault", "paused", "estop")

/** @see RobotStatus */
export type RobotStatus = typeof RobotStatus.Type

/** A position on a map: meters, and heading in radians. */
export const Pose = Schema.Struct({ x: Schema.Number, y: Schema.Number, theta: Schema.Number })

/** An arm's tool position: x, y, z in millimeters, w, p, r in degrees (FANUC's convention). */
export const CartesianPosition = Schema.Struct({
  x: Schema.Number,
  y: Schema.Number,
  z: Schema.Number,
  w: Schema.Number,
  p: Schema.Number,
  r: Schema.Number
})

/** @see CartesianPosition */
export type CartesianPosition = typeof CartesianPosition.Type

/** An active alarm, e.g. FANUC "SRVO-002" or a VDA 5050 error type. */
export const Alarm = Schema.Struct({
  code: Schema.String,
  level: Schema.Literal("warning", "fatal"),
  message: Schema.String
})

/** A percentage, 0 to 100. */
export const Percent = Schema.Number.pipe(Schema.between(0, 100))

/** Whether the fleet can reach the robot: `broken` is a loss (a cut connection, a last will, silence), `offline` a goodbye. */
export const Connection = Schema.Literal("online", "offline", "broken")

/**
 * The fleet's safety view of a robot: `stopped` while an emergency stop latches it (until a
 * Reset), `fault` with a fatal alarm, `paused` when its program or its driving is paused.
 */
export const Safety = Schema.Literal("normal", "stopped", "paused", "fault")

/**
 * What the robot itself reports of its safety, read-only: an AGV's VDA 5050 `safetyState`
 * (`eStop`: AUTOACK, MANUAL, REMOTE or NONE; `fieldViolation`), an arm's `ServoReady` and
 * `TPMode` (the teach pendant has control).
 */
export const ReportedSafety = Schema.Struct({
  eStop: Schema.optional(Schema.String),
  fieldViolation: Schema.optional(Schema.Boolean),
  servoReady: Schema.optional(Schema.Boolean),
  tpMode: Schema.optional(Schema.Boolean)
})

/** The latch of an emergency stop: when, by whom, and (AGVs) whether the robot's state confirmed it. */
export const StopInfo = Schema.Struct({
  since: Schema.Number,
  by: Schema.String,
  confirmed: Schema.Boolean
})

const robotFields = {
  id: RobotId,
  status: RobotStatus,
  /** Charge in percent, for robots that have a battery. */
  battery: Schema.optional(Percent),
  alarms: Schema.Array(Alarm),
  /** The holder of the control lease, if any. */
  controlledBy: Schema.optional(Schema.String),
  /**
   * When the robot said what is shown, ms since the epoch: an AGV's header timestamp, the
   * arrival of an arm's reading. Lets a dashboard show staleness; added after v1 froze.
   */
  updatedAt: Schema.optional(Schema.Number),
  /** Added after v1 froze: whether the robot is reachable, apart from `status`. */
  connection: Schema.optional(Connection),
  /** Added after v1 froze: the fleet's safety view, apart from `status`. */
  safety: Schema.optional(Safety),
  /** Added after v1 froze: the robot's own safety report. */
  reportedSafety: Schema.optional(ReportedSafety),
  /** Added after v1 froze: the stop latch, while one holds the robot. */
  stop: Schema.optional(StopInfo)
}

/** A point on the fleet's map, in meters. */
export const MapPoint = Schema.Struct({ x: Schema.Number, y: Schema.Number })

/** A node of an AGV's order it has yet to pass; `x`, `y` when the order gave its position. */
export const OrderNodeView = Schema.Struct({
  nodeId: Schema.String,
  sequenceId: Schema.Int,
  released: Schema.Boolean,
  x: Schema.optional(Schema.Number),
  y: Schema.optional(Schema.Number)
})

/** An edge of an AGV's order it has yet to traverse: it joins the nodes of `sequenceId` − 1 and + 1. */
export const OrderEdgeView = Schema.Struct({
  edgeId: Schema.String,
  sequenceId: Schema.Int,
  released: Schema.Boolean
})

/**
 * The part of an AGV's current order it has not yet done, from its VDA 5050 `state`
 * (`nodeStates`, `edgeStates`): released nodes and edges are its base, the others its horizon.
 */
export const OrderView = Schema.Struct({
  orderId: Schema.String,
  nodes: Schema.Array(OrderNodeView),
  edges: Schema.Array(OrderEdgeView)
})

/** @see OrderView */
export type OrderView = typeof OrderView.Type

/** An AGV as the dashboard shows it. */
export const AgvView = Schema.Struct({
  kind: Schema.Literal("agv"),
  ...robotFields,
  pose: Pose,
  /**
   * Added after v1 froze: `false` while the AGV has not reported a position (its `pose` then
   * reads 0, 0, 0 and is not a place on the map).
   */
  poseKnown: Schema.optional(Schema.Boolean),
  /** Added after v1 froze: what is left of its current order, while it has one. */
  order: Schema.optional(OrderView)
})

/** A robot arm as the dashboard shows it; `joints` in degrees, J1 first. */
export const ArmView = Schema.Struct({
  kind: Schema.Literal("arm"),
  ...robotFields,
  position: CartesianPosition,
  joints: Schema.Array(Schema.Number),
  /** Added after v1 froze: where the arm's base stands on the fleet's map (`FLEET_ARM_BASES`), when configured. */
  base: Schema.optional(MapPoint)
})

/** A robot as the dashboard shows it. */
export const RobotView = Schema.Union(AgvView, ArmView)

/** @see RobotView */
export type RobotView = typeof RobotView.Type

/** Every subscribed robot, first item of a `FleetSubscribe` stream. */
export const FleetSnapshot = Schema.TaggedStruct("FleetSnapshot", {
  tick: Schema.Int,
  robots: Schema.Array(RobotView)
})

/** The robots that changed since the previous item, conflated to the broadcast rate. */
export const FleetUpdate = Schema.TaggedStruct("FleetUpdate", {
  tick: Schema.Int,
  robots: Schema.Array(RobotView)
})

/** An item of a `FleetSubscribe` stream. */
export const FleetEvent = Schema.Union(FleetSnapshot, FleetUpdate)

/** @see FleetEvent */
export type FleetEvent = typeof FleetEvent.Type

/** A granted control lease. */
export const Lease = Schema.Struct({ robot: RobotId, expiresAt: Schema.DateTimeUtcFromNumber })

/** @see Lease */
export type Lease = typeof Lease.Type

/**
 * Arm: move the tool in a straight line to `position` at `speed` mm/s (FRC_LinearMotion).
 * `FleetCommand` succeeds once the arm's link has queued the motion, not when the arm arrives;
 * watch the robot's view for that.
 */
export const MoveLinear = Schema.TaggedStruct("MoveLinear", {
  position: CartesianPosition,
  speed: Schema.Number.pipe(Schema.positive())
})

/**
 * Arm: move to joint angles in degrees, J1 first (6 to 9 of them: J7–J9 are extended axes), at
 * `speed` percent of the maximum joint speed (above 0), every joint arriving at once
 * (FRC_JointMotionJRep). Like `MoveLinear`, `FleetCommand` succeeds once the motion is queued.
 */
export const MoveJoint = Schema.TaggedStruct("MoveJoint", {
  joints: Schema.Array(Schema.Number),
  speed: Percent
})

/** Arm or AGV: hold motion. */
export const Pause = Schema.TaggedStruct("Pause", {})
/** Arm: resume a paused program. */
export const Continue = Schema.TaggedStruct("Continue", {})
/**
 * Clears an emergency stop's latch. Arm: FRC_Reset, then FRC_Initialize (faults clear, motion
 * can be commanded again). AGV (added after v1 froze): refused with `RobotStopped` until the
 * AGV's state confirms the stop (paused, no nodes or edges, the stop's `cancelOrder` done);
 * then the latch clears and `stopPause` is sent.
 */
export const Reset = Schema.TaggedStruct("Reset", {})
/** Arm: stop the program and drop queued motion. */
export const Abort = Schema.TaggedStruct("Abort", {})
/** AGV: resume after `Pause`. */
export const Resume = Schema.TaggedStruct("Resume", {})
/** AGV: cancel the current order. */
export const CancelOrder = Schema.TaggedStruct("CancelOrder", {})
/** AGV: publish a fresh state now. */
export const StateRequest = Schema.TaggedStruct("StateRequest", {})

/** A stop of an AGV order: a node of its map. */
export const OrderNode = Schema.Struct({
  nodeId: Schema.String,
  x: Schema.Number,
  y: Schema.Number,
  theta: Schema.optional(Schema.Number),
  mapId: Schema.String
})

/** AGV: drive through `nodes` in order (a VDA 5050 order). */
export const SendOrder = Schema.TaggedStruct("SendOrder", { nodes: Schema.NonEmptyArray(OrderNode) })

/** The commands an arm accepts. */
export const ArmCommand = Schema.Union(MoveLinear, MoveJoint, Pause, Continue, Reset, Abort)

/** The commands an AGV accepts. */
export const AgvCommand = Schema.Union(Pause, Resume, CancelOrder, SendOrder, StateRequest, Reset)

/** Any robot command; a command the robot's kind does not accept fails with `CommandNotSupported`. */
export const RobotCommand = Schema.Union(
  MoveLinear,
  MoveJoint,
  Pause,
  Continue,
  Reset,
  Abort,
  Resume,
  CancelOrder,
  SendOrder,
  StateRequest
)

/** @see RobotCommand */
export type RobotCommand = typeof RobotCommand.Type

/** Another session holds the robot's control lease. */
export class ControlHeld extends Schema.TaggedError<ControlHeld>()("ControlHeld", {
  robot: RobotId,
  holder: Schema.String
}) {}

/** No robot has this id. */
export class UnknownRobot extends Schema.TaggedError<UnknownRobot>()("UnknownRobot", { robot: RobotId }) {}

/** This session does not hold the robot's control lease (never had it, or it expired). */
export class NotController extends Schema.TaggedError<NotController>()("NotController", { robot: RobotId }) {}

/** The robot is not connected, so the command cannot reach it. */
export class RobotOffline extends Schema.TaggedError<RobotOffline>()("RobotOffline", { robot: RobotId }) {}

/** The command is not one the robot's kind accepts (an arm cannot `SendOrder`). */
export class CommandNotSupported extends Schema.TaggedError<CommandNotSupported>()("CommandNotSupported", {
  robot: RobotId,
  command: Schema.String
}) {}

/**
 * The robot, or the fleet on its behalf, refused the command: a FANUC controller's RMI error
 * (`code` like `"RMIT-010"`), a VDA 5050 message that does not validate (`"validationError"`),
 * or a command the fleet cannot turn into one (no `code`). Added after v1 froze: an older client
 * sees it as the defect it saw before.
 */
export class CommandRefused extends Schema.TaggedError<CommandRefused>()("CommandRefused", {
  robot: RobotId,
  command: Schema.String,
  code: Schema.optional(Schema.String),
  reason: Schema.String
}) {}

/**
 * An emergency stop latched the robot: motion, orders and program starts are refused until its
 * lease holder's `Reset` clears the latch (and, for an AGV, until the AGV confirmed the stop).
 * `since` is epoch ms. Added after v1 froze.
 */
export class RobotStopped extends Schema.TaggedError<RobotStopped>()("RobotStopped", {
  robot: RobotId,
  since: Schema.Number,
  by: Schema.String
}) {}

/**
 * The request is outside what the fleet accepts: a lease TTL out of range, a motion value that
 * is not finite, a speed above the arm's limit, a position outside its workspace. Nothing was
 * sent to the robot. Added after v1 froze.
 */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  field: Schema.String,
  reason: Schema.String
}) {}

/**
 * The session's credential is no longer valid (`reason`: `expired`, `revoked`): sign in again.
 * The server closes such a session with 4401 within seconds anyway. Added after v1 froze.
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  reason: Schema.String
}) {}

/**
 * The session's user lacks the role this needs (`needed`: `viewer`, `operator` or `admin`;
 * see docs/security.md). Added after v1 froze.
 */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", {
  needed: Schema.String,
  user: Schema.String
}) {}

/** What an emergency stop did: the robots it reached over a live link, and those it could only latch. */
export const StopReport = Schema.Struct({
  reached: Schema.Array(RobotId),
  latchedOnly: Schema.Array(RobotId)
})

/** @see StopReport */
export type StopReport = typeof StopReport.Type

/** Subscribes to robot views: one `FleetSnapshot`, then `FleetUpdate`s. */
export const FleetSubscribe = Rpc.make("FleetSubscribe", {
  payload: {
    /** Only these robots; all robots when omitted. Added in v1. */
    robots: Schema.optional(Schema.Array(RobotId))
  },
  success: FleetEvent,
  /** Added after v1 froze: the role `viewer` is needed. */
  error: Schema.Union(Unauthorized, Forbidden),
  stream: true
})

/**
 * Takes the control lease of a robot for `ttlMs` (the server's default when omitted; 1 s to
 * 10 min, or up to the server's default if that is longer: else `InvalidRequest`). A stopped
 * robot can be acquired, so that it can be reset.
 */
export const FleetAcquire = Rpc.make("FleetAcquire", {
  payload: { robot: RobotId, ttlMs: Schema.optional(Schema.Int.pipe(Schema.positive())) },
  success: Lease,
  error: Schema.Union(ControlHeld, UnknownRobot, InvalidRequest, Unauthorized, Forbidden)
})

/** Extends a held lease (`ttlMs` as in `FleetAcquire`). */
export const FleetRenew = Rpc.make("FleetRenew", {
  payload: { robot: RobotId, ttlMs: Schema.optional(Schema.Int.pipe(Schema.positive())) },
  success: Lease,
  error: Schema.Union(NotController, UnknownRobot, InvalidRequest, Unauthorized, Forbidden)
})

/** Gives a held lease back. */
export const FleetRelease = Rpc.make("FleetRelease", {
  payload: { robot: RobotId },
  error: Schema.Union(NotController, UnknownRobot, Unauthorized, Forbidden)
})

/**
 * Sends a command to a robot whose lease this session holds. Succeeds once the robot took it:
 * an arm's motion once queued, its program control (`Pause`, `Reset`, …) once the controller
 * answered, an AGV's message once handed to the broker.
 */
export const FleetCommand = Rpc.make("FleetCommand", {
  payload: { robot: RobotId, command: RobotCommand },
  error: Schema.Union(
    NotController,
    UnknownRobot,
    RobotOffline,
    CommandNotSupported,
    CommandRefused,
    RobotStopped,
    InvalidRequest,
    Unauthorized,
    Forbidden
  )
})

/**
 * Stops one robot, or every robot when `robot` is omitted. Needs no lease. The stop goes out
 * first; the robot is latched (on disk before the answer) and refuses motion until a Reset. A
 * known robot without a live link is latched all the same. The answer (added after v1 froze;
 * a v1 server sent none) says which robots the stop reached and which it only latched.
 */
export const FleetEmergencyStop = Rpc.make("FleetEmergencyStop", {
  payload: {
    robot: Schema.optional(RobotId),
    /**
     * Set on a dashboard's second copy of a stop: the node that got the first (added after v1
     * froze; older servers ignore it). The stop is done all the same, and recorded as a copy.
     */
    copyOf: Schema.optional(Schema.String)
  },
  success: Schema.UndefinedOr(StopReport),
  error: Schema.Union(UnknownRobot, Unauthorized, Forbidden)
})

/** The fleet RPCs. */
export class FleetRpcs extends RpcGroup.make(
  FleetSubscribe,
  FleetAcquire,
  FleetRenew,
  FleetRelease,
  FleetCommand,
  FleetEmergencyStop
) {}
