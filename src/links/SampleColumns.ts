/**
 * The fleet's column store of robot samples: what a robot last measured (its pose, velocity,
 * battery, joint angles), in shared memory, a slot per robot and a column per field, so that the
 * threads that parse robot messages write samples where every reader reads them, without a
 * message, a mailbox or an allocation. It is the fleet's ETS table of samples: links keep the
 * lifecycle and the events; samples are data.
 *
 * - **One writer per slot.** A robot's samples are written by one thread (an AGV's by the ingest
 *   thread its topics are subscribed on, an arm's by its link), so writers never race each other.
 * - **Lock-free reads (a seqlock).** A slot's sequence number is odd while its writer writes it
 *   and even once it is done; a reader copies the slot between two loads of the sequence number
 *   and keeps the copy only when both are the same even number. Readers never block the writer,
 *   and never see half of one sample and half of the next.
 * - **Change detection for free.** The sequence number grows by two per sample, so a reader that
 *   remembers the number it last read knows whether a robot moved since (the 30 Hz views sweep
 *   every slot and encode only the robots that changed).
 * - **Events on demand.** A link that must hear its robot's next sample as a message (a new link
 *   waiting for its robot's first word, or one whose robot fell silent or went down) raises the
 *   slot's `wants` flag ({@link want}); the writer then also posts that one sample as an event
 *   and lowers the flag. A slot whose link stopped ({@link unlink}) has every sample posted, so
 *   that the robot's next word starts its link again.
 *
 * The memory is `SharedArrayBuffer`s of a fixed capacity, made once by the fleet, above the
 * actors that read and write them, so that no restart loses a robot's last sample. Which slot
 * a robot has is kept by a {@link Directory}.
 *
 * @since 0.1.0
 */

/** The fields of a slot; a field the robot does not report is NaN. */
export const Field = {
  /** 0 for an arm, 1 for an AGV. */
  kind: 0,
  /** When the sample was written, ms since the epoch (this machine's clock). */
  at: 1,
  /** The robot's own clock of the sample, ms: an AGV's header timestamp, an arm's `TimeTag`. */
  clock: 2,
  /** The message's `headerId` (AGVs). */
  headerId: 3,
  /** Position: an arm's tool position in mm (x, y, z) and orientation in degrees (w, p, r); an AGV's x, y in m. */
  x: 4,
  y: 5,
  z: 6,
  w: 7,
  p: 8,
  r: 9,
  /** An AGV's heading, radians. */
  theta: 10,
  /** 1 when the position is known (an AGV that reported `agvPosition`), else 0. */
  poseKnown: 11,
  /** An AGV's velocity: m/s and rad/s. */
  vx: 12,
  vy: 13,
  omega: 14,
  /** Charge, percent. */
  battery: 15,
  /** An arm's joint angles J1 to J9, degrees. */
  j1: 16,
  /** An arm's program status: 0 running, 1 paused, 2 aborted. */
  programStatus: 25,
  /** An arm's speed override, percent. */
  override: 26
} as const

/** Numbers per slot. */
export const fieldCount = Field.override + 1

/** The shared memory of a column store, as it is posted to another thread. */
export interface SharedColumns {
  readonly seq: SharedArrayBuffer
  readonly wants: SharedArrayBuffer
  readonly values: SharedArrayBuffer
}

/** A column store, on any thread. */
export interface SampleColumns {
  /** How many slots it has. */
  readonly capacity: number
  /** Per slot: 0 while never written, odd while being written, then even. */
  readonly seq: Int32Array
  /** Per slot, a {@link Delivery}: whether the writer also posts samples as events. */
  readonly wants: Int32Array
  /** `capacity × fieldCount` numbers, slot-major. */
  readonly values: Float64Array
  /** The memory, to give another thread (`fromShared`). */
  readonly shared: SharedColumns
}

/** A store of `capacity` slots, every field NaN. */
export const make = (capacity: number): SampleColumns => {
  const shared: SharedColumns = {
    seq: new SharedArrayBuffer(capacity * Int32Array.BYTES_PER_ELEMENT),
    wants: new SharedArrayBuffer(capacity * Int32Array.BYTES_PER_ELEMENT),
    values: new SharedArrayBuffer(capacity * fieldCount * Float64Array.BYTES_PER_ELEMENT)
  }
  const columns = fromShared(shared)
  columns.values.fill(NaN)
  return columns
}

/** The store made by another thread, from its memory. */
export const fromShared = (shared: SharedColumns): SampleColumns => {
  const seq = new Int32Array(shared.seq)
  return { capacity: seq.length, seq, wants: new Int32Array(shared.wants), values: new Float64Array(shared.values), shared }
}

/**
 * Starts writing a sample into `slot` (its writer only) and returns the index of its first field
 * in `values`: write `values[offset + Field.x]` and so on, then {@link commit}. The slot keeps
 * the fields the sample does not set.
 */
