/**
 * The simulator's model of a six-axis arm: how long a motion takes, where the tool is
 * along the way, and which joint angles go with a position.
 *
 * It is plausible, not exact: the tool moves in a straight line at constant speed for every
 * motion type (joint motion only differs in how its duration is computed), and the joints
 * follow from the position through a two-link arm (J2, J3) on a turning base (J1) with a
 * wrist that mirrors W, P, R (J4–J6). Positions and joints change smoothly, which is what a
 * dashboard or a test of polling needs to see. A target given as joint angles
 * (FRC_JointMotionJRep) becomes the position those joints put the tool at ({@link positionOf}),
 * so reading the joints back after the motion gives the target.
 */
import { Either } from "effect"
import * as ErrorCode from "./RmiErrorCode.js"
import type * as RmiPacket from "./RmiPacket.js"

/** Where a freshly started simulator holds its tool: in front of the base, pointing down. */
export const HomePosition: RmiPacket.Position = { X: 500, Y: 0, Z: 300, W: 180, P: 0, R: 0, Ext1: 0, Ext2: 0, Ext3: 0 }

/** Upper arm and forearm length, mm. */
const Link = 600
/** Height of the shoulder above the base frame, mm. */
const ShoulderHeight = 450
/** Speed of the wrist axes when a linear motion also turns the tool, deg/s. */
const WristSpeed = 180
/** Joint speed at 100 percent, deg/s. */
const MaxJointSpeed = 180

const degrees = (radians: number) => (radians * 180) / Math.PI
const round = (value: number) => Math.round(value * 1000) / 1000
const clamp = (value: number, min: number, max: number) => Math.min(max, Math.max(min, value))

/** The joint angles (degrees) that put the tool at `position`. */
export const jointsOf = (position: RmiPacket.Position): RmiPacket.JointAngle => {
  const reach = Math.hypot(position.X, position.Y)
  const height = position.Z - ShoulderHeight
  const distance = clamp(Math.hypot(reach, height), 1, 2 * Link - 1e-6)
  const elbow = Math.acos(clamp((distance * distance - 2 * Link * Link) / (2 * Link * Link), -1, 1))
  const shoulder = Math.atan2(height, reach) + Math.atan2(Link * Math.sin(elbow), Link + Link * Math.cos(elbow))
  return {
    J1: round(degrees(Math.atan2(position.Y, position.X))),
    J2: round(90 - degrees(shoulder)),
    J3: round(degrees(shoulder - elbow)),
    J4: round(position.W - 180),
    J5: round(position.P),
    J6: round(position.R),
    J7: round(position.Ext1 ?? 0),
    J8: round(position.Ext2 ?? 0),
    J9: round(position.Ext3 ?? 0)
  }
}

const radians = (deg: number) => (deg * Math.PI) / 180

/** How far from the base axis, and how high above the shoulder, J2 and J3 put the wrist. */
const armOf = (joints: RmiPacket.JointAngle) => {
  const shoulder = radians(90 - joints.J2)
  const forearm = radians(joints.J3)
  return {
    reach: Link * Math.cos(shoulder) + Link * Math.cos(forearm),
    height: Link * Math.sin(shoulder) + Link * Math.sin(forearm)
  }
}

/**
 * The position the joint angles put the tool at: the inverse of {@link jointsOf} for the
 * joints it can give, which are those of {@link reachable}.
 */
export const positionOf = (joints: RmiPacket.JointAngle): RmiPacket.Position => {
  const { height, reach } = armOf(joints)
  return {
    X: round(reach * Math.cos(radians(joints.J1))),
    Y: round(reach * Math.sin(radians(joints.J1))),
    Z: round(height + ShoulderHeight),
    W: round(joints.J4 + 180),
    P: round(joints.J5),
    R: round(joints.J6),
    Ext1: round(joints.J7 ?? 0),
    Ext2: round(joints.J8 ?? 0),
    Ext3: round(joints.J9 ?? 0)
  }
}

/**
 * Whether the model's arm can take these joint angles: finite, the elbow bent forward
 * (J2 + J3 strictly between -90° and 90°) and the wrist in front of the base axis.
 */
export const reachable = (joints: RmiPacket.JointAngle): boolean => {
  const elbow = 90 - joints.J2 - joints.J3
  return Object.values(joints).every((angle) => angle === undefined || Number.isFinite(angle)) &&
    elbow > 0 && elbow < 180 && armOf(joints).reach > 1 &&
    // A finite angle can still overflow the position it leads to (1e306 degrees, say): the controller refuses it.
    Object.values(positionOf(joints)).every((value) => value === undefined || Number.isFinite(value))
}

