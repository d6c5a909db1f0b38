/**
 * A deadline on silence: a link calls `heard()` whenever its robot says something, and the
 * watchdog calls `onSilent` once when nothing was heard for `deadline`, and once more after each
 * time the robot is heard again and falls silent again. The link then raises an alarm and shows
 * the robot as disconnected; it handles the silence itself (an arm's link opens a new session, an
 * AGV's link asks for a state with backoff): a silent robot is a robot's status, never a crash.
 * It checks four times per deadline, so silence is noticed within 1.25 deadlines. A robot whose
 * samples go to the sample columns rather than to its link is heard through `lastSample`: the
 * time its latest sample was written.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** A running watchdog. */
export interface Watchdog {
  /** The robot said something: the deadline starts again (and the watchdog is armed again after it fired). */
  heard(): void
  /** Milliseconds since the robot was last heard. */
  silentForMillis(): number
}

/**
 * Starts a watchdog for as long as the scope lasts; `onSilent` runs once per silence. `lastSample`
 * gives when the robot's latest sample was written elsewhere (ms since the epoch, NaN for never).
 */
export const start = (
  deadline: Duration.DurationInput,
  onSilent: (silentForMillis: number) => void,
  lastSample?: () => number
): Effect.Effect<Watchdog, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const deadlineMillis = Duration.toMillis(deadline)
    let lastHeard = clock.unsafeCurrentTimeMillis()
    let fired = false
    const heardAt = () => {
      const sampled = lastSample?.() ?? NaN
      return sampled > lastHeard ? sampled : lastHeard
    }
    const watchdog: Watchdog = {
      heard: () => {
        lastHeard = clock.unsafeCurrentTimeMillis()
        fired = false
      },
      silentForMillis: () => clock.unsafeCurrentTimeMillis() - heardAt()
    }
    const check = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => {
        const silentFor = now - heardAt()
        if (!fired && silentFor > deadlineMillis) {
          fired = true
          onSilent(silentFor)
        }
      }))
    yield* Effect.forkScoped(
      Effect.forever(Effect.zipRight(Effect.sleep(Duration.millis(Math.max(1, deadlineMillis / 4))), check))
    )
    return watchdog
  })
