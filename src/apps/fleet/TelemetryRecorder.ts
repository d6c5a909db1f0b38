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
 * | `pose`      | each VDA 5050 `visualization` | x, y, theta | velocity                                 |
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Actor from "../../actors/Actor.js"
import * as PubSub from "../../actors/PubSub.js"
import * as LinkEvent from "../../links/LinkEvent.js"
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

/** The recorder's behaviour; see the module documentation. */
export const make = (hub: PubSub.PubSub, log: TelemetryLog["Type"]) =>
  Actor.make<unknown, null>({
    name: "telemetry_recorder",
    init: (ctx) =>
      Effect.as(
        PubSub.subscribeSink(hub, LinkEvent.FleetTopic, ctx.self, {
          deliver: (message) => {
            const row = rowOf(message as LinkEvent.LinkEvent)
            if (row !== undefined) log.unsafeAppend(row)
          },
          backlog: () => 0
        }, { bufferSize: 1, overflow: "dropping" }),
        null
      ),
    receive: (state) => state
  })
