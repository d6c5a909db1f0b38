/**
 * systemd's notification protocol (`sd_notify`): READY=1 once listening, WATCHDOG=1 while the
 * event loop is healthy, STOPPING=1 on shutdown, STATUS=… for `systemctl status`.
 *
 * The protocol is a datagram on the unix socket named by `$NOTIFY_SOCKET`. Node cannot send unix
 * datagrams (`dgram` is UDP only, `net` is streams only), and a native addon would be one more
 * thing to build. So each notification runs `systemd-notify`, which ships with systemd and
 * therefore exists wherever `$NOTIFY_SOCKET` does. Since systemd 246 it waits (a `BARRIER=1`)
 * until the manager has read the message, so the message is attributed to the unit even though
 * the sender is a child process; the unit needs `NotifyAccess=all` for that. A notification is
 * a few milliseconds of a child process, and there is one every `WatchdogSec / 2`.
 *
 * Without `$NOTIFY_SOCKET` (not under systemd) every call does nothing.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { execFile } from "node:child_process"

/** Sends notifications to the service manager. */
export interface Notifier {
  /** Whether `$NOTIFY_SOCKET` is set. */
  readonly enabled: boolean
  /** Sends `KEY=value` assignments in one message; a failure is logged, never raised. */
  readonly notify: (...assignments: ReadonlyArray<string>) => Effect.Effect<void>
  /** The watchdog interval systemd asked for (`$WATCHDOG_USEC`), in ms, if it is for this process. */
  readonly watchdogMs: number | undefined
}

/** The notifier of this process's environment. */
export const make = (env: Record<string, string | undefined> = process.env, command = "systemd-notify"): Notifier => {
  const socket = env.NOTIFY_SOCKET
  const usec = Number(env.WATCHDOG_USEC)
  const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === process.pid
  return {
    enabled: socket !== undefined && socket !== "",
    watchdogMs: socket !== undefined && Number.isFinite(usec) && usec > 0 && forUs ? usec / 1000 : undefined,
    notify: (...assignments) =>
      socket === undefined || socket === ""
        ? Effect.void
        : Effect.async<void>((resume) => {
          const child = execFile(
            command,
            [...assignments],
            { env: { ...process.env, NOTIFY_SOCKET: socket }, timeout: 5_000 },
            (error) =>
              resume(
                error === null
                  ? Effect.void
                  : Effect.logWarning(`sd_notify ${assignments.join(" ")} failed: ${error.message}`)
              )
          )
          return Effect.sync(() => child.kill())
        })
  }
}

/**
 * Pings the watchdog every half interval while `healthy()` holds. An event loop that stalls
 * delays the pings by itself; `healthy` adds what the loop cannot see (e.g. the actor tree is
 * gone). Runs for as long as the scope.
 */
export const watchdog = (notifier: Notifier, healthy: () => boolean): Effect.Effect<void, never, Scope.Scope> => {
  const interval = notifier.watchdogMs
  if (interval === undefined) return Effect.void
  return Effect.suspend(() => (healthy() ? notifier.notify("WATCHDOG=1") : Effect.logWarning("watchdog ping withheld: unhealthy"))).pipe(
    Effect.zipRight(Effect.sleep(interval / 2)),
    Effect.forever,
    Effect.forkScoped,
    Effect.asVoid
  )
}
