/**
 * How telemetry rows travel from the event loop to the worker: in a ring of
 * columns in shared memory, so a hand-off allocates, copies and transfers
 * nothing. The event loop writes each row's numbers into the ring's typed
 * arrays (`SharedArrayBuffer`, given to the worker once at start) and, per
 * batch, posts a small message naming the rows (`start`, `count`), the robot
 * ids and kinds first seen since the last batch, and the payloads as JSON text.
 * The worker commits the rows, reads straight from the ring, and only then
 * acknowledges them; until then the event loop does not reuse their slots.
 *
 * Robot ids and kinds are interned in a dictionary that both sides grow in
 * batch order (a batch carries only its new names); past `maxNames` it starts
 * over (`reset`), so a stream of ever-new ids cannot grow it without bound.
 *
 * The worker reads it in telemetryWorker.ts (`receive`, `writeBatches`).
 *
 * @internal
 */
import type { TelemetryRow } from "../TelemetryLog.js"

/** The ring's columns: views of one `SharedArrayBuffer`, `capacity` rows each. */
export interface RingColumns {
  /** Dictionary ids of the robot and the kind. */
  readonly robot: Uint32Array
  readonly kind: Uint32Array
  readonly at: Float64Array
  /** NaN where the row has no value. */
  readonly x: Float64Array
  readonly y: Float64Array
  readonly theta: Float64Array
  /**
   * `[0]`: rows written (mod 2³¹), stored after a batch's rows and before its
   * message, and loaded by the worker on receipt: the `Atomics` pair that orders
   * the rows' plain writes before the worker's reads.
   */
  readonly cursor: Int32Array
}

/** The message posted to the worker for each batch. */
export interface BatchMessage {
  readonly type: "batch"
  readonly seq: number
  /** The batch's first slot in the ring; its rows may wrap around the end. */
  readonly start: number
  readonly count: number
  /** Start a new dictionary before adding `names`. */
  readonly reset: boolean
  /** Names first used in this batch; their ids follow the dictionary's last. */
  readonly names: ReadonlyArray<string>
  /** JSON text by row of the batch (0 = the row at `start`); a sparse array. */
  readonly payloads: ReadonlyArray<string | undefined>
}

/** Dictionary size past which it starts over, at the next batch. */
const maxNames = 4_096

/** Bytes per row: four float64 and two uint32 columns. */
const rowBytes = 40

/**
 * The event loop's end of the ring. It trusts its caller to keep at most
 * `capacity` rows written and not released.
 */
export class TelemetryRing {
  readonly columns: RingColumns
  private readonly dictionary = new Map<string, number>()
  private names: Array<string> = []
  private reset = false
  private payloads: Array<string | undefined> = []
  /** Next slot to write, first slot of the batch being filled, rows in it. */
  private head = 0
  private start = 0
  private written = 0

  constructor(readonly capacity: number) {
    const buffer = new SharedArrayBuffer(rowBytes * capacity + Int32Array.BYTES_PER_ELEMENT)
    this.columns = {
      at: new Float64Array(buffer, 0, capacity),
      x: new Float64Array(buffer, 8 * capacity, capacity),
      y: new Float64Array(buffer, 16 * capacity, capacity),
      theta: new Float64Array(buffer, 24 * capacity, capacity),
      robot: new Uint32Array(buffer, 32 * capacity, capacity),
      kind: new Uint32Array(buffer, 36 * capacity, capacity),
      cursor: new Int32Array(buffer, rowBytes * capacity, 1)
    }
  }

  /** Rows in the batch being filled. */
  get length(): number {
    return this.written
  }

  /** Writes `row` into the next slot. Throws, writing nothing, if its payload is not JSON-serializable. */
  add(row: TelemetryRow): void {
    const payload = row.payload === undefined ? undefined : JSON.stringify(row.payload)
    const { at, kind, robot, theta, x, y } = this.columns
    const i = this.head
    robot[i] = this.intern(row.robot)
    kind[i] = this.intern(row.kind)
    at[i] = row.at
    x[i] = row.x ?? NaN
    y[i] = row.y ?? NaN
    theta[i] = row.theta ?? NaN
    if (payload !== undefined) this.payloads[this.written] = payload
    this.head = i + 1 === this.capacity ? 0 : i + 1
    this.written++
  }

  /** The batch filled so far, as the message that hands it to the worker; the next batch starts empty. */
  take(seq: number): BatchMessage {
    const message: BatchMessage = {
      type: "batch",
      seq,
      start: this.start,
      count: this.written,
      reset: this.reset,
      names: this.names,
      payloads: this.payloads
    }
    Atomics.add(this.columns.cursor, 0, this.written)
    this.start = this.head
    this.written = 0
    this.names = []
    this.payloads = []
    this.reset = this.dictionary.size > maxNames
    if (this.reset) this.dictionary.clear()
    return message
  }

  private intern(name: string): number {
    let id = this.dictionary.get(name)
    if (id === undefined) {
      id = this.dictionary.size
      this.dictionary.set(name, id)
      this.names.push(name)
    }
    return id
  }
}
