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

/** What a feed posts to the worker: a new robot's slot, and the feed's table when it grew. */
export interface FeedNaming {
  readonly slot: number
  readonly robot: string
  readonly table: { readonly seq: Int32Array; readonly values: Float64Array } | undefined
}

/** The guard's inputs and phases; see {@link makeGuard}. */
export interface Guard {
  /** Conflates `robot`'s latest sample. */
  readonly offer: (robot: string, sample: Sample) => void
  /** Names a slot for `offerAt`. */
  readonly name: (slot: number, robot: string) => void
  /** Conflates the latest sample of the robot in `slot`; `kind` 0 for an arm, 1 for an AGV. */
  readonly offerAt: (slot: number, kind: number, x: number, y: number, z: number, t: number) => void
  readonly phases: ReadonlyArray<Phase>
}

/** The guard: conflates the latest sample per robot, the four phases consume them, `emit` gets each new alarm. */
export declare const makeGuard: (limits: GuardLimits, emit: (alarm: LinkEvent.Alarm) => void) => Guard

/** One worker's feed: writes a robot's latest sample to shared memory; `post` sends {@link FeedNaming}s to the worker. */
export declare const makeFeed: (post: (naming: FeedNaming) => void) => (robot: string, sample: Sample) => void

/** The worker phases module: the guard fed from a feed's shared memory at each tick, its alarms posted back. */
export declare const phases: (config: GuardLimits, io: WorkerIo) => ReadonlyArray<Phase>
