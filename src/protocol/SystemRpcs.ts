/**
 * RPCs every fleetvisor client uses, whatever the page: greeting, liveness, clock.
 *
 * @since 0.1.0
 */
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Schema from "effect/Schema"

/** The server's answer to `Hello`. */
export const HelloReply = Schema.Struct({
  /** The server build, e.g. "0.3.1". */
  serverVersion: Schema.String,
  /** The protocol version of the session (the `v<n>` of the subprotocol). */
  protocolVersion: Schema.Int,
  /** Optional capabilities this server has ("canvas", "fleet", …); pages hide what is missing. */
  features: Schema.Array(Schema.String),
  /** The node that serves the session, when the service runs as several instances. Added in v1. */
  node: Schema.optional(Schema.String)
})

/** @see HelloReply */
export type HelloReply = typeof HelloReply.Type

/** The first call of a session: the client names itself, the server answers with its versions. */
export const Hello = Rpc.make("Hello", {
  payload: {
    /** The client application, e.g. "canvas-page", "fleet-page", "cli". */
    app: Schema.String,
    /** The client build, e.g. "2024.05.01-3f2a". */
    version: Schema.String
  },
  success: HelloReply
})

/** A round trip through the RPC layer, for pages that show latency. */
export const Ping = Rpc.make("Ping")

/** The server clock, so pages can correct cooldown and lease countdowns. Added in v1. */
export const ServerTime = Rpc.make("ServerTime", {
  success: Schema.Struct({ now: Schema.DateTimeUtcFromNumber })
})

/** The system RPCs. */
export class SystemRpcs extends RpcGroup.make(Hello, Ping, ServerTime) {}
