/**
 * What the fleet accepts of a command before anything goes to a robot: every number finite, an
 * arm's tool speed above 0 and at most its limit, joint speeds 1–100 %, a target inside the arm's
 * workspace envelope when one is configured (and in any case within {@link maxReach} of the
 * origin, with W, P, R within ±360°), joint angles within ±360° (J1–J6; the extended axes J7–J9,
 * which may be linear, within {@link maxReach}), order nodes with finite coordinates. A command
 * outside these bounds is refused with a typed `InvalidRequest` naming the field; the robot
 * never sees it (a controller would refuse NaN or a 1e9 mm target only later, after the fleet
 * had answered "ok").
 *
 * @since 0.1.0
 */
import { InvalidRequest, type RobotCommand } from "../../protocol/FleetRpcs.js"

/** An inclusive range, in millimetres. */
export interface Range {
  readonly min: number
  readonly max: number
}

/** The bounds of one arm. */
export interface ArmLimits {
  /** Highest tool speed of a linear motion, mm/s. */
  readonly maxSpeed: number
  /** The box the tool may be sent into (user frame, mm); unbounded along an axis left out. */
  readonly x?: Range | undefined
  readonly y?: Range | undefined
  readonly z?: Range | undefined
}

/** The default highest tool speed, 2,000 mm/s: what FANUC's industrial arms reach (collaborative ones 250–1,000). */
export const defaultMaxSpeed = 2_000

/** 10 m: no FANUC arm reaches that far (the largest reach under 5 m), so a target beyond is a mistake whatever the envelope. */
export const maxReach = 10_000

const anyArm: Range = { min: -maxReach, max: maxReach }
const anyAngle: Range = { min: -360, max: 360 }

const finite = (field: string, value: number): InvalidRequest | undefined =>
  Number.isFinite(value) ? undefined : new InvalidRequest({ field, reason: `${value} is not a finite number` })

const firstOf = (checks: ReadonlyArray<() => InvalidRequest | undefined>): InvalidRequest | undefined => {
  for (const check of checks) {
    const invalid = check()
    if (invalid !== undefined) return invalid
  }
  return undefined
}

const within = (field: string, value: number, range: Range, unit = "mm", what = "the workspace") =>
  value >= range.min && value <= range.max
    ? undefined
    : new InvalidRequest({ field, reason: `${value} ${unit} is outside ${what}, ${range.min} to ${range.max} ${unit}` })

/** Why `command` is refused before it reaches the robot, or `undefined` when it may go (`limits` are the arm's). */
export const check = (command: RobotCommand, limits: ArmLimits): InvalidRequest | undefined => {
  switch (command._tag) {
    case "MoveLinear": {
      const { position, speed } = command
      return firstOf([
        ...(["x", "y", "z", "w", "p", "r"] as const).map((axis) => () => finite(`position.${axis}`, position[axis])),
        () => finite("speed", speed),
        () =>
          speed > 0 && speed <= limits.maxSpeed
            ? undefined
            : new InvalidRequest({ field: "speed", reason: `${speed} mm/s is outside 0 < speed ≤ ${limits.maxSpeed} mm/s` }),
        () => within("position.x", position.x, limits.x ?? anyArm),
        () => within("position.y", position.y, limits.y ?? anyArm),
        () => within("position.z", position.z, limits.z ?? anyArm),
        ...(["w", "p", "r"] as const).map((axis) => () => within(`position.${axis}`, position[axis], anyAngle, "°", "a rotation"))
      ])
    }
    case "MoveJoint":
      return firstOf([
        () =>
          command.joints.length >= 6 && command.joints.length <= 9
            ? undefined
            : new InvalidRequest({ field: "joints", reason: `6 to 9 joint angles (J1–J9), not ${command.joints.length}` }),
        ...command.joints.map((angle, i) => () =>
          finite(`joints[${i}]`, angle) ??
            (i < 6
              ? within(`joints[${i}]`, angle, anyAngle, "°", "a joint's travel")
              : within(`joints[${i}]`, angle, anyArm, "", "an extended axis's travel"))
        ),
        () =>
          Number.isFinite(command.speed) && command.speed >= 1 && command.speed <= 100
            ? undefined
            : new InvalidRequest({ field: "speed", reason: `${command.speed} % is outside 1 to 100 %` })
      ])
    case "SendOrder":
      return firstOf(command.nodes.flatMap((node, i) => [
        () => finite(`nodes[${i}].x`, node.x),
        () => finite(`nodes[${i}].y`, node.y),
        () => (node.theta === undefined ? undefined : finite(`nodes[${i}].theta`, node.theta))
      ]))
    default:
      return undefined
  }
}
