/**
 * Emergency-stop latches, as robot links see them. A stop latches its robot: from then on the
 * robot's link refuses every motion, order and program start until an operator's Reset clears
 * the latch. The latches live in a table above the links (the fleet owns it, and keeps it on
 * disk), so a link that crashes, reconnects or is started again finds its robot still latched:
 * "let it crash" is safe because the state that must survive lives outside the actor that
 * crashes, as an ETS table whose heir is the supervisor does in OTP.
 *
 * Links read the table before they send anything that moves the robot, write to it when a stop
 * reaches them, and clear it on a successful Reset. Making a latch durable is the table
 * owner's business ({@link Latches} says nothing of storage).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import type { RobotKind } from "./LinkEvent.js"

/** A latched robot: since when, by whom, and, for an AGV, whether its own state confirmed the stop. */
export interface Latch {
  readonly robot: string
  readonly kind: RobotKind
  /** When the stop latched the robot, ms since the epoch. */
  readonly since: number
  /** Who stopped it (a user, `stop channel`, …). */
  readonly by: string
  /** AGVs: the robot's state showed it paused, without nodes or edges, its `cancelOrder` done. Arms: always true. */
  confirmed: boolean
  /** Since when the stop waits for the robot's confirmation (this process's clock), ms since the epoch. */
  unconfirmedSince: number
  /** AGVs: the `cancelOrder` actionIds sent for this stop; one of them finishing is part of the confirmation. */
  readonly cancelActions: Set<string>
}

/** The table of latches, as a link uses it. */
export interface Latches {
  /** The robot's latch, if it is latched. */
  readonly get: (robot: string) => Latch | undefined
  /** Latches the robot now, or returns the latch it already has. */
  readonly latch: (robot: string, kind: RobotKind, by: string) => Latch
  /**
   * As `latch`, for a stop another sender published (another node): nobody waits on it to make
   * the latch durable, so the table's owner does (default: `latch`).
   */
  readonly adopt?: ((robot: string, kind: RobotKind, by: string) => Latch) | undefined
  /** Clears the robot's latch: an operator's Reset succeeded. */
  readonly clear: (robot: string) => void
}

/** A table in memory only: what a link uses when nobody gives it one (tests, a link on its own). */
export const memory = (): Latches => {
  const latches = new Map<string, Latch>()
  return {
    get: (robot) => latches.get(robot),
    latch: (robot, kind, by) => {
      let latch = latches.get(robot)
      if (latch === undefined) {
        const now = Date.now()
        latch = { robot, kind, since: now, by, confirmed: kind === "arm", unconfirmedSince: now, cancelActions: new Set() }
        latches.set(robot, latch)
      }
      return latch
    },
    clear: (robot) => void latches.delete(robot)
  }
}

/** A link refused to move its robot: an emergency stop latched it and no Reset has cleared it yet. */
export class LinkLatched extends Data.TaggedError("LinkLatched")<{
  readonly robot: string
  readonly since: number
  readonly by: string
}> {
  /** The refusal for `latch`. */
  static of(latch: Latch): LinkLatched {
    return new LinkLatched({ robot: latch.robot, since: latch.since, by: latch.by })
  }

  override get message() {
    return `${this.robot} was stopped by ${this.by} at ${new Date(this.since).toISOString()}; a Reset is required`
  }
}

/** What a link answers to an emergency stop, once the stop has left it. */
export interface StopOutcome {
  /** The stop went out on a live connection to the robot (not merely latched). */
  readonly reached: boolean
  /** Motions that were queued or executing and were dropped by the stop (arms). */
  readonly dropped: number
}
