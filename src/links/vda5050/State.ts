/**
 * The `state` topic: everything the AGV reports about itself, sent on every relevant event and
 * at least every 30 s. Required fields follow the 2.0.0 schema; the optional ones a dashboard
 * shows (position, velocity, pause, loads, information) are modelled too. Unknown fields are
 * dropped on decoding, so 2.1 states (`maps`, …) decode as well.
 */
import * as Schema from "effect/Schema"
import { AgvPosition, ControlPoint, NodePosition, Trajectory, Velocity } from "./Geometry.js"
import { HeaderFields } from "./Header.js"

/** A node of the current order the AGV has yet to pass. */
export const NodeState = Schema.Struct({
  nodeId: Schema.String,
  sequenceId: Schema.Int,
  nodeDescription: Schema.optional(Schema.String),
  nodePosition: Schema.optional(NodePosition),
  released: Schema.Boolean
}).annotations({ identifier: "NodeState" })

/** A node of the current order the AGV has yet to pass. */
export interface NodeState extends Schema.Schema.Type<typeof NodeState> {}

/** An edge of the current order the AGV has yet to traverse. */
export const EdgeState = Schema.Struct({
  edgeId: Schema.String,
  sequenceId: Schema.Int,
  edgeDescription: Schema.optional(Schema.String),
  released: Schema.Boolean,
  trajectory: Schema.optional(
    Schema.Struct({
      degree: Schema.optional(Schema.Finite.pipe(Schema.greaterThanOrEqualTo(1))),
      knotVector: Trajectory.fields.knotVector,
      controlPoints: Schema.Array(ControlPoint)
    })
  )
}).annotations({ identifier: "EdgeState" })

/** An edge of the current order the AGV has yet to traverse. */
export interface EdgeState extends Schema.Schema.Type<typeof EdgeState> {}

/** Where an action stands. */
export const ActionStatus = Schema.Literal("WAITING", "INITIALIZING", "RUNNING", "PAUSED", "FINISHED", "FAILED")

/** Where an action stands. */
export type ActionStatus = typeof ActionStatus.Type

/** The progress of one action of the current order or of an instant action. */
export const ActionState = Schema.Struct({
  actionId: Schema.String,
  actionType: Schema.optional(Schema.String),
  actionDescription: Schema.optional(Schema.String),
  actionStatus: ActionStatus,
  resultDescription: Schema.optional(Schema.String)
}).annotations({ identifier: "ActionState" })

/** The progress of one action. */
export interface ActionState extends Schema.Schema.Type<typeof ActionState> {}

/** The battery: charge in percent, and whether it is charging. */
export const BatteryState = Schema.Struct({
  batteryCharge: Schema.Finite,
  batteryVoltage: Schema.optional(Schema.Finite),
  batteryHealth: Schema.optional(Schema.Int.pipe(Schema.between(0, 100))),
  charging: Schema.Boolean,
  reach: Schema.optional(Schema.Finite.pipe(Schema.nonNegative()))
}).annotations({ identifier: "BatteryState" })

/** The battery. */
export interface BatteryState extends Schema.Schema.Type<typeof BatteryState> {}

/** Who is in control of the AGV. */
export const OperatingMode = Schema.Literal("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL", "SERVICE", "TEACHIN")

/** Who is in control of the AGV. */
export type OperatingMode = typeof OperatingMode.Type

/** A key/value pointing at what an error or information is about (orderId, actionId, …). */
export const Reference = Schema.Struct({
  referenceKey: Schema.String,
  referenceValue: Schema.String
}).annotations({ identifier: "Reference" })

/** WARNING: the AGV can still drive on its own. FATAL: it needs a human. */
export const ErrorLevel = Schema.Literal("WARNING", "FATAL")

/** An error the AGV reports; kept in `errors` until resolved. */
export const AgvError = Schema.Struct({
  errorType: Schema.String,
  errorReferences: Schema.optional(Schema.Array(Reference)),
  errorDescription: Schema.optional(Schema.String),
  errorLevel: ErrorLevel
}).annotations({ identifier: "AgvError" })

/** An error the AGV reports. */
export interface AgvError extends Schema.Schema.Type<typeof AgvError> {}

/** An information message, for visualisation and debugging only. */
export const Information = Schema.Struct({
  infoType: Schema.String,
  infoReferences: Schema.optional(Schema.Array(Reference)),
  infoDescription: Schema.optional(Schema.String),
  infoLevel: Schema.Literal("INFO", "DEBUG")
}).annotations({ identifier: "Information" })

/** An information message. */
export interface Information extends Schema.Schema.Type<typeof Information> {}

/** A load the AGV carries. Every field is optional. */
export const Load = Schema.Struct({
  loadId: Schema.optional(Schema.String),
  loadType: Schema.optional(Schema.String),
  loadPosition: Schema.optional(Schema.String),
  boundingBoxReference: Schema.optional(
    Schema.Struct({ x: Schema.Finite, y: Schema.Finite, z: Schema.Finite, theta: Schema.optional(Schema.Finite) })
  ),
  loadDimensions: Schema.optional(
    Schema.Struct({ length: Schema.Finite, width: Schema.Finite, height: Schema.optional(Schema.Finite) })
  ),
  weight: Schema.optional(Schema.Finite.pipe(Schema.nonNegative()))
}).annotations({ identifier: "Load" })

/** A load the AGV carries. */
export interface Load extends Schema.Schema.Type<typeof Load> {}

/** The kind of emergency stop that is active (NONE if none). */
export const EStop = Schema.Literal("AUTOACK", "MANUAL", "REMOTE", "NONE")

/** Emergency stop and protective field. */
export const SafetyState = Schema.Struct({
  eStop: EStop,
  fieldViolation: Schema.Boolean
}).annotations({ identifier: "SafetyState" })

/** Emergency stop and protective field. */
export interface SafetyState extends Schema.Schema.Type<typeof SafetyState> {}

/** A `state` message. */
export const State = Schema.Struct({
  ...HeaderFields,
  orderId: Schema.String,
  orderUpdateId: Schema.Int,
  zoneSetId: Schema.optional(Schema.String),
  lastNodeId: Schema.String,
  lastNodeSequenceId: Schema.Int,
  driving: Schema.Boolean,
  paused: Schema.optional(Schema.Boolean),
  newBaseRequest: Schema.optional(Schema.Boolean),
  distanceSinceLastNode: Schema.optional(Schema.Finite),
  operatingMode: OperatingMode,
  nodeStates: Schema.Array(NodeState),
  edgeStates: Schema.Array(EdgeState),
  agvPosition: Schema.optional(AgvPosition),
  velocity: Schema.optional(Velocity),
  loads: Schema.optional(Schema.Array(Load)),
  actionStates: Schema.Array(ActionState),
  batteryState: BatteryState,
  errors: Schema.Array(AgvError),
  information: Schema.optional(Schema.Array(Information)),
  safetyState: SafetyState
}).annotations({ identifier: "State" })

/** A `state` message. */
export interface State extends Schema.Schema.Type<typeof State> {}
