/**
 * RPCs of the shared pixel canvas: join the board (a snapshot, then batched updates) and place
 * pixels.
 *
 * @since 0.1.0
 */
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Schema from "effect/Schema"
import { Bytes } from "./Bytes.js"

/** A pixel coordinate; `Updates` carries it as u16, so a board is at most 65536 pixels wide. */
export const Coordinate = Schema.Int.pipe(Schema.between(0, 65_535))

/** A palette index; `Updates` carries it as u8. */
export const ColorIndex = Schema.Int.pipe(Schema.between(0, 255))

/** The whole board, first item of a `CanvasJoin` stream. */
export const Snapshot = Schema.TaggedStruct("Snapshot", {
  width: Schema.Int.pipe(Schema.between(1, 65_536)),
  height: Schema.Int.pipe(Schema.between(1, 65_536)),
  /** CSS colors, indexed by `ColorIndex`. */
  palette: Schema.Array(Schema.String),
  /** One palette index per pixel, row-major: pixel (x, y) is byte `y * width + x`. */
  pixels: Bytes,
  /** The board's sequence number when the snapshot was taken. */
  seq: Schema.Int
})

/** @see Snapshot */
export type Snapshot = typeof Snapshot.Type

/** The bytes of one pixel in `Updates`: x u16, y u16, color u8, big-endian. */
export const bytesPerUpdate = 5

/** The pixels placed during one broadcast tick (30 Hz), after the snapshot. */
export const Updates = Schema.TaggedStruct("Updates", {
  /** The board's sequence number after these pixels. */
  seq: Schema.Int,
  /** `bytesPerUpdate` bytes per pixel; see `packPixels`. */
  pixels: Bytes.pipe(
    Schema.filter((bytes) => bytes.length % bytesPerUpdate === 0 || `expected a multiple of ${bytesPerUpdate} bytes`)
  )
})

/** @see Updates */
export type Updates = typeof Updates.Type

/** An item of a `CanvasJoin` stream. */
export const CanvasEvent = Schema.Union(Snapshot, Updates)

/** @see CanvasEvent */
export type CanvasEvent = typeof CanvasEvent.Type

/** One placed pixel. */
export interface Pixel {
  readonly x: number
  readonly y: number
  readonly color: number
}

/** Packs pixels into the `Updates.pixels` format. */
export const packPixels = (pixels: ReadonlyArray<Pixel>): Uint8Array => {
  const bytes = new Uint8Array(pixels.length * bytesPerUpdate)
  const view = new DataView(bytes.buffer)
  pixels.forEach(({ color, x, y }, i) => {
    const offset = i * bytesPerUpdate
    view.setUint16(offset, x)
    view.setUint16(offset + 2, y)
    view.setUint8(offset + 4, color)
  })
  return bytes
}

/** Reads the pixels of an `Updates.pixels` byte string. */
export const unpackPixels = (bytes: Uint8Array): Array<Pixel> => {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const pixels: Array<Pixel> = []
  for (let offset = 0; offset + bytesPerUpdate <= bytes.length; offset += bytesPerUpdate) {
    pixels.push({ x: view.getUint16(offset), y: view.getUint16(offset + 2), color: view.getUint8(offset + 4) })
  }
  return pixels
}

/** The result of a placed pixel. */
export const Placed = Schema.Struct({
  /** The board's sequence number that includes the pixel. */
  seq: Schema.Int,
  /** When this client may place its next pixel. */
  cooldownUntil: Schema.DateTimeUtcFromNumber
})

/** @see Placed */
export type Placed = typeof Placed.Type

/** The client placed a pixel too soon after its previous one. */
export class Cooldown extends Schema.TaggedError<Cooldown>()("Cooldown", {
  retryAfterMs: Schema.Number
}) {}

/** The pixel lies outside the board. */
export class OutOfBounds extends Schema.TaggedError<OutOfBounds>()("OutOfBounds", {}) {}

/** The color is not in the board's palette. */
export class InvalidColor extends Schema.TaggedError<InvalidColor>()("InvalidColor", {}) {}

/** The canvas cannot serve right now (restarting, read-only); try again later. */
export class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", {
  reason: Schema.String
}) {}

/** Subscribes to the board: one `Snapshot`, then one `Updates` per tick that had pixels. */
export const CanvasJoin = Rpc.make("CanvasJoin", {
  success: CanvasEvent,
  error: Unavailable,
  stream: true
})

/** Places one pixel. */
export const CanvasPlace = Rpc.make("CanvasPlace", {
  payload: { x: Coordinate, y: Coordinate, color: ColorIndex },
  success: Placed,
  error: Schema.Union(Cooldown, OutOfBounds, InvalidColor, Unavailable)
})

/** The canvas RPCs. */
export class CanvasRpcs extends RpcGroup.make(CanvasJoin, CanvasPlace) {}
