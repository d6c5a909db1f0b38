/**
 * `fleet/telemetry`: records every robot's telemetry in the `TelemetryLog` (SQLite, written by
 * a worker thread off the event loop). It takes each link event synchronously from a PubSub
 * sink, so it adds no mailbox traffic, and `append` only fills a columnar batch: recording costs
 * the event loop (and the control loop on it) a few array writes per sample. Under overload
 * the log drops rows and counts them rather than block anyone.
 *
 * | kind        | from                     | columns       | payload                                   |
 * |-------------|--------------------------|---------------|-------------------------------------------|
 * | `arm`       | each poll of an arm      | –             | position, joints, program status, override |
 * | `agv-state` | each VDA 5050 `state`    | x, y, theta   | battery, driving, paused, order, errors   |
 * | `pose`      | an AGV's pose, at most `poseHz` a second | x, y, theta | velocity                   |
 *
 * AGVs' visualizations are samples, not events: they are read from the fleet's sample columns
 * `poseHz` times a second (`FLEET_TELEMETRY_POSE_HZ`, default 10), one row per AGV that moved
 * since, whatever rate the AGVs publish at. A visualization that still comes as an event (before
 * the AGV's link has its slot) is recorded as it comes.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Actor from "../../actors/Actor.js"
import * as PubSub from "../../actors/PubSub.js"
import * as LinkEvent from "../../links/LinkEvent.js"
import * as SampleColumns from "../../links/SampleColumns.js"
import type { TelemetryLog, TelemetryRow } from "../../store/TelemetryLog.js"

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

const { Field } = SampleColumns

/** Appends a `pose` row for every AGV whose slot was written since `seen` says (read through `sample`); returns how many. */
const recordPoses = (
  samples: SampleColumns.Directory,
  seen: Int32Array,
  sample: Float64Array,
  log: TelemetryLog["Type"]
): number => {
  let recorded = 0
  for (const [robot, slot] of samples.entries()) {
    if (!SampleColumns.readChanged(samples.columns, slot, seen, sample)) continue
    if (sample[Field.kind] !== 1 || sample[Field.poseKnown] !== 1) continue
    const velocity = { vx: sample[Field.vx], vy: sample[Field.vy], omega: sample[Field.omega] }
    log.unsafeAppend({
      robot,
      at: sample[Field.at],
      kind: "pose",
      x: sample[Field.x],
      y: sample[Field.y],
      theta: sample[Field.theta],
      ...(Number.isNaN(velocity.vx) && Number.isNaN(velocity.vy) && Number.isNaN(velocity.omega) ? {} : { payload: velocity })
    })
    recorded++
  }
  return recorded
}

/** Where the recorder reads AGVs' poses, and how often. */
export interface PoseSampling {
  readonly samples: SampleColumns.Directory
  /** Rows per AGV per second at most; 0 records none. */
  readonly poseHz: number
}

/** The recorder's behaviour; see the module documentation. */
export const make = (hub: PubSub.PubSub, log: TelemetryLog["Type"], poses?: PoseSampling) =>
  Actor.make<unknown, null>({
    name: "telemetry_recorder",
    init: (ctx) =>
      Effect.gen(function*() {
        yield* PubSub.subscribeSink(hub, LinkEvent.FleetTopic, ctx.self, {
          deliver: (message) => {
            const row = rowOf(message as LinkEvent.LinkEvent)
            if (row !== undefined) log.unsafeAppend(row)
          },
          backlog: () => 0
        }, { bufferSize: 1, overflow: "dropping" })
        if (poses !== undefined && poses.poseHz > 0) {
          const seen = new Int32Array(poses.samples.columns.capacity)
          const sample = new Float64Array(SampleColumns.fieldCount)
          yield* Effect.forkScoped(Effect.repeat(
            Effect.sync(() => recordPoses(poses.samples, seen, sample, log)),
            Schedule.spaced(`${Math.round(1000 / poses.poseHz)} millis`)
          ))
        }
        return null
      }),
    receive: (state) => state
  })
