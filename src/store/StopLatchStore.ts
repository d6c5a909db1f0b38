/**
 * The emergency-stop latches on disk: one row per latched robot, written before the stop is
 * answered and deleted by the Reset that clears it, so a latch outlives `kill -9` of the
 * process. The fleet keeps the latches in memory (`StopLatches`) and writes through this
 * store; at start it reads them back.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqlSchema from "@effect/sql/SqlSchema"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { Database } from "./Database.js"
import type { StoreUnavailable } from "./StoreUnavailable.js"

/** One latched robot. */
export const LatchRow = Schema.Struct({
  robot: Schema.String,
  kind: Schema.Literal("arm", "agv"),
  /** When the stop latched it, epoch ms. */
  since: Schema.Number,
  /** Who stopped it. */
  by: Schema.String
})

/** One latched robot. */
export type LatchRow = typeof LatchRow.Type

/** The latches on disk. */
export class StopLatchStore extends Context.Tag("fleetvisor/store/StopLatchStore")<StopLatchStore, {
  /** Every latched robot. */
  readonly load: Effect.Effect<ReadonlyArray<LatchRow>, StoreUnavailable>
  /** Writes the robot's latch (a second stop of a latched robot keeps the first row); committed when it returns. */
  readonly save: (row: LatchRow) => Effect.Effect<void, StoreUnavailable>
  /** Deletes the robot's latch; committed when it returns. */
  readonly remove: (robot: string) => Effect.Effect<void, StoreUnavailable>
}>() {}

/** The latch store over the `Database`. */
export const layer: Layer.Layer<StopLatchStore, never, Database | SqlClient.SqlClient> = Layer.effect(
  StopLatchStore,
  Effect.gen(function*() {
    const database = yield* Database
    const sql = yield* SqlClient.SqlClient
    const select = SqlSchema.findAll({
      Request: Schema.Void,
      Result: LatchRow,
      execute: () => sql`SELECT robot, kind, since, by FROM stop_latches ORDER BY since`
    })
    // A row that does not decode is a bug of this module: a defect.
    return {
      load: database.read(Effect.catchTag(select(undefined), "ParseError", Effect.die)),
      save: (row) =>
        database.write(sql`INSERT INTO stop_latches ${sql.insert(row)} ON CONFLICT (robot) DO NOTHING`),
      remove: (robot) => database.write(sql`DELETE FROM stop_latches WHERE robot = ${robot}`)
    }
  })
)
