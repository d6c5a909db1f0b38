/**
 * The last `instantActions` headerId heard on each AGV's topic, from any sender (this node's
 * links, another node, the stop channel's thread), kept for the node's life. Several nodes may
 * publish to one AGV (any node may stop any AGV), and VDA 5050 wants one increasing sequence
 * per topic: a node that publishes a stop for an AGV whose link it does not run takes the id
 * after the last one heard, and a link started here (the node was given the AGV) begins after it.
 *
 * Given the node's `SharedHeaderIds` (the stop channel's table), the table writes through to it:
 * each AGV heard of is marked there, its shared counter moves past every id heard, and `next`
 * takes the id from that counter, so the stop channel's thread can stop any AGV heard of, in the
 * same sequence as this node's other senders.
 *
 * @since 0.1.0
 */
import type { AgvIdentity } from "./Header.js"
import * as HeaderIds from "./HeaderIds.js"
import type * as SharedHeaderIds from "./SharedHeaderIds.js"

/** The table; see the module documentation. */
export interface HeardHeaderIds {
  /** `headerId` went out on `robot`'s `instantActions` topic (kept if it comes after the last one); without one, the AGV was heard of. */
  readonly heard: (robot: string, headerId?: number) => void
  /** The last id heard for `robot`, if any. */
  readonly last: (robot: string) => number | undefined
  /** The id for a message this node sends to `robot` without its link: the one after the last heard (remembered as heard). */
  readonly next: (robot: string) => number
  /** Whether the AGV was heard of on the broker (admitted, on any of its topics). */
  readonly has: (robot: string) => boolean
  /** Every AGV heard of. */
  readonly robots: () => Iterable<string>
}

/** The AGV of a robot id (`manufacturer/serialNumber`, split at the first `/`). */
const identityOf = (robot: string): AgvIdentity => {
  const slash = robot.indexOf("/")
  return { manufacturer: robot.slice(0, slash), serialNumber: robot.slice(slash + 1) }
}

/** An empty table, writing through to `shared` when given (see the module documentation). */
export const make = (shared?: SharedHeaderIds.SharedHeaderIds): HeardHeaderIds => {
  const ids = new Map<string, number | undefined>()
  const heard = (robot: string, headerId?: number) => {
    if (shared !== undefined) {
      const identity = identityOf(robot)
      shared.setHeard(identity)
      if (headerId !== undefined) shared.advance(identity, headerId)
    }
    const last = ids.get(robot)
    if (headerId === undefined) {
      if (!ids.has(robot)) ids.set(robot, undefined)
    } else if (last === undefined || HeaderIds.isAfter(headerId, last)) ids.set(robot, headerId)
  }
  return {
    heard,
    last: (robot) => ids.get(robot),
    next: (robot) => {
      const last = ids.get(robot)
      const id = shared !== undefined ? shared.take(identityOf(robot)) : last === undefined ? 0 : HeaderIds.after(last)
      ids.set(robot, id)
      return id
    },
    has: (robot) => ids.has(robot),
    robots: () => ids.keys()
  }
}
