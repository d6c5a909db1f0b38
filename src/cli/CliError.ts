/**
 * A failure of a `fleetvisor` command to report to the user in one line, without a stack trace,
 * with the exit code scripts see (`ExitCode`).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/** The exit codes of `fleetvisor` commands (BSD sysexits where one fits). */
export const ExitCode = {
  /** Done. */
  ok: 0,
  /** The fleet refused or could not do it (a typed error: stopped, held by another, unknown robot…). */
  refused: 1,
  /** The service could not be reached, or the connection was lost. */
  unreachable: 3,
  /** The command line is wrong (EX_USAGE). */
  usage: 64,
  /** No credential, a wrong one, or a role too low for this (EX_NOPERM). */
  notAllowed: 77
} as const

/** What went wrong, in words for the user, and the exit code (1 unless said). */
export class CliError extends Data.TaggedError("CliError")<{
  readonly message: string
  readonly exitCode?: number | undefined
}> {}
