/**
 * The `connection` topic: ONLINE when an AGV comes up, OFFLINE when it leaves in an orderly way,
 * CONNECTIONBROKEN as its MQTT last will when it vanishes. Sent with QoS 1 and retained.
 */
import * as Schema from "effect/Schema"
import { HeaderFields } from "./Header.js"

/** The state of the AGV's link to the broker. */
export const ConnectionState = Schema.Literal("ONLINE", "OFFLINE", "CONNECTIONBROKEN")

/** The state of the AGV's link to the broker. */
export type ConnectionState = typeof ConnectionState.Type

/** A `connection` message. */
export const Connection = Schema.Struct({
  ...HeaderFields,
  connectionState: ConnectionState
}).annotations({ identifier: "Connection" })

/** A `connection` message. */
export interface Connection extends Schema.Schema.Type<typeof Connection> {}
