/**
 * The SQLite database of one node: the file, its connection on the event loop
 * (`SqliteClient`), its schema, its write gate and its health.
 *
 * Opening it creates the directory if missing, puts the file in WAL mode with
 * `synchronous = NORMAL` (a commit appends to the WAL without an fsync; see
 * docs/store.md for why that survives `kill -9`), sets the busy timeout and
 * runs the migrations. Every store write goes through `write`: one
 * `BEGIN IMMEDIATE … COMMIT` transaction, through the write gate, its outcome
 * reported to `StoreHealth`, and a file that cannot take writes surfaces as a
 * typed `StoreUnavailable`. A failed transaction is rolled back whole, so
 * nothing that committed is touched and nothing half-written remains.
 *
 * @since 0.1.0
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import type { MigrationError } from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Migrations from "./Migrations.js"
import * as StoreHealth from "./StoreHealth.js"
import { fromSqliteError, StoreUnavailable } from "./StoreUnavailable.js"
import * as WriteGate from "./WriteGate.js"

/** Where the service keeps its database unless configured otherwise. */
export const defaultFilename = "./data/fleetvisor.db"

/** How to open the database. */
export interface DatabaseOptions {
  /** The SQLite file (the service's default is `defaultFilename`); its directory is created if missing. */
  readonly filename: string
  /** How long a writer waits for the write lock held by another process before `busy`. */
  readonly busyTimeout?: Duration.DurationInput | undefined
  /** While degraded, how often a probe write checks whether the file takes writes again. */
  readonly probeInterval?: Duration.DurationInput | undefined
}

/**
 * Default busy timeout: 5 s. Within this process the write gate orders writers,
 * so the timeout only matters for another process (a backup, the sqlite3 shell);
 * 5 s rides out a checkpoint or a short manual query, longer would hide a stuck one.
 */
export const defaultBusyTimeout: Duration.DurationInput = "5 seconds"

/**
 * Default probe interval: 5 s. Writers report recovery themselves on their next
 * commit; the probe only matters when no one writes, and /readyz can lag that much.
 */
export const defaultProbeInterval: Duration.DurationInput = "5 seconds"

/** The database as the stores use it. */
export class Database extends Context.Tag("fleetvisor/store/Database")<Database, {
  /** The SQLite file, for the telemetry worker's own connection. */
  readonly filename: string
  /** The busy timeout, for the same. */
  readonly busyTimeout: Duration.Duration
  /** Orders this thread's writers with the telemetry worker. */
  readonly gate: WriteGate.WriteGate
  /** Runs `transaction` as one write transaction and reports its outcome to `StoreHealth`. */
  readonly write: <A, R>(transaction: Effect.Effect<A, SqlError, R>) => Effect.Effect<A, StoreUnavailable, R>
  /** Runs queries in one read transaction (a consistent snapshot); errors as in `write`. */
  readonly read: <A, R>(query: Effect.Effect<A, SqlError, R>) => Effect.Effect<A, StoreUnavailable, R>
}>() {}

/** A SQL error is either the file being unavailable (typed) or a bug in the store (defect). */
const unavailableOrDie = (error: SqlError | MigrationError): Effect.Effect<never, StoreUnavailable> =>
  Option.match(fromSqliteError(error.cause), { onNone: () => Effect.die(error), onSome: Effect.fail })

const makeDirectory = (filename: string) =>
  Effect.try({
    try: () => fs.mkdirSync(path.dirname(path.resolve(filename)), { recursive: true }),
    catch: (error) =>
      new StoreUnavailable({
        reason: "cannot-open",
        code: (error as NodeJS.ErrnoException).code ?? "EIO",
        detail: String(error)
      })
  })

/** Opens the client; better-sqlite3 throws from its constructor, which `make` lets escape as a defect. */
const openClient = (filename: string) =>
  SqliteClient.make({ filename }).pipe(
    Effect.catchAllDefect((defect) =>
      Option.match(fromSqliteError(defect), { onNone: () => Effect.die(defect), onSome: Effect.fail })
    )
  )

/**
 * One transaction on the event loop's connection, begun with `begin`.
 * @effect/sql's `withTransaction` turns a failed COMMIT into a defect and leaves
 * the transaction open; a full disk fails exactly at COMMIT, so the store runs
 * its own: BEGIN, the body on the reserved connection (other fibers' statements
 * wait), COMMIT, and ROLLBACK on any failure.
 */
const transaction = (sql: SqlClient.SqlClient, begin: string) => <A, R>(body: Effect.Effect<A, SqlError, R>) =>
  Effect.scoped(Effect.flatMap(sql.reserve, (conn) => {
    const run = (statement: string) => conn.executeUnprepared(statement, [], undefined)
    return Effect.uninterruptibleMask((restore) =>
      run(begin).pipe(
        Effect.zipRight(restore(Effect.provideService(body, SqlClient.TransactionConnection, [conn, 0]))),
        Effect.tap(() => run("COMMIT")),
        Effect.tapError(() => Effect.ignore(run("ROLLBACK")))
      )
    )
  }))

/** Opens the database at `options.filename`; closing the scope closes it. */
export const layer = (
  options: DatabaseOptions
): Layer.Layer<Database | SqliteClient.SqliteClient | SqlClient.SqlClient | StoreHealth.StoreHealth, StoreUnavailable> =>
  Layer.scopedContext(Effect.gen(function*() {
    yield* makeDirectory(options.filename)
    const sql = yield* openClient(options.filename)
    const busyTimeout = Duration.decode(options.busyTimeout ?? defaultBusyTimeout)
    yield* sql.unsafe("PRAGMA synchronous = NORMAL").pipe(
      Effect.zipRight(sql.unsafe(`PRAGMA busy_timeout = ${Math.round(Duration.toMillis(busyTimeout))}`)),
      Effect.zipRight(Migrations.run),
      Effect.provideService(SqlClient.SqlClient, sql),
      Effect.catchAll(unavailableOrDie)
    )

    const health = yield* StoreHealth.make
    const gate = yield* WriteGate.make
    // IMMEDIATE takes the write lock at BEGIN: no deferred read-to-write upgrade to fail.
    const writeTransaction = transaction(sql, "BEGIN IMMEDIATE")
    const readTransaction = transaction(sql, "BEGIN")
    const database: Database["Type"] = {
      filename: options.filename,
      busyTimeout,
      gate,
      write: (body) =>
        gate.withGate(writeTransaction(body)).pipe(
          Effect.catchAll(unavailableOrDie),
          Effect.tapBoth({ onFailure: health.recordFailure, onSuccess: () => health.recordSuccess })
        ),
      read: (query) => Effect.catchAll(readTransaction(query), unavailableOrDie)
    }

    const probe = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      database.write(
        sql`INSERT INTO store_heartbeat (id, at) VALUES (1, ${now}) ON CONFLICT (id) DO UPDATE SET at = excluded.at`
      ))
    yield* health.get.pipe(
      Effect.flatMap((status) => status._tag === "Degraded" ? Effect.ignore(probe) : Effect.void),
      Effect.repeat(Schedule.spaced(options.probeInterval ?? defaultProbeInterval)),
      Effect.forkScoped
    )

    return Context.make(Database, database).pipe(
      Context.add(SqliteClient.SqliteClient, sql),
      Context.add(SqlClient.SqlClient, sql),
      Context.add(StoreHealth.StoreHealth, health)
    )
  })).pipe(Layer.provide(Reactivity.layer))
