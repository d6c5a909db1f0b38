/**
 * Control leases every node of a cluster shares: a session on any node may hold any robot,
 * whichever node runs it, and two sessions on two nodes never hold the same robot.
 *
 * The fleet keeps its own lease table as on a single node (`fleet/state` grants, renews, ends
 * and monitors the holders of this node's sessions); with several nodes it asks the shared
 * leases first, so the table of each node only holds what the cluster granted it. What decides is
 * given from above by the service (Redis, `src/cluster/ControlLeases.ts`). Without it, a node's
 * table is the only one.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/** Who holds a shared lease: a session of some node, and its user. */
export interface SharedHolder {
  readonly session: string
  readonly user: string
}

/** What taking a shared lease answered. */
export type Grant =
  | { readonly _tag: "Granted" }
  /** Another session holds it: `node` runs that session, `user` is its user. */
  | { readonly _tag: "Held"; readonly node: string; readonly user: string }

/** The shared leases could not be read or written: their store does not answer (the cluster's `RedisUnavailable`). */
export interface SharedLeasesUnavailable {
  readonly message: string
}

/** A lease of this node's table, as the shared leases are told it again after their store lost it. */
export interface LocalLease {
  readonly robot: string
  readonly holder: SharedHolder
  /** ms left. */
  readonly remainingMs: number
}

/** The cluster's control leases; see the module documentation. */
export interface SharedLeases {
  /** This node's id: the node part of every lease it takes. */
  readonly node: string
  /** Takes `robot` for `holder` for `ttlMs`, unless another session holds it; the same session renews it. */
  readonly acquire: (robot: string, holder: SharedHolder, ttlMs: number) => Effect.Effect<Grant, SharedLeasesUnavailable>
  /** Extends `session`'s lease; `false` when the session no longer holds it. */
  readonly renew: (robot: string, session: string, ttlMs: number) => Effect.Effect<boolean, SharedLeasesUnavailable>
  /** Ends `session`'s lease of `robot`, if it still holds it; never fails (the lease expires anyway). */
  readonly release: (robot: string, session: string) => Effect.Effect<void>
  /**
   * Tells the shared leases this node's table, which they write again whenever their store comes
   * back (it may have lost them); `lost` is told of a lease another session took meanwhile.
   */
  readonly attach: (local: {
    readonly all: () => ReadonlyArray<LocalLease>
    readonly lost: (robot: string, session: string) => void
  }) => Effect.Effect<void>
}

/** The node's shared leases as a service; absent on a single node. */
export const SharedLeases: Context.Tag<SharedLeases, SharedLeases> = Context.GenericTag<SharedLeases>(
  "fleetvisor/apps/fleet/SharedLeases"
)
