/**
 * Positions, velocities and trajectories shared by `order`, `state` and `visualization`.
 * Coordinates are metres in the project's map frame, angles radians.
 */
import * as Schema from "effect/Schema"

const Angle = Schema.Finite.pipe(Schema.between(-3.14159265359, 3.14159265359))

/** Where a node of an order lies on a map. */
export const NodePosition = Schema.Struct({
  x: Schema.Finite,
  y: Schema.Finite,
  theta: Schema.optional(Angle),
  allowedDeviationXY: Schema.optional(Schema.Finite.pipe(Schema.nonNegative())),
  allowedDeviationTheta: Schema.optional(Schema.Finite.pipe(Schema.between(0, 3.141592654))),
  mapId: Schema.String,
  mapDescription: Schema.optional(Schema.String)
}).annotations({ identifier: "NodePosition" })

/** Where a node of an order lies on a map. */
export interface NodePosition extends Schema.Schema.Type<typeof NodePosition> {}

/** The AGV's pose as it reports it. */
export const AgvPosition = Schema.Struct({
  x: Schema.Finite,
  y: Schema.Finite,
  theta: Schema.Finite,
  mapId: Schema.String,
  mapDescription: Schema.optional(Schema.String),
  positionInitialized: Schema.Boolean,
  localizationScore: Schema.optional(Schema.Finite.pipe(Schema.between(0, 1))),
  deviationRange: Schema.optional(Schema.Finite)
}).annotations({ identifier: "AgvPosition" })

/** The AGV's pose as it reports it. */
export interface AgvPosition extends Schema.Schema.Type<typeof AgvPosition> {}

/** The AGV's velocity in vehicle coordinates (m/s, rad/s); every component optional. */
export const Velocity = Schema.Struct({
  vx: Schema.optional(Schema.Finite),
  vy: Schema.optional(Schema.Finite),
  omega: Schema.optional(Schema.Finite)
}).annotations({ identifier: "Velocity" })

/** The AGV's velocity in vehicle coordinates. */
export interface Velocity extends Schema.Schema.Type<typeof Velocity> {}

/** A NURBS control point. */
export const ControlPoint = Schema.Struct({
  x: Schema.Finite,
  y: Schema.Finite,
  weight: Schema.optional(Schema.Finite.pipe(Schema.nonNegative()))
}).annotations({ identifier: "ControlPoint" })

/** An edge's path as a NURBS, as an order gives it (the degree is required there). */
export const Trajectory = Schema.Struct({
  degree: Schema.Int,
  knotVector: Schema.Array(Schema.Finite.pipe(Schema.between(0, 1))),
  controlPoints: Schema.Array(ControlPoint)
}).annotations({ identifier: "Trajectory" })

/** An edge's path as a NURBS. */
export interface Trajectory extends Schema.Schema.Type<typeof Trajectory> {}
