/**
 * What a user may do: three roles, each including the one below it.
 *
 * - `viewer`: subscribe to the fleet and the canvas, event streams, Foxglove.
 * - `operator`: a viewer who may also take leases, command and reset robots.
 * - `admin`: an operator who may also read the admin endpoints and the actor tree.
 *
 * An emergency stop needs the `STOP_ROLE` setting's role (`viewer` by default: whoever sees
 * danger may stop).
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/** A role, as written in token files, JWT claims and settings. */
export const Role = Schema.Literal("viewer", "operator", "admin")

/** A role. */
export type Role = typeof Role.Type

/** Every role, lowest first. */
export const all: ReadonlyArray<Role> = ["viewer", "operator", "admin"]

const rank: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 }

/** Whether a user with `roles` may do what needs `needed` (a higher role includes the lower ones). */
export const allows = (roles: ReadonlyArray<Role>, needed: Role): boolean => {
  for (const role of roles) if (rank[role] >= rank[needed]) return true
  return false
}

/** The highest of `roles`, for audit rows and displays; `undefined` when there is none. */
export const highest = (roles: ReadonlyArray<Role>): Role | undefined => {
  let best: Role | undefined
  for (const role of roles) if (best === undefined || rank[role] > rank[best]) best = role
  return best
}

/** Whether `value` names a role. */
export const isRole = (value: unknown): value is Role => typeof value === "string" && value in rank
