/**
 * The handlers of `CanvasRpcs`, as a layer for `RpcBridge.layer`.
 *
 * `CanvasJoin` takes the bridge's fast path: the canvas delivers its shared frames (the snapshot,
 * then one frame per tick) to a sink that writes them to the request's `ChunkWriter`. The sink
 * belongs to the session actor found through `ClientSockets` when the gateway provides it, and is
 * bounded by that socket's backlog; otherwise to an actor of its own.
 *
 * `CanvasPlace` places the pixel for the request's user: the `x-fleetvisor-user` header set by the
 * gateway, else the RPC client (one socket).
 *
 * @since 0.1.0
 */
import type { Headers } from "@effect/platform/Headers"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Rpc from "@effect/rpc/Rpc"
import * as ExitReason from "../../actors/ExitReason.js"
import { CanvasRpcs, Unavailable } from "../../protocol/CanvasRpcs.js"
import * as RpcBridge from "../../protocol/RpcBridge.js"
import { Canvas } from "./Canvas.js"
import type { CanvasFrame } from "./CanvasFrame.js"
import { ClientSockets } from "./ClientSockets.js"

/** The request header naming the user a pixel counts for (cooldowns are per user). Set by the gateway. */
export const userHeader = "x-fleetvisor-user"

/** The user of a request: the `x-fleetvisor-user` header, else `client:<clientId>`. */
export const userOf = (clientId: number, headers: Headers): string => {
  const user = headers[userHeader]
  return user !== undefined && user !== "" ? user : `client:${clientId}`
}

const zero = () => 0

/** The canvas handlers; the gateway may provide `ClientSockets` to hold slow sockets to the policy. */
export const layer: Layer.Layer<Rpc.Handler<"CanvasJoin"> | Rpc.Handler<"CanvasPlace">, never, Canvas> = CanvasRpcs.toLayer(
  Effect.gen(function*() {
    const canvas = yield* Canvas
    const sockets = yield* Effect.serviceOption(ClientSockets)
    return {
      CanvasJoin: (_, { clientId }) =>
        RpcBridge.directStream((writer) =>
          Effect.gen(function*() {
            const socket = Option.isSome(sockets) ? sockets.value.find(clientId) : undefined
            const sink = {
              deliver: (frame: unknown) => void writer.write((frame as CanvasFrame).rpc),
              backlog: socket?.backlog ?? zero
            }
            const membership = yield* canvas.join(sink, socket?.owner)
            const reason = yield* membership.ended
            return yield* new Unavailable({ reason: `the subscription ended: ${ExitReason.format(reason)}` })
          })
        ),
      CanvasPlace: ({ color, x, y }, { clientId, headers }) => canvas.place(userOf(clientId, headers), x, y, color)
    }
  })
)
