/**
 * The telemetry log's sampler of the fleet's sample columns, run on the log's worker thread
 * (`TelemetryLog.sample`): `hz` times a second it reads every robot's slot that was written since
 * its last turn and makes one row of it, there, without the event loop:
 *
 * | kind   | from                  | columns       | payload                                              |
 * |--------|-----------------------|---------------|------------------------------------------------------|
 * | `pose` | an AGV's latest pose  | x, y, theta   | velocity `{ vx, vy, omega }`, when the AGV reports it |
 * | `arm`  | an arm's latest poll  | –             | position, joints, program status, override, time tag |
 *
 * The event loop tells it each robot's slot ({@link SlotNaming}) as the fleet hands slots out.
 *
 * @since 0.1.0
 */
import * as ArmSample from "../../links/rmi/ArmSample.js"
import * as SampleColumns from "../../links/SampleColumns.js"
import type { TelemetrySampler } from "../../store/TelemetryLog.js"

/** The sampler's configuration: the fleet's columns. */
export interface SamplingConfig {
  readonly columns: SampleColumns.SharedColumns
}

/** What the event loop tells the sampler: the robot of a slot. */
export interface SlotNaming {
  readonly robot: string
  readonly slot: number
}

const { Field } = SampleColumns

const velocityOf = (sample: Float64Array): string | undefined => {
  const vx = sample[Field.vx]
  const vy = sample[Field.vy]
  const omega = sample[Field.omega]
  if (Number.isNaN(vx) && Number.isNaN(vy) && Number.isNaN(omega)) return undefined
  return JSON.stringify({ vx: orNull(vx), vy: orNull(vy), omega: orNull(omega) })
}

const orNull = (n: number) => (Number.isNaN(n) ? null : n)

/** The sampler; see the module documentation. */
export const sampler = (config: SamplingConfig): TelemetrySampler => {
  const columns = SampleColumns.fromShared(config.columns)
  const robots: Array<string | undefined> = []
  const slots: Array<number> = []
  const seen = new Int32Array(columns.capacity)
  const sample = new Float64Array(SampleColumns.fieldCount)
  return {
    onInput: (input) => {
      const { robot, slot } = input as SlotNaming
      if (robots[slot] === undefined) slots.push(slot)
      robots[slot] = robot
    },
    sample: (row) => {
      for (const slot of slots) {
        if (!SampleColumns.readChanged(columns, slot, seen, sample)) continue
        const robot = robots[slot]!
        if (sample[Field.kind] === 0) {
          row(robot, sample[Field.at], "arm", NaN, NaN, NaN, JSON.stringify({
            position: ArmSample.positionOf(sample),
            joints: ArmSample.jointsOf(sample),
            programStatus: ArmSample.programStatusOfSample(sample),
            override: sample[Field.override],
            timeTag: sample[Field.clock]
          }))
        } else if (sample[Field.poseKnown] === 1) {
          row(robot, sample[Field.at], "pose", sample[Field.x], sample[Field.y], sample[Field.theta], velocityOf(sample))
        }
      }
    }
  }
}
