/**
 * One item of the canvas stream (a snapshot or one tick's updates), encoded at most once per
 * transport however many subscribers it reaches: the RPC chunk (`SharedFrame`, which itself
 * serializes once per wire format) and the Server-Sent Event, each on first use.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { type CanvasEvent, CanvasEvent as CanvasEventSchema, CanvasJoin } from "../../protocol/CanvasRpcs.js"
import * as SharedFrame from "../../protocol/SharedFrame.js"

const encodeEvent = Schema.encodeSync(CanvasEventSchema)
const utf8 = new TextEncoder()

/** A canvas event and its memoized encodings. */
export class CanvasFrame {
  private shared: SharedFrame.SharedFrame | undefined
  private sse: Uint8Array | undefined
  private encodings = 0

  constructor(readonly event: CanvasEvent) {}

  /** The board's sequence number after this event. */
  get seq(): number {
    return this.event.seq
  }

  /** The chunk of a `CanvasJoin` stream, for `ChunkWriter.write`. */
  get rpc(): SharedFrame.SharedFrame {
    if (this.shared === undefined) {
      this.encodings++
      this.shared = SharedFrame.encodeOnce(CanvasJoin, [this.event])
    }
    return this.shared
  }

  /**
   * The Server-Sent Event: `event: snapshot` or `event: updates`, `id:` the sequence number,
   * and the event as JSON (`pixels` in base64, as on the JSON wire).
   */
  get serverSentEvent(): Uint8Array {
    if (this.sse === undefined) {
      this.encodings++
      const name = this.event._tag === "Snapshot" ? "snapshot" : "updates"
      this.sse = utf8.encode(`event: ${name}\nid: ${this.event.seq}\ndata: ${JSON.stringify(encodeEvent(this.event))}\n\n`)
    }
    return this.sse
  }

  /** How many encodings were made (at most one per transport), for tests of the encode-once promise. */
  get encodeCount(): number {
    return this.encodings
  }
}
