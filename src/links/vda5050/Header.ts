/**
 * The header every VDA 5050 message starts with. The fields sit flat on the message, not in a
 * nested object, so message schemas spread {@link HeaderFields} into their own fields.
 */
import * as Schema from "effect/Schema"

/** The protocol version this module models and the simulator speaks. */
export const PROTOCOL_VERSION = "2.0.0"

/** The header fields, to spread into a message's `Schema.Struct`. */
export const HeaderFields = {
  /** Per topic and per sender, +1 with each sent message. */
  headerId: Schema.Int,
  /** ISO 8601 UTC, e.g. `2024-05-14T09:31:07.42Z`; kept as text so it round-trips unchanged. */
  timestamp: Schema.String,
  /** Protocol version `[Major].[Minor].[Patch]`. */
  version: Schema.String,
  manufacturer: Schema.String,
  serialNumber: Schema.String
}

/** The header on its own, e.g. to read a message's origin before decoding the rest. */
export const Header = Schema.Struct(HeaderFields).annotations({ identifier: "Header" })

/** The header of a VDA 5050 message. */
export interface Header extends Schema.Schema.Type<typeof Header> {}

/** Which AGV a message is from or for. */
export interface AgvIdentity {
  readonly manufacturer: string
  readonly serialNumber: string
}

/** Builds a header for a message from or to `agv`, stamped with `now` (epoch milliseconds). */
export const make = (agv: AgvIdentity, headerId: number, now: number): Header => ({
  headerId,
  timestamp: new Date(now).toISOString(),
  version: PROTOCOL_VERSION,
  manufacturer: agv.manufacturer,
  serialNumber: agv.serialNumber
})
