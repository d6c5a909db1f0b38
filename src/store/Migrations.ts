/**
 * The schema of the store, as @effect/sql migrations (recorded in the
 * `effect_sql_migrations` table). A release that changes the schema appends a
 * migration; released migrations are never edited.
 *
 * @since 0.1.0
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const statements = (...sql: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (client) => Effect.forEach(sql, (statement) => client.unsafe(statement), { discard: true }))

const initial = statements(
  // The board's shape and its version (pixels placed so far). One row.
  `CREATE TABLE canvas (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    palette INTEGER NOT NULL,
    rows_per_chunk INTEGER NOT NULL,
    version INTEGER NOT NULL
  )`,
  // The board in bands of whole rows, one colour index per byte; a band is
  // sized to fit in one page, so painting a pixel rewrites one page.
  `CREATE TABLE canvas_chunks (
    chunk INTEGER PRIMARY KEY,
    pixels BLOB NOT NULL
  )`,
  `CREATE TABLE canvas_cooldowns (
    user TEXT PRIMARY KEY,
    last_at INTEGER NOT NULL
  ) WITHOUT ROWID`,
  `CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    who TEXT NOT NULL,
    robot TEXT NOT NULL,
    command TEXT NOT NULL,
    params TEXT NOT NULL,
    result TEXT NOT NULL CHECK (result IN ('ok', 'error')),
    message TEXT
  )`,
  `CREATE INDEX audit_log_by_robot ON audit_log (robot, at)`,
  `CREATE INDEX audit_log_by_time ON audit_log (at)`,
  // Written by the telemetry worker; `at` is indexed for retention.
  `CREATE TABLE telemetry (
    robot TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    x REAL,
    y REAL,
    theta REAL,
    payload TEXT
  )`,
  `CREATE INDEX telemetry_by_time ON telemetry (at)`,
  // The probe's row: a degraded store writes here to find out it recovered.
  `CREATE TABLE store_heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
  )`
)

const stopLatches = statements(
  // Emergency-stop latches: a robot listed here refuses motion until an operator's Reset
  // deletes its row. Written before a stop is answered, read when the node starts.
  `CREATE TABLE stop_latches (
    robot TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('arm', 'agv')),
    since INTEGER NOT NULL,
    by TEXT NOT NULL
  ) WITHOUT ROWID`
)

const auditIdentity = statements(
  // Who was authenticated: the user's role and the session of each control action (NULL before).
  `ALTER TABLE audit_log ADD COLUMN role TEXT`,
  `ALTER TABLE audit_log ADD COLUMN session TEXT`
)

/** Every migration, in order. */
export const loader: Migrator.Loader = Migrator.fromRecord({
  "0001_initial": initial,
  "0002_stop_latches": stopLatches,
  "0003_audit_identity": auditIdentity
})

/** Brings the schema up to date, each migration in a transaction. */
export const run = Migrator.make({})({ loader })
