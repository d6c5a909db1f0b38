/**
 * The audit log of control commands: who sent which command with which
 * parameters to which robot, when, and how it ended. Append-only; each
 * `record` is its own committed transaction, so an entry is on disk before
 * the command's reply is.
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

/** One control command and its outcome. */
export const AuditEntry = Schema.Struct({
  /** When the command was issued, epoch ms. */
  at: Schema.Number,
  /** Who issued it (user or service identity). */
  who: Schema.String,
  /** The user's highest role when they were authenticated (`operator`). */
  role: Schema.optional(Schema.String),
  /** The session it came through (`session:<id>` without the prefix). */
  session: Schema.optional(Schema.String),
  robot: Schema.String,
  command: Schema.String,
  /** The command's parameters; any JSON value. */
  params: Schema.Unknown,
  result: Schema.Literal("ok", "error"),
  /** Why it failed, or a note on success. */
  message: Schema.optional(Schema.String)
})

/** One control command and its outcome. */
export type AuditEntry = typeof AuditEntry.Type

/** Which entries to return, newest first. */
export interface AuditQuery {
  /** Only this robot's. */
  readonly robot?: string | undefined
  /** Only those at or after this time, epoch ms. */
  readonly since?: number | undefined
  readonly limit: number
}

/** An `audit_log` row ↔ an `AuditEntry`: `params` is JSON text, a missing message is NULL. */
const AuditRow = Schema.Struct({
  ...AuditEntry.fields,
  params: Schema.parseJson(),
  message: Schema.optionalWith(Schema.String, { nullable: true }),
  role: Schema.optionalWith(Schema.String, { nullable: true }),
  session: Schema.optionalWith(Schema.String, { nullable: true })
})

/** The control audit log. */
export class AuditLog extends Context.Tag("fleetvisor/store/AuditLog")<AuditLog, {
  /** Appends `entry`; returns once it is committed. */
  readonly record: (entry: AuditEntry) => Effect.Effect<void, StoreUnavailable>
  /** The newest entries matching `query`. */
  readonly query: (query: AuditQuery) => Effect.Effect<ReadonlyArray<AuditEntry>, StoreUnavailable>
}>() {}

/** The audit log over the `Database`. */
export const layer: Layer.Layer<AuditLog, never, Database | SqlClient.SqlClient> = Layer.effect(
  AuditLog,
  Effect.gen(function*() {
    const database = yield* Database
    const sql = yield* SqlClient.SqlClient

    const insert = SqlSchema.void({
      Request: AuditRow,
      execute: (row) => sql`INSERT INTO audit_log ${sql.insert(row)}`
    })

    const select = SqlSchema.findAll({
      Request: Schema.Struct({ robot: Schema.optional(Schema.String), since: Schema.optional(Schema.Number), limit: Schema.Number }),
      Result: AuditRow,
      execute: ({ limit, robot, since }) =>
        sql`
          SELECT at, who, role, session, robot, command, params, result, message FROM audit_log
          WHERE ${
          sql.and([
            ...(robot === undefined ? [] : [sql`robot = ${robot}`]),
            ...(since === undefined ? [] : [sql`at >= ${since}`])
          ])
        }
          ORDER BY at DESC, id DESC
          LIMIT ${limit}`
    })

    // A parameter that is not JSON, or a row that does not decode, is a bug: a defect.
    return {
      record: (entry) => database.write(Effect.catchTag(insert(entry), "ParseError", Effect.die)),
      query: (query) => database.read(Effect.catchTag(select(query), "ParseError", Effect.die))
    }
  })
)