/** The position a fraction `t` (0–1) of the way from `from` to `to`. */
export const interpolate = (from: RmiPacket.Position, to: RmiPacket.Position, t: number): RmiPacket.Position => {
  const at = (a: number | undefined, b: number | undefined) => round((a ?? 0) + ((b ?? 0) - (a ?? 0)) * t)
  return {
    X: at(from.X, to.X),
    Y: at(from.Y, to.Y),
    Z: at(from.Z, to.Z),
    W: at(from.W, to.W),
    P: at(from.P, to.P),
    R: at(from.R, to.R),
    Ext1: at(from.Ext1, to.Ext1),
    Ext2: at(from.Ext2, to.Ext2),
    Ext3: at(from.Ext3, to.Ext3)
  }
}

/** What executing one instruction does: move from `from` to `to` in `durationMs` (at 100 % override). */
export interface Motion {
  readonly from: RmiPacket.Position
  readonly to: RmiPacket.Position
  readonly durationMs: number
}

const offset = (from: RmiPacket.Position, by: RmiPacket.Position): RmiPacket.Position => ({
  X: from.X + by.X,
  Y: from.Y + by.Y,
  Z: from.Z + by.Z,
  W: from.W + by.W,
  P: from.P + by.P,
  R: from.R + by.R,
  Ext1: (from.Ext1 ?? 0) + (by.Ext1 ?? 0),
  Ext2: (from.Ext2 ?? 0) + (by.Ext2 ?? 0),
  Ext3: (from.Ext3 ?? 0) + (by.Ext3 ?? 0)
})

const linearDuration = (from: RmiPacket.Position, to: RmiPacket.Position, mmPerSecond: number): number => {
  const travel = Math.hypot(to.X - from.X, to.Y - from.Y, to.Z - from.Z) / mmPerSecond
  const turn = Math.max(Math.abs(to.W - from.W), Math.abs(to.P - from.P), Math.abs(to.R - from.R)) / WristSpeed
  return 1000 * Math.max(travel, turn)
}

const jointDuration = (from: RmiPacket.Position, to: RmiPacket.Position, percent: number): number => {
  const a = jointsOf(from)
  const b = jointsOf(to)
  const sweep = Math.max(...(["J1", "J2", "J3", "J4", "J5", "J6"] as const).map((j) => Math.abs(b[j] - a[j])))
  return (1000 * sweep) / ((MaxJointSpeed * percent) / 100)
}

/**
 * Plans an instruction from the current position, or gives the `ErrorID` the controller
 * refuses it with (a speed type the motion type does not take, a speed that is not positive).
 */
export const plan = (
  instruction: RmiPacket.Instruction,
  current: RmiPacket.Position
): Either.Either<Motion, number> => {
  if (instruction.Instruction === "FRC_WaitTime") {
    return instruction.Time < 0
      ? Either.left(ErrorCode.ErrorId.InvalidValue)
      : Either.right({ from: current, to: current, durationMs: instruction.Time * 1000 })
  }
  const { SpeedType: speedType, Speed: speed } = instruction
  if (!(speed > 0)) return Either.left(ErrorCode.ErrorId.InvalidSpeedValue)
  if (instruction.Instruction === "FRC_JointMotionJRep") {
    if (!reachable(instruction.JointAngle)) return Either.left(ErrorCode.ErrorId.InvalidValue)
    return timed(speedType, speed, current, positionOf(instruction.JointAngle), false)
  }
  const relative = instruction.Instruction === "FRC_LinearRelative" || instruction.Instruction === "FRC_JointRelative"
  const linear = instruction.Instruction === "FRC_LinearMotion" || instruction.Instruction === "FRC_LinearRelative"
  const to = relative ? offset(current, instruction.Position) : instruction.Position
  return timed(speedType, speed, current, to, linear)
}

/** The motion from `from` to `to` at `speed` read as `speedType`, or RMIT-030 if the motion type does not take it. */
const timed = (
  speedType: RmiPacket.SpeedType,
  speed: number,
  from: RmiPacket.Position,
  to: RmiPacket.Position,
  linear: boolean
): Either.Either<Motion, number> => {
  const motion = (durationMs: number) => Either.right({ from, to, durationMs })
  const wrongSpeedType = Either.left(ErrorCode.ErrorId.InvalidSpeedType)
  switch (speedType) {
    case "Time":
      return motion(speed * 100)
    case "mSec":
      return motion(speed)
    case "mmSec":
      return linear ? motion(linearDuration(from, to, speed)) : wrongSpeedType
    case "InchMin":
      return linear ? motion(linearDuration(from, to, (speed * 25.4) / 60)) : wrongSpeedType
    case "Percent":
      return linear ? wrongSpeedType : motion(jointDuration(from, to, speed))
  }
}
