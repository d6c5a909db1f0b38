/**
 * The `visualization` topic: the AGV's pose and velocity at a higher rate than `state`, for
 * dashboards. Every field is optional, the header included.
 */
import * as Schema from "effect/Schema"
import { AgvPosition, Velocity } from "./Geometry.js"
import { HeaderFields } from "./Header.js"

const Position = AgvPosition.omit("mapDescription")

/** A `visualization` message. */
export const Visualization = Schema.Struct({
  headerId: Schema.optional(HeaderFields.headerId),
  timestamp: Schema.optional(HeaderFields.timestamp),
  version: Schema.optional(HeaderFields.version),
  manufacturer: Schema.optional(HeaderFields.manufacturer),
  serialNumber: Schema.optional(HeaderFields.serialNumber),
  agvPosition: Schema.optional(Position),
  velocity: Schema.optional(Velocity)
}).annotations({ identifier: "Visualization" })

/** A `visualization` message. */
export interface Visualization extends Schema.Schema.Type<typeof Visualization> {}

const headerKeys = Object.keys(Visualization.fields).filter((key) => key !== "agvPosition" && key !== "velocity")
const positionKeys = Object.keys(Position.fields)
const velocityKeys = Object.keys(Velocity.fields)

const pick = (record: Record<string, unknown>, keys: ReadonlyArray<string>): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const key of keys) if (record[key] !== undefined) out[key] = record[key]
  return out
}

/**
 * The fields of this model out of a parsed `visualization` the official schema has passed, as
 * decoding would give them (others dropped, so an AGV's extra fields go no further), without
 * the cost of decoding: `Inbound`'s fast path. Sound because the official schema asks of these
 * fields what this model does (types, required fields, the score's 0–1).
 */
export const fromChecked = (value: Record<string, unknown>): Visualization => {
  const out = pick(value, headerKeys)
  const position = value.agvPosition as Record<string, unknown> | undefined
  if (position !== undefined) out.agvPosition = pick(position, positionKeys)
  const velocity = value.velocity as Record<string, unknown> | undefined
  if (velocity !== undefined) out.velocity = pick(velocity, velocityKeys)
  return out as Visualization
}
