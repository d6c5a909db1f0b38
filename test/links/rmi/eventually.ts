import { Effect, Schedule } from "effect"

/** Polls `effect` every 5 ms until `predicate` holds and returns that value; dies after 5 seconds. */
export const eventually = <A, E>(effect: Effect.Effect<A, E>, predicate: (a: A) => boolean): Effect.Effect<A, E> =>
  Effect.repeat(effect, Schedule.recurWhile<A>((a) => !predicate(a)).pipe(Schedule.addDelay(() => "5 millis"))).pipe(
    Effect.timeoutTo({
      duration: "5 seconds",
      onSuccess: Effect.succeed,
      onTimeout: () => Effect.dieMessage("condition not reached within 5 seconds")
    }),
    Effect.flatten
  )
