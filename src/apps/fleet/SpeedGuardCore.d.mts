/** Types of SpeedGuardCore.mjs: the speed guard's phases over samples. */
import type * as LinkEvent from "../../links/LinkEvent.js"
import type { Phase, WorkerIo } from "./ControlLoop.js"

/** One position of a robot; `t` in seconds. */
export interface Sample {
  readonly kind: LinkEvent.RobotKind
  readonly x: number
  readonly y: number
  readonly z: number
  readonly t: number
}

/** Speed limits: arms in mm/s, AGVs in m/s. */
export interface GuardLimits {
  readonly armLimit: number
  readonly agvLimit: number
}

/** Conflated samples as posted to the worker. */
export interface SampleBatch {
  readonly robots: ReadonlyArray<string>
  readonly values: Float64Array
}

/** The guard: `offer` conflates the latest sample per robot, the four phases consume them, `emit` gets each new alarm. */
export declare const makeGuard: (
  limits: GuardLimits,
  emit: (alarm: LinkEvent.Alarm) => void
) => { readonly offer: (robot: string, sample: Sample) => void; readonly phases: ReadonlyArray<Phase> }

/** Packs conflated samples into a batch for the worker; `values.buffer` can be transferred. */
export declare const encodeBatch: (samples: ReadonlyMap<string, Sample>) => SampleBatch

/** The worker phases module: the guard fed by batches, its alarms posted back. */
export declare const phases: (config: GuardLimits, io: WorkerIo) => ReadonlyArray<Phase>
