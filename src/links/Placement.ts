/**
 * Where robot links run: which robots this node runs, when several nodes share a fleet.
 *
 * The links layer asks it before starting a robot's link and follows its changes to start or stop
 * links; what decides (leases in Redis, see `src/cluster/Ownership.ts`) is given from above by the
 * service. Without a placement every robot is this node's, as on a single node.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/** Which robots this node runs. */
export interface Placement {
  /** This node's id, for logs and the operator. */
  readonly node: string
  /** Whether this node runs `robot` now: may its link run here. */
  readonly owns: (robot: string) => boolean
  /** The robots this node runs now. */
  readonly owned: () => ReadonlyArray<string>
  /** Declares robots this node may run (heard of, or configured); it may then be given them. */
  readonly manage: (robots: Iterable<string>) => Effect.Effect<void>
  /**
   * Calls `listener` with `true` when this node is given a robot it manages and `false` when it
   * loses one, from now on; returns what stops the calls. Calls come from another fiber: a
   * listener hands them on (to an actor's mailbox) and returns.
   */
  readonly watch: (listener: (robot: string, owned: boolean) => void) => () => void
  /**
   * Whether node `node` is a live member now, so that what it said of its robots still holds;
   * absent: every node is.
   */
  readonly isLive?: ((node: string) => boolean) | undefined
  /**
   * The fencing token (`epoch.counter`) of this node's lease on `robot` while it runs it: a
   * command another node sends carries it, and is refused here when it is not the current one.
   */
  readonly tokenOf?: ((robot: string) => string | undefined) | undefined
}


/** The node's placement as a service; absent on a single node. */
export const Placement: Context.Tag<Placement, Placement> = Context.GenericTag<Placement>("fleetvisor/links/Placement")
