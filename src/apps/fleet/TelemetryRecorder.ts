/**
 * `fleet/telemetry`: records every robot's telemetry in the `TelemetryLog` (SQLite, written by
 * a worker thread off the event loop). Events (an AGV's `state`, an arm's status change) it takes
 * synchronously from a PubSub sink, so it adds no mailbox traffic, and `append` only fills a
 * columnar batch. Samples (AGVs' poses, arms' polls) never reach the event loop at all: the
 * log's worker reads the fleet's sample columns itself (`TelemetrySampling.ts`). Under overload
 * the log drops rows and counts them rather than block anyone.
 *
 * | kind        | from                     | columns       | payload                                   |
 * |-------------|--------------------------|---------------|-------------------------------------------|
 * | `arm`       | an arm, at most `poseHz` a second | –    | position, joints, program status, override |
 * | `agv-state` | each VDA 5050 `state`    | x, y, theta   | battery, driving, paused, order, errors   |
 * | `pose`      | an AGV's pose, at most `poseHz` a second | x, y, theta | velocity                   |
 *
 * AGVs' visualizations and arms' polls are samples, not events: the worker reads them from the
 * fleet's sample columns `poseHz` times a second (`FLEET_TELEMETRY_POSE_HZ`, default 10), one row
 * per robot written since, whatever rate the robots report at. A sample that still comes as an
 * event (a robot without a slot, or before its link has one) is recorded as it comes.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Actor from "../../actors/Actor.js"
import * as PubSub from "../../actors/PubSub.js"
import * as LinkEvent from "../../links/LinkEvent.js"
import * as SampleColumns from "../../links/SampleColumns.js"
import * as WorkerThread from "../../node/WorkerThread.js"
import type { TelemetryLog, TelemetryRow } from "../../store/TelemetryLog.js"
import type { SamplingConfig, SlotNaming } from "./TelemetrySampling.js"

/** The row a link event is recorded as, if it is telemetry. */
export const rowOf = (event: LinkEvent.LinkEvent): TelemetryRow | undefined => {
  switch (event._tag) {
    case "ArmTelemetry":
      return {
        robot: event.robot,
        at: event.at,
        kind: "arm",
        payload: {
          position: event.position,
          joints: event.joints,
          programStatus: event.programStatus,
          override: event.override,
          timeTag: event.timeTag
        }
      }
    case "AgvTelemetry": {
      const state = event.state
      if (state !== undefined) {
        const p = state.agvPosition
        return {
          robot: event.robot,
          at: event.at,
          kind: "agv-state",
          ...(p === undefined ? {} : { x: p.x, y: p.y, theta: p.theta }),
          payload: {
            battery: state.batteryState.batteryCharge,
            driving: state.driving,
            paused: state.paused ?? false,
            orderId: state.orderId,
            errors: state.errors.map((e) => e.errorType)
          }
        }
      }
      const p = event.visualization?.agvPosition
      if (p === undefined) return undefined
      return {
        robot: event.robot,
        at: event.at,
        kind: "pose",
        x: p.x,
        y: p.y,
        theta: p.theta,
        ...(event.visualization?.velocity === undefined ? {} : { payload: event.visualization.velocity })
      }
    }
    default:
      return undefined
  }
}

/** Where the recorder's worker reads robots' samples, and how often. */
export interface PoseSampling {
  readonly samples: SampleColumns.Directory
  /** Rows per robot per second at most; 0 records no samples (an arm's status changes are still recorded as they come). */
  readonly poseHz: number
}

/** The recorder's behaviour; see the module documentation. */
export const make = (hub: PubSub.PubSub, log: TelemetryLog["Type"], poses?: PoseSampling) =>
  Actor.make<unknown, null>({
    name: "telemetry_recorder",
    init: (ctx) =>
      Effect.gen(function*() {
        const sampling = poses !== undefined && poses.poseHz > 0 ? poses : undefined
        yield* PubSub.subscribeSink(hub, LinkEvent.FleetTopic, ctx.self, {
          deliver: (message) => {
            const event = message as LinkEvent.LinkEvent
            // An arm with a slot is recorded from the columns; its events are its status changes.
            if (event._tag === "ArmTelemetry" && sampling?.samples.slotOf(event.robot) !== undefined) return
            const row = rowOf(event)
            if (row !== undefined) log.unsafeAppend(row)
          },
          backlog: () => 0
        }, { bufferSize: 1, overflow: "dropping" })
        if (sampling !== undefined) {
          const sampler = yield* log.sample({
            module: WorkerThread.entry(import.meta.url, "./TelemetrySampling"),
            config: { columns: sampling.samples.columns.shared } satisfies SamplingConfig,
            hz: sampling.poseHz
          })
          yield* Effect.acquireRelease(
            Effect.sync(() => sampling.samples.watch((robot, slot) => sampler.tell({ robot, slot } satisfies SlotNaming))),
            (unwatch) => Effect.sync(unwatch)
          )
        }
        return null
      }),
    receive: (state) => state
  })
