/**
 * The board as Server-Sent Events, for `GET /canvas/stream` (clients that cannot speak
 * WebSocket): one `snapshot` event, then one `updates` event per tick, and a comment line every
 * 15 seconds to keep proxies from closing an idle stream.
 *
 * ```
 * event: snapshot
 * id: 1234
 * data: {"_tag":"Snapshot","width":1000,"height":1000,"palette":[…],"pixels":"<base64>","seq":1234}
 *
 * event: updates
 * id: 1236
 * data: {"_tag":"Updates","seq":1236,"pixels":"<base64 of 5 bytes per pixel>"}
 * ```
 *
 * Each event is encoded once for every SSE client. The route that serves it writes each chunk
 * only once the socket drained the one before (`ServerSentEvents.write`), so updates of a client
 * that reads slowly wait here, in its subscription; a client more than `sseBuffer` events behind
 * is cut off (its stream ends) and EventSource reconnects to a fresh snapshot. Pixels are deltas:
 * they cannot be skipped, only the whole stream restarted.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as PubSub from "../../actors/PubSub.js"
import type { Unavailable } from "../../protocol/CanvasRpcs.js"
import { Canvas, topic } from "./Canvas.js"
import type { CanvasFrame } from "./CanvasFrame.js"

/** The response headers of the event stream. */
export const headers: Readonly<Record<string, string>> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no"
}

const keepAlive = new TextEncoder().encode(": keep-alive\n\n")

/**
 * The body of `GET /canvas/stream`. Subscribes before it reads the snapshot and skips the
 * updates the snapshot already holds, so no pixel falls between them.
 */
export const serverSentEvents: Stream.Stream<Uint8Array, Unavailable, Canvas> = Stream.unwrapScoped(
  Effect.gen(function*() {
    const canvas = yield* Canvas
    const updates = yield* PubSub.subscribeQueue<CanvasFrame>(canvas.hub, topic, {
      bufferSize: canvas.settings.sseBuffer,
      overflow: "disconnect"
    })
    const snapshot = yield* canvas.snapshot
    const events = Stream.concat(
      Stream.succeed(snapshot.serverSentEvent),
      Stream.fromQueue(updates).pipe(
        Stream.filter((frame) => frame.seq > snapshot.seq),
        Stream.map((frame) => frame.serverSentEvent)
      )
    )
    return Stream.merge(events, Stream.as(Stream.tick("15 seconds"), keepAlive).pipe(Stream.drop(1)), {
      haltStrategy: "left"
    })
  })
)
