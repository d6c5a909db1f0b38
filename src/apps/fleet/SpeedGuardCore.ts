/**
 * The speed guard's phases over samples (see SpeedGuard.ts), shared by the in-process loop and
 * the loop's worker thread.
 *
 * Each robot gets a slot, and its samples, positions and speeds live in typed arrays indexed by
 * slot, so that a tick allocates nothing: on the loop's thread, garbage means scavenges, and a
 * scavenge waits for V8's helper threads, which run at normal priority however urgent the loop.
 *
 * As a worker phases module (`phases(config, io)`), it reads the samples from shared memory:
 * the fleet's sample columns (`config.columns`: AGVs' visualizations, written by the threads
 * that parse them), and the table the main thread's feed (`makeFeed`) writes from telemetry
 * events (arms, AGVs' states). Its only messages name the robots of new slots; its outputs are
 * the alarms it posts.
 *
 * @since 0.1.0
 */
import type * as LinkEvent from "../../links/LinkEvent.js"
import * as SampleColumns from "../../links/SampleColumns.js"
import type { Phase, Tick, WorkerIo } from "./ControlLoop.js"

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

/** The worker guard's configuration: its limits, and the fleet's sample columns when there are some. */
export interface GuardConfig extends GuardLimits {
  readonly columns?: SampleColumns.SharedColumns | undefined
}

