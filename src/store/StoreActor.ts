/**
 * The `store` actor: the store's place in the node's tree, first under `root`. It holds no state;
 * `Flush` writes the telemetry log's pending rows, and stopping it (the tree stops youngest first,
 * so it stops last) flushes them within the shutdown timeout.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Actor from "../actors/Actor.js"
import type { Reply } from "../actors/ActorRef.js"
import type { TelemetryLog } from "./TelemetryLog.js"

/** Asks the store to write the telemetry log's pending rows; replies once they are (or failed). */
export interface Flush {
  readonly _tag: "Flush"
  readonly reply: Reply<void>
}

/** The `store` actor over the node's telemetry log; its stop waits at most `timeout` for the flush. */
export const make = (telemetry: TelemetryLog["Type"], timeout: Duration.Duration): Actor.Behaviour<Flush, null> => ({
  name: "store",
  init: () => null,
  receive: (state, message) =>
    Effect.as(
      Effect.tap(Effect.either(telemetry.flush), () => Effect.sync(() => message.reply.succeed())),
      state
    ),
  terminate: () => Effect.ignore(Effect.timeout(telemetry.flush, timeout))
})
