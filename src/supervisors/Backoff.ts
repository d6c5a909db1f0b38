/**
 * Exponential backoff between restarts, as Akka's `BackoffSupervisor` does
 * (OTP restarts at once). A child that keeps crashing waits `min`, then
 * `min × factor`, … up to `max`, each delay spread by ± `jitter` so a fleet of
 * links does not reconnect in lockstep; once a child has run for `resetAfter`
 * without crashing, the next delay starts from `min` again.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"

/** A backoff policy. */
export interface Backoff {
  readonly min: Duration.Duration
  readonly max: Duration.Duration
  readonly factor: number
  /** A fraction: 0.2 spreads each delay over ± 20 %. */
  readonly jitter: number
  readonly resetAfter: Duration.Duration
}

/**
 * An exponential policy. Defaults: factor 2, jitter 0.2, and `resetAfter` equal
 * to `max` (a child that survived the longest delay is considered healthy).
 */
export const exponential = (options: {
  readonly min: Duration.DurationInput
  readonly max: Duration.DurationInput
  readonly factor?: number | undefined
  readonly jitter?: number | undefined
  readonly resetAfter?: Duration.DurationInput | undefined
}): Backoff => ({
  min: Duration.decode(options.min),
  max: Duration.decode(options.max),
  factor: options.factor ?? 2,
  jitter: options.jitter ?? 0.2,
  resetAfter: Duration.decode(options.resetAfter ?? options.max)
})

/**
 * The delay before restart number `attempt` (1 = the first restart after a
 * healthy run), given a random number in [0, 1).
 */
export const delayMillis = (policy: Backoff, attempt: number, random: number): number => {
  const base = Math.min(
    Duration.toMillis(policy.max),
    Duration.toMillis(policy.min) * Math.pow(policy.factor, Math.max(0, attempt - 1))
  )
  return Math.max(0, Math.round(base * (1 + policy.jitter * (2 * random - 1))))
}