/** What the main thread posts the worker about the sample columns: the robot of a slot. */
export interface ColumnNaming {
  readonly column: number
  readonly robot: string
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

/** Speeds are measured over at least this many seconds, so that bursts of samples do not read as jumps. */
const minInterval = 0.05

const kinds: ReadonlyArray<LinkEvent.RobotKind> = ["arm", "agv"]

type Column = Uint8Array | Int32Array | Float64Array

/** Per-slot columns that grow by doubling (rarely: when a fleet grows past the capacity). */
const makeColumns = () => {
  const columns = {
    capacity: 0,
    fresh: new Uint8Array(0),
    kind: new Uint8Array(0),
    flagged: new Uint8Array(0),
    nextKind: new Uint8Array(0),
    nextX: new Float64Array(0),
    nextY: new Float64Array(0),
    nextZ: new Float64Array(0),
    nextT: new Float64Array(0),
    prevX: new Float64Array(0),
    prevY: new Float64Array(0),
    prevZ: new Float64Array(0),
    prevT: new Float64Array(0),
    speed: new Float64Array(0),
    speedKind: new Uint8Array(0),
    offered: new Int32Array(0),
    current: new Int32Array(0),
    ensure: (slot: number) => {
      if (slot < columns.capacity) return
      let capacity = Math.max(64, columns.capacity)
      while (capacity <= slot) capacity *= 2
      const table = columns as unknown as Record<string, unknown>
      for (const key of Object.keys(table)) {
        const old = table[key]
        if (!ArrayBuffer.isView(old)) continue
        const grown = new (old.constructor as new(length: number) => Column)(capacity)
        grown.set(old as Column)
        if (key === "prevT" || key === "speed") grown.fill(NaN, (old as Column).length)
        table[key] = grown
      }
      columns.capacity = capacity
    }
  }
  return columns
}

/**
 * The guard: `offer` (by robot) or `offerAt` (by slot, once `name`d) conflates the latest sample
 * per robot, the four phases consume them, `emit` gets each new alarm.
 */
export const makeGuard = (limits: GuardLimits, emit: (alarm: LinkEvent.Alarm) => void): Guard => {
  const { armLimit, agvLimit } = limits
  const c = makeColumns()
  const names: Array<string> = []
  const slots = new Map<string, number>()
  let offered = 0
  let current = 0
  const alarms: Array<LinkEvent.Alarm> = []
  const name = (slot: number, robot: string) => {
    c.ensure(slot)
    names[slot] = robot
  }
  const offerAt = (slot: number, kind: number, x: number, y: number, z: number, t: number) => {
    if (slot >= c.capacity) c.ensure(slot)
    if (c.fresh[slot] === 0) {
      c.fresh[slot] = 1
      c.offered[offered++] = slot
    }
    c.nextKind[slot] = kind
    c.nextX[slot] = x
    c.nextY[slot] = y
    c.nextZ[slot] = z
    c.nextT[slot] = t
  }
  return {
    name,
    offerAt,
    offer: (robot: string, sample: Sample) => {
      let slot = slots.get(robot)
      if (slot === undefined) {
        slot = slots.size
        slots.set(robot, slot)
        name(slot, robot)
      }
      offerAt(slot, sample.kind === "arm" ? 0 : 1, sample.x, sample.y, sample.z, sample.t)
    },
    phases: [
      {
        name: "read inputs",
        run: () => {
          for (let i = 0; i < offered; i++) {
            const slot = c.offered[i]
            c.fresh[slot] = 0
            c.current[i] = slot
          }
          current = offered
          offered = 0
        }
      },
      {
        name: "process",
        run: () => {
          for (let i = 0; i < current; i++) {
            const slot = c.current[i]
            const t = c.nextT[slot]
            const before = c.prevT[slot]
            if (t - before < minInterval) continue
            const dx = c.nextX[slot] - c.prevX[slot]
            const dy = c.nextY[slot] - c.prevY[slot]
            const dz = c.nextZ[slot] - c.prevZ[slot]
            c.prevX[slot] = c.nextX[slot]
            c.prevY[slot] = c.nextY[slot]
            c.prevZ[slot] = c.nextZ[slot]
            c.prevT[slot] = t
            if (Number.isNaN(before)) continue
            c.speed[slot] = Math.sqrt(dx * dx + dy * dy + dz * dz) / (t - before)
            c.speedKind[slot] = c.nextKind[slot]
          }
        }
      },
      {
        name: "control",
        run: () => {
          for (let i = 0; i < current; i++) {
            const slot = c.current[i]
            const speed = c.speed[slot]
            if (Number.isNaN(speed)) continue
            const kind = kinds[c.speedKind[slot]]
            const limit = kind === "arm" ? armLimit : agvLimit
            if (speed > limit && c.flagged[slot] === 0) {
              c.flagged[slot] = 1
              alarms.push({
                _tag: "Alarm",
                robot: names[slot],
                kind,
                code: "OVERSPEED",
                level: "fatal",
                message: `${speed.toFixed(1)} ${kind === "arm" ? "mm/s" : "m/s"} over the limit of ${limit}`,
                at: Date.now()
              })
            } else if (speed < 0.9 * limit) {
              c.flagged[slot] = 0
            }
          }
        }
      },
      {
        name: "actuator outputs",
        run: () => {
          if (alarms.length === 0) return
          for (const alarm of alarms.splice(0)) emit(alarm)
        }
      }
    ]
  }
}

/** Numbers per slot in a feed's table: kind (0 arm, 1 agv), x, y, z, t. */
const fields = 5

/**
 * The main thread's end of a worker's guard: gives each robot a slot in a table of shared
 * memory and writes its latest sample there, under a per-slot sequence number (odd while it is
 * written), so that the worker reads the samples at its tick without a message or an
 * allocation. `post` sends the worker each new slot's robot, and the table when it grows.
 */
export const makeFeed = (post: (naming: FeedNaming) => void): (robot: string, sample: Sample) => void => {
  const slots = new Map<string, number>()
  let seq: Int32Array = new Int32Array(0)
  let values: Float64Array = new Float64Array(0)
  const grow = (needed: number) => {
    let capacity = Math.max(64, seq.length)
    while (capacity < needed) capacity *= 2
    const grownSeq = new Int32Array(new SharedArrayBuffer(capacity * Int32Array.BYTES_PER_ELEMENT))
    const grownValues = new Float64Array(new SharedArrayBuffer(capacity * fields * Float64Array.BYTES_PER_ELEMENT))
    grownSeq.set(seq)
    grownValues.set(values)
    seq = grownSeq
    values = grownValues
    return { seq, values }
  }
  return (robot: string, sample: Sample) => {
    let slot = slots.get(robot)
    if (slot === undefined) {
      slot = slots.size
      slots.set(robot, slot)
      post({ slot, robot, table: slot < seq.length ? undefined : grow(slot + 1) })
    }
    const i = slot * fields
    Atomics.add(seq, slot, 1)
    values[i] = sample.kind === "arm" ? 0 : 1
    values[i + 1] = sample.x
    values[i + 2] = sample.y
    values[i + 3] = sample.z
    values[i + 4] = sample.t
    Atomics.add(seq, slot, 1)
  }
}

const { Field } = SampleColumns

/**
 * The worker phases module: two guards, one fed from the sample columns and one from a feed's
 * table, read at each tick, their phases run in turn and their alarms posted back.
 */
export const phases = (config: GuardConfig, io: WorkerIo): ReadonlyArray<Phase> => {
  const guard = makeGuard(config, io.post)
  const sampled = makeGuard(config, io.post)
  const columns = config.columns === undefined ? undefined : SampleColumns.fromShared(config.columns)
  const columnSlots: Array<number> = []
  const columnSeen = new Int32Array(columns?.capacity ?? 0)
  const sample = new Float64Array(SampleColumns.fieldCount)
  let seq: Int32Array = new Int32Array(0)
  let values: Float64Array = new Float64Array(0)
  let seen = new Int32Array(0)
  let named = 0
  io.onInput((input: FeedNaming | ColumnNaming) => {
    if ("column" in input) {
      sampled.name(input.column, input.robot)
      columnSlots.push(input.column)
      return
    }
    const { robot, slot, table } = input
    if (table !== undefined) {
      seq = table.seq
      values = table.values
      const grown = new Int32Array(seq.length)
      grown.set(seen)
      seen = grown
    }
    guard.name(slot, robot)
    named = Math.max(named, slot + 1)
  })
  const pollColumns = () => {
    if (columns === undefined) return
    for (const slot of columnSlots) {
      if (!SampleColumns.readChanged(columns, slot, columnSeen, sample)) continue
      const clock = sample[Field.clock]
      const t = (Number.isNaN(clock) ? sample[Field.at] : clock) / 1000
      if (sample[Field.kind] === 0) sampled.offerAt(slot, 0, sample[Field.x], sample[Field.y], sample[Field.z], t)
      else if (sample[Field.poseKnown] === 1) sampled.offerAt(slot, 1, sample[Field.x], sample[Field.y], 0, t)
    }
  }
  const poll = () => {
    for (let slot = 0; slot < named; slot++) {
      const before = Atomics.load(seq, slot)
      if (before === seen[slot] || (before & 1) === 1) continue
      const i = slot * fields
      const kind = values[i]
      const x = values[i + 1]
      const y = values[i + 2]
      const z = values[i + 3]
      const t = values[i + 4]
      if (Atomics.load(seq, slot) !== before) continue
      seen[slot] = before
      guard.offerAt(slot, kind, x, y, z, t)
    }
  }
  return guard.phases.map((phase, i) => {
    const other = sampled.phases[i]
    return i === 0
      ? { name: phase.name, run: (tick: Tick) => (poll(), pollColumns(), phase.run(tick), other.run(tick)) }
      : { name: phase.name, run: (tick: Tick) => (phase.run(tick), other.run(tick)) }
  })
}
