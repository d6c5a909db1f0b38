import { Duration, Effect, Schedule } from "effect"

/** Polls `effect` every 5 ms until `predicate` holds and returns that value; dies after `within` (5 seconds). */
export const eventually = <A, E>(
  effect: Effect.Effect<A, E>,
  predicate: (a: A) => boolean,
  within: Duration.DurationInput = "5 seconds"
): Effect.Effect<A, E> =>
  Effect.repeat(effect, Schedule.recurWhile<A>((a) => !predicate(a)).pipe(Schedule.addDelay(() => "5 millis"))).pipe(
    Effect.timeoutTo({
      duration: within,
      onSuccess: Effect.succeed,
      onTimeout: () => Effect.dieMessage(`condition not reached within ${Duration.format(within)}`)
    }),
    Effect.flatten
  )
