/**
 * The fleet page's words for what the server says: a robot's connection and safety (from
 * `status` when an older server sends neither), its latch, its own safety report, and every
 * typed refusal explained in a sentence (who holds it, since when, the controller's code).
 *
 * @since 0.1.0
 */
import type {
  CommandNotSupported,
  CommandRefused,
  ControlHeld,
  InvalidRequest,
  NotController,
  RobotOffline,
  RobotStopped,
  RobotView,
  UnknownRobot
} from "../../src/protocol/FleetRpcs.js"

/** How a message reads: a success, something to look at, or a refusal or failure. */
export type Tone = "ok" | "warn" | "error"

/**
 * The joints of an arm's axes: RMI always reports J1–J9, and a six-axis arm's J7–J9 stay 0, so
 * trailing zeros beyond the sixth are left out.
 */
export const axesOf = (joints: ReadonlyArray<number>): ReadonlyArray<number> => {
  let axes = joints.length
  while (axes > 6 && joints[axes - 1] === 0) axes--
  return joints.slice(0, axes)
}

/** Whether the fleet can reach the robot; from `status` when a server does not send `connection`. */
export const connectionOf = (robot: RobotView): NonNullable<RobotView["connection"]> =>
  robot.connection ??
    (robot.status === "offline" ? "offline" : robot.status === "disconnected" ? "broken" : "online")

/** The fleet's safety view of the robot; from `status` when a server does not send `safety`. */
export const safetyOf = (robot: RobotView): NonNullable<RobotView["safety"]> =>
  robot.safety ??
    (robot.status === "estop" ? "stopped" : robot.status === "fault" ? "fault" : robot.status === "paused" ? "paused" : "normal")

/** A time of day, in the page's locale. */
export const timeOf = (epochMs: number): string => new Date(epochMs).toLocaleTimeString()

/** "by X at time", for a latch. */
export const stoppedBy = (stop: { readonly by: string; readonly since: number }): string =>
  `by ${stop.by} at ${timeOf(stop.since)}`

/**
 * What the latch of a robot says, under "STOPPED — reset required": who stopped it and when,
 * and for an AGV whether it confirmed the stop (its Reset is refused until it has).
 */
export const latchText = (robot: RobotView): string | undefined => {
  const stop = robot.stop
  if (stop === undefined) return undefined
  const confirmation = robot.kind !== "agv"
    ? ""
    : stop.confirmed
    ? "; the AGV confirmed the stop"
    : "; waiting for the AGV to confirm"
  return `Stopped ${stoppedBy(stop)}${confirmation}`
}

/** The robot's own safety report, in words (one item a line), and whether any of it needs attention. */
export const reportedOf = (
  robot: RobotView
): { readonly lines: ReadonlyArray<string>; readonly attention: boolean } | undefined => {
  const reported = robot.reportedSafety
  if (reported === undefined) return undefined
  const parts: Array<string> = []
  let attention = false
  if (robot.kind === "agv") {
    if (reported.eStop !== undefined) {
      parts.push(`e-stop ${reported.eStop}`)
      attention ||= reported.eStop !== "NONE"
    }
    if (reported.fieldViolation !== undefined) {
      parts.push(reported.fieldViolation ? "field violation" : "field clear")
      attention ||= reported.fieldViolation
    }
  } else {
    if (reported.servoReady !== undefined) {
      parts.push(reported.servoReady ? "servo ready" : "servo off")
      attention ||= !reported.servoReady
    }
    if (reported.tpMode !== undefined) {
      // TP enabled: the teach pendant has control, and the controller refuses remote motion.
      parts.push(reported.tpMode ? "TP enabled" : "TP disabled")
      attention ||= reported.tpMode
    }
  }
  return parts.length === 0 ? undefined : { lines: parts, attention }
}

/** A refusal of the server, or the stop channel's, or the connection's, in words. */
export const explain = (error: { readonly _tag: string }): string => {
  switch (error._tag) {
    case "ControlHeld": {
      const { holder, robot } = error as ControlHeld
      return `Another operator (${holder}) holds control of ${robot}`
    }
    case "NotController":
      return `You do not hold control of ${(error as NotController).robot}: acquire it first (a lease lapses when it is not renewed)`
    case "UnknownRobot":
      return `The fleet does not know ${(error as UnknownRobot).robot ?? "that robot"}`
    case "RobotOffline":
      return `${(error as RobotOffline).robot} is offline: the command cannot reach it`
    case "CommandNotSupported": {
      const { command, robot } = error as CommandNotSupported
      return `${robot} does not accept ${command}`
    }
    case "CommandRefused": {
      const { code, command, reason, robot } = error as CommandRefused
      // The link's text may repeat what refused it ("FRC_Continue refused: RMIT-010 …"): keep the controller's part.
      const text = reason.replace(/^\S+ refused: /, "")
      return code === undefined || text.includes(code)
        ? `${robot} refused ${command}: ${text}`
        : `${robot} refused ${command}: ${code} ${text}`
    }
    case "RobotStopped": {
      const stop = error as RobotStopped
      return `${stop.robot} is stopped (${stoppedBy(stop)}): reset required`
    }
    case "InvalidRequest": {
      const { field, reason } = error as InvalidRequest
      return `Invalid ${field}: ${reason}`
    }
    case "Unauthorized":
      return `Your sign-in is no longer valid (${(error as { readonly reason?: string }).reason ?? "expired"}): sign in again`
    case "Forbidden": {
      const { needed, user } = error as { readonly needed?: string; readonly user?: string }
      return `${user ?? "You"} may not do this: it needs the ${needed ?? "operator"} role`
    }
    case "BadRequest":
      return `The stop channel refused the request: ${(error as { readonly message?: string }).message ?? "bad request"}`
    case "RpcClientError": {
      const { message } = error as { readonly message?: string }
      return `No answer from the server: the connection failed${message ? ` (${message})` : ""}; the command may not have arrived. Check the robot's state before sending it again`
    }
    case "NoAnswer":
      return "No answer from the server within 2 s: the stop may not have arrived. Check the robot's state"
    default:
      return `Refused: ${error._tag}`
  }
}
