/**
 * The control leases of the fleet: who may command which robot, until when. `fleet/state`
 * grants, renews and ends them, but the table itself belongs to the fleet service, above the
 * `fleet` subtree, so a crash of `state` (or a restart of the whole `fleet`) keeps every lease:
 * the restarted `state` finds the table as it was and monitors each holder again. Nothing
 * here is written to disk: no lease survives the process, and a holder must take it again.
 *
 * @since 0.1.0
 */
import type { ActorRef } from "../../actors/ActorRef.js"

/** Who asks: the session (its id, its user and their role, and its actor if the gateway has one). */
export interface Holder {
  readonly session: string
  readonly user: string
  /** The user's highest role, for the audit log; absent without authentication. */
  readonly role?: string | undefined
  readonly ref?: ActorRef<never> | undefined
}

/** A robot's lease. */
export interface LeaseRecord {
  readonly robot: string
  readonly holder: Holder
  /** ms since the epoch. */
  expiresAt: number
}

/** Why a lease ended without its holder releasing it. */
export type LeaseLost = "expired" | "holder gone"

/** The lease table: robot → its lease (an expired one stays until `fleet/state` ends it). */
export type Leases = Map<string, LeaseRecord>

/** An empty table. */
export const make = (): Leases => new Map()

/** The robot's lease if it has not expired at `now`. */
export const live = (leases: Leases, robot: string, now: number): LeaseRecord | undefined => {
  const lease = leases.get(robot)
  return lease !== undefined && lease.expiresAt > now ? lease : undefined
}
