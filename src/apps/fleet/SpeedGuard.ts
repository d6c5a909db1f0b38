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
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { ActorRef } from "../../actors/ActorRef.js"
import * as PubSub from "../../actors/PubSub.js"
import * as LinkEvent from "../../links/LinkEvent.js"
import type { Phase } from "./ControlLoop.js"

/** Speed limits. */
export interface SpeedLimits {
  /** Tool speed of an arm, mm/s; default 2000 (FANUC arms reach that; collaborative ones 250 to 1000). */
  readonly armMmPerSecond?: number | undefined
  /** AGV speed, m/s; default 2.5 (a fast indoor AGV). */
  readonly agvMetersPerSecond?: number | undefined
}

interface Sample {
  readonly kind: LinkEvent.RobotKind
  readonly x: number
  readonly y: number
  readonly z: number
  /** Seconds. */
  readonly t: number
}

/** Speeds are measured over at least this many seconds, so that bursts of samples do not read as jumps. */
const minInterval = 0.05

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

/**
 * Subscribes the loop's owner to the fleet's telemetry and returns the four phases. The
 * subscription ends with `owner`.
 */
export const phases = (
  hub: PubSub.PubSub,
  owner: ActorRef<never>,
  limits: SpeedLimits = {}
): Effect.Effect<ReadonlyArray<Phase>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const armLimit = limits.armMmPerSecond ?? 2000
    const agvLimit = limits.agvMetersPerSecond ?? 2.5
    let incoming = new Map<string, Sample>()
    let current = new Map<string, Sample>()
    const previous = new Map<string, Sample>()
    const speeds = new Map<string, { readonly kind: LinkEvent.RobotKind; readonly speed: number }>()
    const flagged = new Set<string>()
    const alarms: Array<LinkEvent.Alarm> = []

    yield* PubSub.subscribeSink(hub, LinkEvent.FleetTopic, owner, {
      deliver: (message) => {
        const event = message as LinkEvent.LinkEvent
        const sample = sampleOf(event)
        if (sample !== undefined) incoming.set(event.robot, sample)
      },
      backlog: () => 0
    }, { bufferSize: 1, overflow: "dropping" })

    return [
      {
        name: "read inputs",
        run: () => {
          const taken = incoming
          incoming = current
          incoming.clear()
          current = taken
        }
      },
      {
        name: "process",
        run: () => {
          for (const [robot, sample] of current) {
            const before = previous.get(robot)
            if (before !== undefined && sample.t - before.t < minInterval) continue
            previous.set(robot, sample)
            if (before === undefined) continue
            const distance = Math.hypot(sample.x - before.x, sample.y - before.y, sample.z - before.z)
            speeds.set(robot, { kind: sample.kind, speed: distance / (sample.t - before.t) })
          }
        }
      },
      {
        name: "control",
        run: () => {
          for (const robot of current.keys()) {
            const measured = speeds.get(robot)
            if (measured === undefined) continue
            const limit = measured.kind === "arm" ? armLimit : agvLimit
            if (measured.speed > limit && !flagged.has(robot)) {
              flagged.add(robot)
              alarms.push({
                _tag: "Alarm",
                robot,
                kind: measured.kind,
                code: "OVERSPEED",
                level: "fatal",
                message: `${measured.speed.toFixed(1)} ${measured.kind === "arm" ? "mm/s" : "m/s"} over the limit of ${limit}`,
                at: Date.now()
              })
            } else if (measured.speed < 0.9 * limit) {
              flagged.delete(robot)
            }
          }
        }
      },
      {
        name: "actuator outputs",
        run: () => {
          for (const alarm of alarms.splice(0)) LinkEvent.unsafePublish(hub, alarm)
        }
      }
    ]
  })
