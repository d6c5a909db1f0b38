/**
 * The fleet's control loop phases: a speed guard over every robot, at the loop's rate.
 *
 * - read inputs: takes the latest telemetry of each robot (conflated by a PubSub sink on the
 *   `fleet` topic: only the newest sample per robot waits for the next tick);
 * - process: estimates each robot's speed from two positions at least 50 ms apart (arms: tool
 *   speed in mm/s over the controller's clock; AGVs: m/s over the AGV's timestamps);
 * - control: a robot faster than its limit is flagged, once, until it slows below 90 % of it;
 * - actuator outputs: each new flag is published as an `OVERSPEED` alarm (`fatal`).
 *
 * `phases` runs them in the loop's own process (`ControlLoop.make`), from telemetry events only;
 * `workerPhases` runs them on the loop's worker thread (`ControlLoop.makeWorker`), which reads
 * the fleet's sample columns itself (AGVs' visualizations and arms' polls never cross the hub)
 * and, for what still comes as events (AGVs' states), a sink on the main thread writes each robot's
 * latest sample to memory shared with the worker (`makeFeed`); the worker reads both at its
 * tick, and its alarms come back to be published here.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { ActorRef } from "../../actors/ActorRef.js"
import * as PubSub from "../../actors/PubSub.js"
import * as LinkEvent from "../../links/LinkEvent.js"
import type * as SampleColumns from "../../links/SampleColumns.js"
import * as WorkerThread from "../../node/WorkerThread.js"
import type { Phase, WorkerPhases } from "./ControlLoop.js"
import { type ColumnNaming, makeFeed, makeGuard, type Sample } from "./SpeedGuardCore.js"

/** Speed limits. */
export interface SpeedLimits {
  /** Tool speed of an arm, mm/s; default 2000 (FANUC arms reach that; collaborative ones 250 to 1000). */
  readonly armMmPerSecond?: number | undefined
  /** AGV speed, m/s; default 2.5 (a fast indoor AGV). */
  readonly agvMetersPerSecond?: number | undefined
}

const guardLimits = (limits: SpeedLimits) => ({
  armLimit: limits.armMmPerSecond ?? 2000,
  agvLimit: limits.agvMetersPerSecond ?? 2.5
})

const sampleOf = (event: LinkEvent.LinkEvent): Sample | undefined => {
  if (event._tag === "ArmTelemetry") {
    const p = event.position
    return { kind: "arm", x: p.X, y: p.Y, z: p.Z, t: event.timeTag / 1000 }
  }
  if (event._tag === "AgvTelemetry") {
    const message = event.visualization?.agvPosition !== undefined ? event.visualization : event.state
    const p = message?.agvPosition
    if (p === undefined) return undefined
    const stamped = message?.timestamp === undefined ? NaN : Date.parse(message.timestamp)
    return { kind: "agv", x: p.x, y: p.y, z: 0, t: (Number.isNaN(stamped) ? event.at : stamped) / 1000 }
  }
  return undefined
}

/** Subscribes `owner` to the fleet's telemetry, handing each robot's samples to `offer`, until `owner` ends. */
const subscribe = (hub: PubSub.PubSub, owner: ActorRef<never>, offer: (robot: string, sample: Sample) => void) =>
  PubSub.subscribeSink(hub, LinkEvent.FleetTopic, owner, {
    deliver: (message) => {
      const event = message as LinkEvent.LinkEvent
      const sample = sampleOf(event)
      if (sample !== undefined) offer(event.robot, sample)
    },
    backlog: () => 0
  }, { bufferSize: 1, overflow: "dropping" })

/**
 * Subscribes the loop's owner to the fleet's telemetry and returns the four phases, to run in
 * this thread. The subscription ends with `owner`.
 */
export const phases = (
  hub: PubSub.PubSub,
  owner: ActorRef<never>,
  limits: SpeedLimits = {}
): Effect.Effect<ReadonlyArray<Phase>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const guard = makeGuard(guardLimits(limits), (alarm) => LinkEvent.unsafePublish(hub, alarm))
    yield* subscribe(hub, owner, guard.offer)
    return guard.phases
  })

/**
 * The four phases on the loop's worker thread, fed from the fleet's sample columns (`samples`)
 * and from a subscription of the loop's actor.
 */
export const workerPhases = (
  hub: PubSub.PubSub,
  limits: SpeedLimits = {},
  samples?: SampleColumns.Directory
): WorkerPhases => ({
  module: WorkerThread.entry(import.meta.url, "./SpeedGuardCore"),
  config: { ...guardLimits(limits), columns: samples?.columns.shared },
  connect: (port, owner) =>
    Effect.gen(function*() {
      if (samples !== undefined) {
        yield* Effect.acquireRelease(
          Effect.sync(() => samples.watch((robot, column) => port.send({ column, robot } satisfies ColumnNaming))),
          (unwatch) => Effect.sync(unwatch)
        )
      }
      // An arm with a slot is read from the columns; its status events would only feed a second guard.
      const feed = makeFeed((naming) => port.send(naming))
      yield* subscribe(
        hub,
        owner,
        samples === undefined ? feed : (robot, sample) => {
          if (sample.kind !== "arm" || samples.slotOf(robot) === undefined) feed(robot, sample)
        }
      )
      return (alarm: LinkEvent.Alarm) => LinkEvent.unsafePublish(hub, alarm)
    })
})
