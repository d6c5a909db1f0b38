/**
 * An older client's idea of the protocol: a build of v1 made before `ServerTime`, the fleet RPCs
 * and the optional `node` field of `HelloReply` existed. Frozen here on purpose: it must keep
 * working against the current server however the current definitions grow.
 */
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Schema from "effect/Schema"

const Hello = Rpc.make("Hello", {
  payload: { app: Schema.String, version: Schema.String },
  success: Schema.Struct({
    serverVersion: Schema.String,
    protocolVersion: Schema.Int,
    features: Schema.Array(Schema.String)
  })
})

const Ping = Rpc.make("Ping")

class InvalidColor extends Schema.TaggedError<InvalidColor>()("InvalidColor", {}) {}
class OutOfBounds extends Schema.TaggedError<OutOfBounds>()("OutOfBounds", {}) {}

const CanvasPlace = Rpc.make("CanvasPlace", {
  payload: { x: Schema.Int, y: Schema.Int, color: Schema.Int },
  success: Schema.Struct({ seq: Schema.Int }),
  error: Schema.Union(InvalidColor, OutOfBounds)
})

/** The RPCs the older client knows. */
export class OlderRpcs extends RpcGroup.make(Hello, Ping, CanvasPlace) {}
