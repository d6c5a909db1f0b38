/**
 * Whether the database takes writes. Every store writer reports the outcome of
 * its writes here; the first `StoreUnavailable` turns the status `Degraded`,
 * the next successful write turns it `Ok` again. `/readyz` reads `get`.
 *
 * Failures that make a store unavailable (a read-only file, a full disk, an
 * I/O error) belong to the file, not to one connection, so one status covers
 * every writer: the last outcome wins.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { StoreUnavailable } from "./StoreUnavailable.js"

/** `Ok`, or `Degraded` since the first failed write (epoch ms) with the latest error. */
export type HealthStatus = Data.TaggedEnum<{
  Ok: {}
  Degraded: { readonly error: StoreUnavailable; readonly since: number }
}>

/** Constructors and matchers of `HealthStatus`. */
export const HealthStatus = Data.taggedEnum<HealthStatus>()

/** The health of the store, shared by every writer of one database. */
export class StoreHealth extends Context.Tag("fleetvisor/store/StoreHealth")<StoreHealth, {
  /** The current status. */
  readonly get: Effect.Effect<HealthStatus>
  /** The current status, then every change. */
  readonly changes: Stream.Stream<HealthStatus>
  /** A write committed: the store is `Ok`. */
  readonly recordSuccess: Effect.Effect<void>
  /** A write failed because the store is unavailable. */
  readonly recordFailure: (error: StoreUnavailable) => Effect.Effect<void>
}>() {}

/** A health that starts `Ok`. Transitions are logged (warning when degraded, info on recovery). */
export const make: Effect.Effect<StoreHealth["Type"]> = Effect.gen(function*() {
  const status = yield* SubscriptionRef.make<HealthStatus>(HealthStatus.Ok())
  return {
    get: SubscriptionRef.get(status),
    changes: status.changes,
    recordSuccess: SubscriptionRef.modifySome(status, false, (current) =>
      current._tag === "Degraded" ? Option.some([true, HealthStatus.Ok()] as const) : Option.none()).pipe(
        Effect.flatMap((recovered) => recovered ? Effect.logInfo("store recovered: writes succeed again") : Effect.void)
      ),
    recordFailure: (error) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        SubscriptionRef.modify(status, (current) =>
          current._tag === "Degraded"
            ? [false, HealthStatus.Degraded({ error, since: current.since })] as const
            : [true, HealthStatus.Degraded({ error, since: now })] as const
        )).pipe(
          Effect.flatMap((degraded) => degraded ? Effect.logWarning(`store degraded: ${error.message}`) : Effect.void)
        )
  }
})
