/**
 * The whole store of one node on one SQLite file: the database, the canvas,
 * the control audit log, the emergency-stop latches and the telemetry log, as one layer for
 * `main.ts`.
 *
 * @since 0.1.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Layer from "effect/Layer"
import * as AuditLog from "./AuditLog.js"
import * as CanvasStore from "./CanvasStore.js"
import * as Database from "./Database.js"
import type { StoreHealth } from "./StoreHealth.js"
import * as StopLatchStore from "./StopLatchStore.js"
import type { StoreUnavailable } from "./StoreUnavailable.js"
import * as TelemetryLog from "./TelemetryLog.js"

/** The options of each part; only the file is required. */
export interface StoreOptions {
  readonly database: Database.DatabaseOptions
  readonly canvas?: CanvasStore.CanvasOptions | undefined
  readonly telemetry?: TelemetryLog.TelemetryOptions | undefined
}

/** Every store service, and the database under them. Closing it flushes telemetry, then closes the file. */
export const layer = (options: StoreOptions): Layer.Layer<
  | CanvasStore.CanvasStore
  | AuditLog.AuditLog
  | StopLatchStore.StopLatchStore
  | TelemetryLog.TelemetryLog
  | Database.Database
  | StoreHealth
  | SqliteClient.SqliteClient
  | SqlClient.SqlClient,
  StoreUnavailable | CanvasStore.CanvasShapeMismatch
> =>
  Layer.mergeAll(
    CanvasStore.layer(options.canvas),
    AuditLog.layer,
    StopLatchStore.layer,
    TelemetryLog.layer(options.telemetry)
  ).pipe(Layer.provideMerge(Database.layer(options.database)))
