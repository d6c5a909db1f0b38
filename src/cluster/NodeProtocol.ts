/**
 * The node-to-node protocol's versions, in one place: what a node announces in its membership
 * heartbeat (`protocol`, its newest version) and in the hello of each node link
 * (`{ v, min, max }`). Two nodes talk when their ranges overlap, in the newest version both speak;
 * a node refuses a peer outside its range (`IncompatibleNode`), so that a cluster is upgraded one
 * node at a time while the old and new builds share at least one version.
 *
 * Rules for a change: a new version is added at `max`; `min` moves up only once no node that a
 * cluster may still run speaks only older versions (as the client protocol's subprotocols).
 *
 * @since 0.1.0
 */

/** The oldest version this build speaks. */
export const min = 1

/** The newest version this build speaks, announced in the membership heartbeat. */
export const max = 1

/** A range of versions. */
export interface Range {
  readonly min: number
  readonly max: number
}

/** This build's range. */
export const range: Range = { min, max }

/** The version two ranges agree on (the newest both speak), or `undefined` when they do not overlap. */
export const agree = (ours: Range, theirs: Range): number | undefined => {
  const top = Math.min(ours.max, theirs.max)
  return top >= Math.max(ours.min, theirs.min) ? top : undefined
}
