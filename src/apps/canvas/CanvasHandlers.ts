/**
 * The handlers of `CanvasRpcs`, as a layer for `RpcBridge.layer`.
 *
 * `CanvasJoin` takes the bridge's fast path: the canvas delivers its shared frames (the snapshot,
 * then one frame per tick) to a sink that writes them to the request's `ChunkWriter`. The sink
 * belongs to the request's `Caller` (the session actor, which the bridge provides when a gateway
 * is in front), and is bounded by that socket's backlog; without a caller, to an actor of its own.
 *
 * `CanvasPlace` places the pixel for the caller's user (cooldowns are per user), else for the
 * RPC client (one socket): never for a name the request carries.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Rpc from "@effect/rpc/Rpc"
import * as ExitReason from "../../actors/ExitReason.js"
import { Caller } from "../../protocol/Caller.js"
import { CanvasRpcs, Unavailable } from "../../protocol/CanvasRpcs.js"
import * as RpcBridge from "../../protocol/RpcBridge.js"
import { Canvas } from "./Canvas.js"
import type { CanvasFrame } from "./CanvasFrame.js"

const zero = () => 0

/** The canvas handlers; a request's `Caller` holds its socket to the slow-client policy. */
export const layer: Layer.Layer<Rpc.Handler<"CanvasJoin"> | Rpc.Handler<"CanvasPlace">, never, Canvas> = CanvasRpcs.toLayer(
  Effect.gen(function*() {
    const canvas = yield* Canvas
    return {
      CanvasJoin: () =>
        RpcBridge.directStream((writer) =>
          Effect.gen(function*() {
            const caller = Option.getOrUndefined(yield* Effect.serviceOption(Caller))
            const sink = {
              deliver: (frame: unknown) => void writer.write((frame as CanvasFrame).rpc),
              backlog: caller === undefined ? zero : () => caller.backlog()
            }
            const membership = yield* canvas.join(sink, caller?.owner)
            const reason = yield* membership.ended
            return yield* new Unavailable({ reason: `the subscription ended: ${ExitReason.format(reason)}` })
          })
        ),
      CanvasPlace: ({ color, x, y }, { clientId }) =>
        Effect.flatMap(Effect.serviceOption(Caller), (caller) =>
          canvas.place(Option.isSome(caller) ? caller.value.user : `client:${clientId}`, x, y, color))
    }
  })
)
