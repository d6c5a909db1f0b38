/**
 * What the canvas needs of the cluster when several nodes serve one board: the board's lease and
 * the backplane its messages cross on.
 *
 * The board is a singleton held like a robot (a Redis lease with a fencing token, see
 * `src/cluster/Singleton.ts`); the service builds this from it and hands it down, so the canvas
 * never imports `src/cluster`. Without it (a single node) the canvas owns its board alone.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type { Backplane } from "../../actors/Backplane.js"

/** A lease's fencing token, compared epoch first, then counter. */
export interface BoardToken {
  readonly epoch: number
  readonly counter: number
}

/** Negative when `a` is older than `b`, zero when equal, positive when newer. */
export const compareTokens = (a: BoardToken, b: BoardToken): number =>
  a.epoch !== b.epoch ? a.epoch - b.epoch : a.counter - b.counter

/** The board's lease as this node sees it, and the backplane between the nodes. */
export interface CanvasCluster {
  /** This node's id; the canvas hub's node id on the backplane. */
  readonly node: string
  /** Carries the board's frames and the forwarded placements between nodes. */
  readonly backplane: Backplane
  /** Whether this node holds the board now, by its own monotonic deadline: may it write the board. */
  readonly owns: () => boolean
  /** The fencing token of this node's lease while it holds the board. */
  readonly token: () => BoardToken | undefined
  /**
   * Calls `listener` with `true` when this node is given the board and `false` when it loses it,
   * from now on; returns what stops the calls. A listener hands the call on and returns.
   */
  readonly watch: (listener: (owned: boolean) => void) => () => void
}

/** The canvas's cluster, when the node is one of several; absent on a single node. */
export const CanvasCluster: Context.Tag<CanvasCluster, CanvasCluster> = Context.GenericTag<CanvasCluster>(
  "fleetvisor/apps/canvas/CanvasCluster"
)
