/**
 * The handlers of `CanvasRpcs` for a node that does not run the canvas: every call fails with
 * `Unavailable`, and `Hello` leaves "canvas" out of its features so pages hide it.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { CanvasRpcs, Unavailable } from "../protocol/CanvasRpcs.js"

const unavailable = new Unavailable({ reason: "This server does not run the canvas" })

/** Handlers that refuse every canvas call. */
export const layer = CanvasRpcs.toLayer({
  CanvasJoin: () => Stream.fail(unavailable),
  CanvasPlace: () => Effect.fail(unavailable)
})
