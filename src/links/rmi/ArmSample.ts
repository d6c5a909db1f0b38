/**
 * How an arm's poll becomes a sample: its tool position, joint angles, controller clock, program
 * status and override written into the arm's slot of the fleet's {@link SampleColumns} by the
 * link's poll, at the poll's rate (10–125 Hz), without a message. What the link's actor and the
 * hub hear is the arm's *status* (program status, servo, pendant, override, moving): an
 * `ArmTelemetry` event when it changes, not one per poll.
 *
 * @since 0.1.0
 */
import type * as LinkEvent from "../LinkEvent.js"
import * as SampleColumns from "../SampleColumns.js"

const { Field } = SampleColumns

/** Where a link writes its arm's samples: the fleet's columns and the arm's slot. */
export interface ArmSlot {
  readonly columns: SampleColumns.SampleColumns
  readonly slot: number
}

const programStatusCode = { running: 0, paused: 1, aborted: 2 } as const
const programStatusOf: ReadonlyArray<LinkEvent.ArmTelemetry["programStatus"]> = ["running", "paused", "aborted"]
const joints = ["J1", "J2", "J3", "J4", "J5", "J6", "J7", "J8", "J9"] as const

/** Writes one poll into the arm's slot. */
export const write = ({ columns, slot }: ArmSlot, poll: LinkEvent.ArmTelemetry): void => {
  const values = columns.values
  const offset = SampleColumns.begin(columns, slot)
  values[offset + Field.kind] = 0
  values[offset + Field.at] = poll.at
  values[offset + Field.clock] = poll.timeTag
  const p = poll.position
  values[offset + Field.x] = p.X
  values[offset + Field.y] = p.Y
  values[offset + Field.z] = p.Z
  values[offset + Field.w] = p.W
  values[offset + Field.p] = p.P
  values[offset + Field.r] = p.R
  for (let j = 0; j < joints.length; j++) values[offset + Field.j1 + j] = poll.joints[joints[j]] ?? NaN
  values[offset + Field.programStatus] = programStatusCode[poll.programStatus]
  values[offset + Field.override] = poll.override
  SampleColumns.commit(columns, slot)
}

/** Whether two polls differ in what is an event: program status, servo, pendant, override, motion. */
export const statusChanged = (before: LinkEvent.ArmTelemetry | undefined, now: LinkEvent.ArmTelemetry): boolean =>
  before === undefined ||
  before.programStatus !== now.programStatus ||
  before.servoReady !== now.servoReady ||
  before.tpMode !== now.tpMode ||
  before.override !== now.override ||
  before.moving !== now.moving

/** The joint angles of a sample (`values` from {@link SampleColumns.read}), J7–J9 only when the arm has them. */
export const jointsOf = (values: Float64Array, offset = 0): LinkEvent.ArmTelemetry["joints"] => {
  const angles: Record<string, number> = {}
  for (let j = 0; j < joints.length; j++) {
    const angle = values[offset + Field.j1 + j]
    if (!Number.isNaN(angle)) angles[joints[j]] = angle
  }
  return angles as unknown as LinkEvent.ArmTelemetry["joints"]
}

/** The tool position of a sample. */
export const positionOf = (values: Float64Array, offset = 0): LinkEvent.ArmTelemetry["position"] => ({
  X: values[offset + Field.x],
  Y: values[offset + Field.y],
  Z: values[offset + Field.z],
  W: values[offset + Field.w],
  P: values[offset + Field.p],
  R: values[offset + Field.r]
})

/** The program status of a sample. */
export const programStatusOfSample = (values: Float64Array, offset = 0): LinkEvent.ArmTelemetry["programStatus"] =>
  programStatusOf[values[offset + Field.programStatus]] ?? "aborted"

/**
 * `last` (the arm's latest status event) with the position, joints and clock of the slot's
 * latest sample when that is newer: what the arm looks like now.
 */
export const current = (slot: ArmSlot, last: LinkEvent.ArmTelemetry, scratch: Float64Array): LinkEvent.ArmTelemetry => {
  if (SampleColumns.read(slot.columns, slot.slot, scratch) <= 0 || scratch[Field.at] <= last.at) return last
  return {
    ...last,
    at: scratch[Field.at],
    timeTag: scratch[Field.clock],
    position: positionOf(scratch),
    joints: jointsOf(scratch)
  }
}
