/**
 * Persistence of the shared pixel board and of each user's last placement.
 *
 * The board is stored in bands of whole rows (`canvas_chunks`), one colour
 * index per byte, each band small enough to fit in one 4 KiB page: loading the
 * 1000×1000 board reads 250 blobs and copies them into place, and painting a
 * pixel rewrites the one page of its band. The canvas actor calls `placeBatch`
 * once per tick and acknowledges its clients after it returns: the batch is
 * one transaction, so an acknowledged pixel is committed and survives `kill -9`.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Database } from "./Database.js"
import type { StoreUnavailable } from "./StoreUnavailable.js"

/** The board's shape. Width and height are fixed once the board exists; the palette may grow. */
export interface CanvasOptions {
  /** Default 1000. */
  readonly width?: number | undefined
  /** Default 1000. */
  readonly height?: number | undefined
  /** Number of colours; a pixel's colour is an index below it. Default 16. */
  readonly palette?: number | undefined
}

/** One pixel placement: `user` painted (`x`, `y`) with `color` at `at` (epoch ms). */
export interface Pixel {
  readonly x: number
  readonly y: number
  readonly color: number
  readonly user: string
  readonly at: number
}

/** The whole board as committed. */
export interface CanvasSnapshot {
  readonly width: number
  readonly height: number
  readonly palette: number
  /** One colour index per pixel, row-major: pixel (x, y) is `pixels[y * width + x]`. */
  readonly pixels: Uint8Array
  /** Pixels placed since the board was created; the last placed pixel has this number. */
  readonly version: number
}

/** The options do not fit the board already in the file. */
export class CanvasShapeMismatch extends Data.TaggedError("CanvasShapeMismatch")<{
  readonly stored: { readonly width: number; readonly height: number; readonly palette: number }
  readonly requested: { readonly width: number; readonly height: number; readonly palette: number }
}> {
  override get message() {
    const { requested: r, stored: s } = this
    return `the stored board is ${s.width}×${s.height} with ${s.palette} colours; ` +
      `${r.width}×${r.height} with ${r.palette} colours cannot open it`
  }
}

/** The canvas's persistence. */
export class CanvasStore extends Context.Tag("fleetvisor/store/CanvasStore")<CanvasStore, {
  /** The committed board and its version. */
  readonly load: Effect.Effect<CanvasSnapshot, StoreUnavailable>
  /**
   * Commits `pixels` (later ones win) and their users' last placement times in
   * one transaction; returns the new version. An invalid pixel is a defect:
   * the caller validates its clients' input.
   */
  readonly placeBatch: (pixels: ReadonlyArray<Pixel>) => Effect.Effect<number, StoreUnavailable>
  /** Each user whose last placement is at or after `since` (epoch ms), with that time. */
  readonly cooldowns: (since: number) => Effect.Effect<ReadonlyMap<string, number>, StoreUnavailable>
  /**
   * Replaces the whole board and its version in one transaction, and takes in users' last
   * placements (later times win): a replica adopting the board another node sent. A board of
   * another size is a defect.
   */
  readonly replace: (board: {
    readonly pixels: Uint8Array
    readonly version: number
    readonly cooldowns: ReadonlyArray<readonly [string, number]>
  }) => Effect.Effect<void, StoreUnavailable>
}>() {}

/** Default board: 1000×1000 pixels, 16 colours (the r/place shape). */
export const defaults = { width: 1000, height: 1000, palette: 16 } as const

/**
 * Bytes per band at most: a 4 KiB page holds a row of up to 4,061 bytes without
 * an overflow page, so a band of ⌊4000 / width⌋ rows is one page to rewrite.
 */
const bandBytes = 4000

interface Shape {
  readonly width: number
  readonly height: number
  readonly palette: number
  readonly rows_per_chunk: number
}

