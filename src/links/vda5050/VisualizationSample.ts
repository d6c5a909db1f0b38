/**
 * How an AGV's `visualization` becomes a sample: its pose, velocity, clock and headerId written
 * into the AGV's slot of the fleet's {@link SampleColumns}, by whichever thread parsed it (the
 * ingest thread, or the broker connection's actor without one). A `visualization` is a sample,
 * not an event: once the AGV's link runs, it reaches nobody's mailbox unless the link asked for
 * one ({@link SampleColumns.want}).
 *
 * @since 0.1.0
 */
import * as SampleColumns from "../SampleColumns.js"
import type * as Inbound from "./Inbound.js"
import type { Visualization } from "./Visualization.js"

const { Field } = SampleColumns

/**
 * Writes `message`, received at `at` (ms since the epoch), into `slot`. Returns whether its
 * headerId does not follow the slot's previous one (a message lost on the way, or an AGV that
 * restarted its count).
 */
export const write = (columns: SampleColumns.SampleColumns, slot: number, message: Visualization, at: number): boolean => {
  const values = columns.values
  const offset = SampleColumns.begin(columns, slot)
  const previous = values[offset + Field.headerId]
  const headerId = message.headerId ?? NaN
  values[offset + Field.kind] = 1
  values[offset + Field.at] = at
  values[offset + Field.clock] = message.timestamp === undefined ? NaN : Date.parse(message.timestamp)
  values[offset + Field.headerId] = headerId
  const position = message.agvPosition
  if (position !== undefined) {
    values[offset + Field.x] = position.x
    values[offset + Field.y] = position.y
    values[offset + Field.theta] = position.theta
    values[offset + Field.poseKnown] = 1
  }
  const velocity = message.velocity
  if (velocity !== undefined) {
    values[offset + Field.vx] = velocity.vx ?? NaN
    values[offset + Field.vy] = velocity.vy ?? NaN
    values[offset + Field.omega] = velocity.omega ?? NaN
  }
  SampleColumns.commit(columns, slot)
  return !Number.isNaN(headerId) && !Number.isNaN(previous) && headerId !== previous + 1
}

/** Where a thread that parses messages counts what it did with samples. */
export interface SampleCounts {
  /** A sample written to the columns only. */
  readonly sampled: () => void
  /** A sample whose headerId did not follow its AGV's previous one. */
  readonly gap: () => void
}

/**
 * Takes a checked message as a sample when it is a `visualization` of an AGV that has a slot
 * (`slotOf`, by `<manufacturer>/<serialNumber>`): writes it, and returns true when it goes no
 * further; false when it is to go on to the AGV's link (not a sample, no slot, or the link asked
 * for it).
 */
export const take = (
  columns: SampleColumns.SampleColumns,
  slotOf: (robot: string) => number | undefined,
  checked: Inbound.Valid,
  counts: SampleCounts
): boolean => {
  if (checked.topic !== "visualization") return false
  const slot = slotOf(`${checked.identity.manufacturer}/${checked.identity.serialNumber}`)
  if (slot === undefined) return false
  if (write(columns, slot, checked.message as Visualization, Date.now())) counts.gap()
  if (SampleColumns.takeWanted(columns, slot)) return false
  counts.sampled()
  return true
}