export const begin = (columns: SampleColumns, slot: number): number => {
  Atomics.add(columns.seq, slot, 1)
  return slot * fieldCount
}

/** Ends the write begun by {@link begin}: readers see the sample from now on. */
export const commit = (columns: SampleColumns, slot: number): void => {
  Atomics.add(columns.seq, slot, 1)
}

/** How many times a read is tried while the writer keeps the slot busy before it gives up. */
const readAttempts = 64

/**
 * Copies `slot` into `into` (at least `fieldCount` long) and returns the sequence number of the
 * copy: 0 when the slot was never written, -1 when its writer kept it busy for every attempt
 * (the caller reads it at its next turn).
 */
export const read = (columns: SampleColumns, slot: number, into: Float64Array): number => {
  const { seq, values } = columns
  const offset = slot * fieldCount
  for (let attempt = 0; attempt < readAttempts; attempt++) {
    const before = Atomics.load(seq, slot)
    if ((before & 1) === 1) continue
    if (before === 0) return 0
    for (let i = 0; i < fieldCount; i++) into[i] = values[offset + i]
    if (Atomics.load(seq, slot) === before) return before
  }
  return -1
}

/**
 * Copies `slot` into `into` when a sample was written since `seen[slot]` (the sequence number of
 * the caller's last copy, which it updates); false when nothing new could be read.
 */
export const readChanged = (columns: SampleColumns, slot: number, seen: Int32Array, into: Float64Array): boolean => {
  const now = Atomics.load(columns.seq, slot)
  if (now === seen[slot] || (now & 1) === 1) return false
  const copied = read(columns, slot, into)
  if (copied <= 0) return false
  seen[slot] = copied
  return true
}

/** The slot's sequence number now: it differs from one read earlier exactly when a sample was written since. */
export const version = (columns: SampleColumns, slot: number): number => Atomics.load(columns.seq, slot)

/** Whether a slot's samples are also posted as events: the values of `wants`. */
export const Delivery = {
  /** Written to the columns only: the robot's link runs and needs no word from it. */
  columnsOnly: 0,
  /** The next sample is posted as an event too, then `columnsOnly`. */
  nextAsEvent: 1,
  /** Every sample is posted as an event too: the robot's link is not running. */
  asEvents: 2
} as const

/** Asks `slot`'s writer to post the robot's next sample as an event too. */
export const want = (columns: SampleColumns, slot: number): void => {
  Atomics.store(columns.wants, slot, Delivery.nextAsEvent)
}

/** Says that `slot`'s link stopped: its writer posts every sample as an event until a link wants one. */
export const unlink = (columns: SampleColumns, slot: number): void => {
  Atomics.store(columns.wants, slot, Delivery.asEvents)
}

/** The writer's side of {@link want} and {@link unlink}: whether the sample being written is to be posted too. */
export const takeWanted = (columns: SampleColumns, slot: number): boolean => {
  const delivery = Atomics.load(columns.wants, slot)
  return delivery === Delivery.asEvents ||
    (delivery === Delivery.nextAsEvent &&
      Atomics.compareExchange(columns.wants, slot, Delivery.nextAsEvent, Delivery.columnsOnly) === Delivery.nextAsEvent)
}

/**
 * Which slot each robot has, on the thread that hands them out (the fleet's main thread). A slot
 * is a robot's for the life of the process, so that a sample written just before its link
 * restarted is never read as another robot's. When the store is full, a robot gets no slot and
 * its samples travel as events, as they would without a store.
 */
export interface Directory {
  readonly columns: SampleColumns
  /** The robot's slot, given on first ask; undefined when every slot is taken. */
  readonly assign: (robot: string) => number | undefined
  /** The robot's slot, if it has one. */
  readonly slotOf: (robot: string) => number | undefined
  /** Every robot with a slot. */
  readonly entries: () => IterableIterator<[robot: string, slot: number]>
  /** Robots refused a slot because the store was full. */
  readonly refused: () => number
  /** Calls `listener` with every robot that has a slot now and each one given a slot later, until the returned function is called. */
  readonly watch: (listener: (robot: string, slot: number) => void) => () => void
}

/** A directory of a new store of `capacity` slots. */
export const makeDirectory = (capacity: number): Directory => {
  const columns = make(capacity)
  const slots = new Map<string, number>()
  const listeners = new Set<(robot: string, slot: number) => void>()
  let refused = 0
  return {
    columns,
    assign: (robot) => {
      const known = slots.get(robot)
      if (known !== undefined) return known
      if (slots.size >= capacity) {
        refused++
        return undefined
      }
      const slot = slots.size
      slots.set(robot, slot)
      for (const listener of listeners) listener(robot, slot)
      return slot
    },
    slotOf: (robot) => slots.get(robot),
    entries: () => slots.entries(),
    refused: () => refused,
    watch: (listener) => {
      for (const [robot, slot] of slots) listener(robot, slot)
      listeners.add(listener)
      return () => void listeners.delete(listener)
    }
  }
}
