/**
 * The last `instantActions` headerId heard on each AGV's topic, from any sender (this node's
 * links, another node, the stop channel's thread), kept for the node's life. Several nodes may
 * publish to one AGV (any node may stop any AGV), and VDA 5050 wants one increasing sequence
 * per topic: a node that publishes a stop for an AGV whose link it does not run takes the id
 * after the last one heard, and a link started here (the node was given the AGV) begins after it.
 *
 * @since 0.1.0
 */
import * as HeaderIds from "./HeaderIds.js"

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

/** An empty table. */
export const make = (): HeardHeaderIds => {
  const ids = new Map<string, number | undefined>()
  const heard = (robot: string, headerId?: number) => {
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
      const id = last === undefined ? 0 : HeaderIds.after(last)
      ids.set(robot, id)
      return id
    },
    has: (robot) => ids.has(robot),
    robots: () => ids.keys()
  }
}
