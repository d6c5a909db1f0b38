/**
 * Bounded logging of what outsiders can repeat at will (invalid robot messages, refused AGVs,
 * crashes in a loop): one line per key per window (10 s), then a single summary line
 * ("… and 1,234 more in the last 10 s"), and every robot-, topic- or user-controlled string cut
 * to an excerpt ({@link excerpt}, 200 characters) before it is logged.
 *
 * ```ts
 * const sampler = LogSampler.make()
 * yield* sampler.warning("invalid:state", "invalid VDA 5050 message", `invalid VDA 5050 message on ${LogSampler.excerpt(topic)}`)
 * // first one in 10 s: logged as is; the next 999: counted; after 10 s:
 * // WARN invalid VDA 5050 message … and 999 more in the last 10 s
 * ```
 *
 * Keys must come from a small fixed set (a reason, a topic name, a behaviour), never from the
 * outsider's strings; past {@link maxKeys} keys, new ones share the key `other`.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as LogLevel from "effect/LogLevel"
import * as Runtime from "effect/Runtime"

/** The longest excerpt of an outsider's string in a log line, in characters. */
export const excerptLength = 200

/** Past this many keys, new keys are sampled together as `other`. */
export const maxKeys = 1_000

/** `1234567` as `1,234,567` (`toLocaleString` builds a number format per call: too slow for a flood). */
export const thousands = (n: number): string => String(Math.trunc(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",")

/** `text` cut to `max` characters, saying how long it was when cut. */
export const excerpt = (text: string, max: number = excerptLength): string =>
  text.length <= max ? text : `${text.slice(0, max)}… (${thousands(text.length)} characters)`

/** A sampler of log lines; see the module documentation. */
export interface LogSampler {
  /**
   * Decides now, synchronously, whether `message` is the first of `key` in the window: then it
   * returns the Effect that logs it (at `level`), else it counts it and returns `undefined` (no
   * Effect to run: what a hot path wants). `what` names the summary; a function `message` is
   * only called for a line that is logged.
   */
  readonly sample: (
    level: LogLevel.LogLevel,
    key: string,
    what: string,
    message: string | (() => string),
    cause?: Cause.Cause<unknown>
  ) => Effect.Effect<void> | undefined
  /** {@link LogSampler.sample}, decided when the Effect runs. */
  readonly log: (
    level: LogLevel.LogLevel,
    key: string,
    what: string,
    message: string | (() => string),
    cause?: Cause.Cause<unknown>
  ) => Effect.Effect<void>
  /** {@link LogSampler.log} at warning level. */
  readonly warning: (
    key: string,
    what: string,
    message: string | (() => string),
    cause?: Cause.Cause<unknown>
  ) => Effect.Effect<void>
  /** Lines counted and not logged, per key, in the windows still open. */
  readonly suppressed: () => number
}

interface Window {
  readonly start: number
  suppressed: number
  /** The logger of the window's first line, once it ran: the summary's. */
  runtime: Runtime.Runtime<never> | undefined
  /** A summary is scheduled for the end of the window. */
  summary: boolean
}

/** A sampler with windows of `windowMillis` (default 10 seconds). */
export const make = (options: { readonly windowMillis?: number | undefined } = {}): LogSampler => {
  const windowMillis = options.windowMillis ?? 10_000
  const seconds = Math.round(windowMillis / 100) / 10
  const windows = new Map<string, Window>()

  /**
   * The summary leaves when the window ends, even if nothing more comes (on a timer that keeps no
   * process alive, with the logger of the window's first line); then the key logs again in full.
   */
  const summarize = (key: string, window: Window, level: LogLevel.LogLevel, what: string) => {
    const runtime = window.runtime
    if (window.summary || window.suppressed === 0 || runtime === undefined) return
    window.summary = true
    const timer = setTimeout(() => {
      if (windows.get(key) === window) windows.delete(key)
      // The annotations of the first line would name one of the many: left out.
      Runtime.runFork(runtime)(Effect.locally(
        Effect.logWithLevel(level, `${what} … and ${thousands(window.suppressed)} more in the last ${seconds} s`),
        FiberRef.currentLogAnnotations,
        HashMap.empty()
      ))
    }, Math.max(0, window.start + windowMillis - Date.now()))
    timer.unref?.()
  }

  const sample: LogSampler["sample"] = (level, rawKey, what, message, cause) => {
    const key = windows.has(rawKey) || windows.size < maxKeys ? rawKey : "other"
    const now = Date.now()
    const open = windows.get(key)
    if (open === undefined || now - open.start >= windowMillis) {
      const window: Window = { start: now, suppressed: 0, runtime: undefined, summary: false }
      windows.set(key, window)
      const text = typeof message === "string" ? message : message()
      return Effect.flatMap(Effect.runtime<never>(), (runtime) => {
        window.runtime = runtime
        summarize(key, window, level, what)
        return cause === undefined ? Effect.logWithLevel(level, text) : Effect.logWithLevel(level, text, cause)
      })
    }
    open.suppressed++
    summarize(key, open, level, what)
    return undefined
  }

  const log: LogSampler["log"] = (level, key, what, message, cause) =>
    Effect.suspend(() => sample(level, key, what, message, cause) ?? Effect.void)

  return {
    sample,
    log,
    warning: (key, what, message, cause) => log(LogLevel.Warning, key, what, message, cause),
    suppressed: () => {
      let n = 0
      for (const w of windows.values()) n += w.suppressed
      return n
    }
  }
}
