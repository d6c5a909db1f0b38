/**
 * A failure of a `fleetvisor` command to report to the user in one line, without a stack trace
 * (exit code 1).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/** What went wrong, in words for the user. */
export class CliError extends Data.TaggedError("CliError")<{ readonly message: string }> {}