/** The canvas store over the `Database`; creates the board on first use. */
export const layer = (
  options: CanvasOptions = {}
): Layer.Layer<CanvasStore, StoreUnavailable | CanvasShapeMismatch, Database | SqlClient.SqlClient> =>
  Layer.effect(
    CanvasStore,
    Effect.gen(function*() {
      const database = yield* Database
      const sql = yield* SqlClient.SqlClient
      const requested = { ...defaults, ...options }
      const shape = yield* openBoard(requested)
      const { width, height, palette, rows_per_chunk: rowsPerChunk } = shape
      const chunkSize = width * rowsPerChunk
      const chunkLength = (chunk: number) => Math.min(chunkSize, width * height - chunk * chunkSize)

      const isValid = (p: Pixel) =>
        Number.isInteger(p.x) && p.x >= 0 && p.x < width &&
        Number.isInteger(p.y) && p.y >= 0 && p.y < height &&
        Number.isInteger(p.color) && p.color >= 0 && p.color < palette

      const writeBatch = (pixels: ReadonlyArray<Pixel>) =>
        Effect.gen(function*() {
          const touched = [...new Set(pixels.map((p) => Math.floor(p.y / rowsPerChunk)))]
          const stored = yield* sql<{ chunk: number; pixels: Uint8Array }>`
            SELECT chunk, pixels FROM canvas_chunks WHERE ${sql.in("chunk", touched)}`
          const bands = new Map(stored.map((row) => [row.chunk, row.pixels]))
          for (const p of pixels) {
            const chunk = Math.floor(p.y / rowsPerChunk)
            let band = bands.get(chunk)
            if (band === undefined) bands.set(chunk, band = new Uint8Array(chunkLength(chunk)))
            band[(p.y % rowsPerChunk) * width + p.x] = p.color
          }
          yield* sql`INSERT INTO canvas_chunks ${
            sql.insert([...bands].map(([chunk, pixels]) => ({ chunk, pixels })))
          } ON CONFLICT (chunk) DO UPDATE SET pixels = excluded.pixels`
          yield* sql`
            INSERT INTO canvas_cooldowns (user, last_at)
            SELECT value ->> 0, value ->> 1 FROM json_each(${JSON.stringify(pixels.map((p) => [p.user, p.at]))}) WHERE true
            ON CONFLICT (user) DO UPDATE SET last_at = max(last_at, excluded.last_at)`
          const [row] = yield* sql<{ version: number }>`
            UPDATE canvas SET version = version + ${pixels.length} WHERE id = 1 RETURNING version`
          return row.version
        })

      const upsertCooldowns = (cooldowns: ReadonlyArray<readonly [string, number]>) =>
        cooldowns.length === 0 ? Effect.void : sql`
          INSERT INTO canvas_cooldowns (user, last_at)
          SELECT value ->> 0, value ->> 1 FROM json_each(${JSON.stringify(cooldowns)}) WHERE true
          ON CONFLICT (user) DO UPDATE SET last_at = max(last_at, excluded.last_at)`.pipe(Effect.asVoid)

      const chunks = Math.ceil(height / rowsPerChunk)
      const replaceBoard = (pixels: Uint8Array, to: number, cooldowns: ReadonlyArray<readonly [string, number]>) =>
        Effect.gen(function*() {
          // 200 bands a statement keeps within SQLite's bound on parameters.
          for (let first = 0; first < chunks; first += 200) {
            const rows = Array.from({ length: Math.min(200, chunks - first) }, (_, i) => ({
              chunk: first + i,
              pixels: pixels.slice((first + i) * chunkSize, (first + i) * chunkSize + chunkLength(first + i))
            }))
            yield* sql`INSERT INTO canvas_chunks ${sql.insert(rows)} ON CONFLICT (chunk) DO UPDATE SET pixels = excluded.pixels`
          }
          yield* upsertCooldowns(cooldowns)
          yield* sql`UPDATE canvas SET version = ${to} WHERE id = 1`
        })

      const version = sql<{ version: number }>`SELECT version FROM canvas WHERE id = 1`.pipe(
        Effect.map(([row]) => row.version)
      )

      return {
        load: database.read(Effect.gen(function*() {
          const board = new Uint8Array(width * height)
          const chunks = yield* sql<{ chunk: number; pixels: Uint8Array }>`SELECT chunk, pixels FROM canvas_chunks`
          for (const { chunk, pixels } of chunks) board.set(pixels, chunk * chunkSize)
          return { width, height, palette, pixels: board, version: yield* version }
        })),
        placeBatch: (pixels) => {
          const invalid = pixels.find((p) => !isValid(p))
          if (invalid !== undefined) {
            return Effect.dieMessage(`invalid pixel for a ${width}×${height} board of ${palette} colours: ${JSON.stringify(invalid)}`)
          }
          return pixels.length === 0 ? database.read(version) : database.write(writeBatch(pixels))
        },
        cooldowns: (since) =>
          database.read(sql<{ user: string; last_at: number }>`
            SELECT user, last_at FROM canvas_cooldowns WHERE last_at >= ${since}`).pipe(
            Effect.map((rows) => new Map(rows.map((row) => [row.user, row.last_at])))
          ),
        replace: ({ cooldowns, pixels, version: to }) =>
          pixels.length !== width * height || !Number.isSafeInteger(to) || to < 0
            ? Effect.dieMessage(`a board of ${pixels.length} pixels at version ${to} cannot replace a ${width}×${height} board`)
            : database.write(replaceBoard(pixels, to, cooldowns))
      }
    })
  )

/** Creates the board, or opens the stored one if it has the requested size (growing its palette if asked). */
const openBoard = (requested: { readonly width: number; readonly height: number; readonly palette: number }) =>
  Effect.gen(function*() {
    const database = yield* Database
    const sql = yield* SqlClient.SqlClient
    const rowsPerChunk = Math.max(1, Math.floor(bandBytes / requested.width))
    const stored = yield* database.write(Effect.gen(function*() {
      yield* sql`
        INSERT INTO canvas (id, width, height, palette, rows_per_chunk, version)
        VALUES (1, ${requested.width}, ${requested.height}, ${requested.palette}, ${rowsPerChunk}, 0)
        ON CONFLICT (id) DO UPDATE SET palette = max(palette, excluded.palette)
        WHERE width = excluded.width AND height = excluded.height`
      const [row] = yield* sql<Shape>`SELECT width, height, palette, rows_per_chunk FROM canvas WHERE id = 1`
      return row
    }))
    if (stored.width !== requested.width || stored.height !== requested.height || stored.palette !== requested.palette) {
      const { height, palette, width } = stored
      return yield* new CanvasShapeMismatch({ stored: { width, height, palette }, requested })
    }
    return stored
  })
