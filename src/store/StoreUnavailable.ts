/**
 * The one error a store write can fail with: the database file cannot take
 * writes right now (read-only, disk full, I/O error, locked, corrupt). Anything
 * else SQLite reports is a bug in the store and surfaces as a defect.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Option from "effect/Option"

/** Why the store cannot write, in words an operator acts on. */
export type Reason =
  | "read-only"
  | "disk-full"
  | "io-error"
  | "busy"
  | "corrupt"
  | "cannot-open"
  | "worker-exited"

/** Writes are refused for `reason`; `code` is SQLite's (extended) result code. */
export class StoreUnavailable extends Data.TaggedError("StoreUnavailable")<{
  readonly reason: Reason
  readonly code: string
  readonly detail: string
}> {
  override get message() {
    return `store unavailable (${this.reason}): ${this.code}: ${this.detail}`
  }
}

/** SQLite primary result codes that mean "the file cannot take writes now". */
const reasons: Readonly<Record<string, Reason>> = {
  SQLITE_READONLY: "read-only",
  SQLITE_FULL: "disk-full",
  SQLITE_IOERR: "io-error",
  SQLITE_BUSY: "busy",
  SQLITE_LOCKED: "busy",
  SQLITE_CORRUPT: "corrupt",
  SQLITE_NOTADB: "corrupt",
  SQLITE_CANTOPEN: "cannot-open"
}

/** The primary codes above, handed to the telemetry worker's thread. */
export const unavailableCodes: ReadonlyArray<string> = Object.keys(reasons)

/** `SQLITE_IOERR_WRITE` → `SQLITE_IOERR`. */
const primaryCode = (code: string): string => code.split("_", 2).join("_")

/** `error[name]` as a string, or "". */
const field = (error: unknown, name: "code" | "message"): string =>
  typeof error === "object" && error !== null && name in error ? String((error as Record<typeof name, unknown>)[name]) : ""

/**
 * Classifies an error thrown by better-sqlite3 (a `SqliteError`, or its
 * `{ code, message }` posted by the worker): `Some` when it means the store is
 * unavailable, `None` for anything else.
 */
export const fromSqliteError = (error: unknown): Option.Option<StoreUnavailable> => {
  const code = field(error, "code")
  const reason = reasons[primaryCode(code)]
  return reason === undefined
    ? Option.none()
    : Option.some(new StoreUnavailable({ reason, code, detail: field(error, "message") }))
}
