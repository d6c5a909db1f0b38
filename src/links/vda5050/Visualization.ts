/**
 * The `visualization` topic: the AGV's pose and velocity at a higher rate than `state`, for
 * dashboards. Every field is optional, the header included.
 */
import * as Schema from "effect/Schema"
import { AgvPosition, Velocity } from "./Geometry.js"
import { HeaderFields } from "./Header.js"

/** A `visualization` message. */
export const Visualization = Schema.Struct({
  headerId: Schema.optional(HeaderFields.headerId),
  timestamp: Schema.optional(HeaderFields.timestamp),
  version: Schema.optional(HeaderFields.version),
  manufacturer: Schema.optional(HeaderFields.manufacturer),
  serialNumber: Schema.optional(HeaderFields.serialNumber),
  agvPosition: Schema.optional(AgvPosition.omit("mapDescription")),
  velocity: Schema.optional(Velocity)
}).annotations({ identifier: "Visualization" })

/** A `visualization` message. */
export interface Visualization extends Schema.Schema.Type<typeof Visualization> {}
