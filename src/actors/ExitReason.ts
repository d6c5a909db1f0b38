/**
 * Why an actor stopped. Exit reasons are values, as in OTP: monitors receive
 * them in `Down`, links propagate them, and supervisors decide on them.
 *
 * | reason     | OTP                    | meaning                                         |
 * |------------|------------------------|-------------------------------------------------|
 * | `Normal`   | `normal`               | the actor finished its work                      |
 * | `Shutdown` | `shutdown`, `{shutdown, T}` | asked to stop (by its supervisor, the system, a policy) |
 * | `Failure`  | any other term         | it crashed: the `Cause` says how                 |
 * | `Killed`   | `killed`               | it did not stop within its shutdown timeout, or was killed brutally |
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"

/** The actor returned normally or called `ctx.stop()`. */
export class Normal extends Data.TaggedClass("Normal")<{}> {}

/** The actor was asked to stop; `reason` says by whom or why. */
export class Shutdown extends Data.TaggedClass("Shutdown")<{ readonly reason?: string | undefined }> {}

/** The actor crashed: in `init`, `receive`, `terminate`, or by an injected fault. */
export class Failure extends Data.TaggedClass("Failure")<{ readonly cause: Cause.Cause<unknown> }> {}

/** The actor was interrupted without running `terminate` to completion. */
export class Killed extends Data.TaggedClass("Killed")<{}> {}

/** Why an actor stopped. */
export type ExitReason = Normal | Shutdown | Failure | Killed

/** The reason of an actor that finished its work. */
export const normal: ExitReason = new Normal()

/** The reason of an actor that was asked to stop. */
export const shutdown = (reason?: string): ExitReason => reason === undefined ? shutdownPlain : new Shutdown({ reason })
const shutdownPlain = new Shutdown({})

/** The reason of an actor that crashed with `cause`. */
export const failure = (cause: Cause.Cause<unknown>): ExitReason => new Failure({ cause })

/** The reason of an actor that crashed with `error` (a defect). */
export const die = (error: unknown): ExitReason => new Failure({ cause: Cause.die(error) })

/** The reason of an actor that was killed. */
export const killed: ExitReason = new Killed()

/**
 * Whether a reason is abnormal in OTP's sense for links: anything but `Normal`
 * kills a linked actor that does not trap exits.
 */
export const propagatesOverLinks = (reason: ExitReason): boolean => reason._tag !== "Normal"

/**
 * Whether a `transient` child should be restarted: only after a crash or a
 * kill, not after a normal exit or a requested shutdown.
 */
export const isAbnormal = (reason: ExitReason): boolean => reason._tag === "Failure" || reason._tag === "Killed"

/** A one-line human rendering: `normal`, `shutdown(idle)`, `failure(Error: boom)`, `killed`. */
export const format = (reason: ExitReason): string => {
  switch (reason._tag) {
    case "Normal":
      return "normal"
    case "Shutdown":
      return reason.reason === undefined ? "shutdown" : `shutdown(${reason.reason})`
    case "Killed":
      return "killed"
    case "Failure":
      return `failure(${Cause.pretty(reason.cause).split("\n")[0]})`
  }
}
