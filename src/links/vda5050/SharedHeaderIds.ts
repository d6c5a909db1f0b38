/**
 * The `instantActions` headerIds of every AGV of a node in shared memory, so that a second
 * sender on another thread (the fleet's stop channel) continues each AGV's sequence instead of
 * starting its own. One slot per AGV, handed out on first use and kept for the node's life:
 * a counter (`Atomics.add`, wrapping after the uint32 maximum as the specification's ids do),
 * a flag saying whether the AGV's link is running, a flag saying whether an emergency stop
 * latched the AGV (the stop channel's thread sets it as it publishes a stop, so the main
 * thread refuses the AGV's next order even before it hears of that stop), and a flag saying
 * whether the AGV was heard of on the broker while several nodes share the fleet, so that its
 * stop may go straight to the broker whichever node runs its link (`HeardHeaderIds` writes it,
 * and moves the counter past every id heard on the AGV's `instantActions` topic).
 *
 * The table is a `SharedArrayBuffer` plus the slot of each robot; the other thread gets the
 * buffer once and each `(robot, slot)` pair as it is handed out (see {@link SharedHeaderIds.onSlot}).
 *
 * @since 0.1.0
 */
import type { AgvIdentity } from "./Header.js"
import * as HeaderIds from "./HeaderIds.js"

/** What a new slot says to whoever shares the table. */
export interface SlotAssigned {
  readonly robot: string
  readonly manufacturer: string
  readonly serialNumber: string
  readonly slot: number
}

/** One AGV's slot, as its link uses it. */
export interface Slot {
  /** headerId counters whose `instantActions` ids come from the shared counter. */
  readonly ids: HeaderIds.Counters
  /** Marks the link running (its `init`) or not (its `terminate`). */
  readonly setLive: (live: boolean) => void
}

/** The table: the buffer to share, and the slots handed out. */
export interface SharedHeaderIds {
  /** Counters at `[slot]`, live flags at `[capacity + slot]`, latch flags at `[2 × capacity + slot]`, heard flags at `[3 × capacity + slot]`. */
  readonly buffer: SharedArrayBuffer
  readonly capacity: number
  /** Every slot handed out so far. */
  readonly slots: () => ReadonlyArray<SlotAssigned>
  /** The slot of an AGV, handed out on first use; `undefined` once the table is full. */
  readonly slotOf: (identity: AgvIdentity) => Slot | undefined
  /** Whether the AGV's latch flag is set (false for an AGV without a slot). */
  readonly latched: (robot: string) => boolean
  /** Sets or clears the AGV's latch flag, handing out its slot if it has none yet. */
  readonly setLatched: (identity: AgvIdentity, on: boolean) => void
  /** Marks the AGV heard of on the broker (several nodes: its stop may go out without its link here). */
  readonly setHeard: (identity: AgvIdentity) => void
  /** Moves the AGV's `instantActions` counter past `headerId` (heard from another sender); never back. */
  readonly advance: (identity: AgvIdentity, headerId: number) => void
  /** Takes the AGV's next `instantActions` headerId. */
  readonly take: (identity: AgvIdentity) => number
  /** Called with each new slot (one listener: the stop channel). */
  onSlot: ((slot: SlotAssigned) => void) | undefined
}

/** The table's columns, indexed by slot, over its `buffer`: for the other thread, which gets only the buffer. */
export interface Columns {
  readonly counters: Uint32Array
  readonly live: Int32Array
  readonly latches: Int32Array
  readonly heard: Int32Array
}

/** The columns of a table's `buffer` of `capacity` slots. */
export const columns = (buffer: SharedArrayBuffer, capacity: number): Columns => ({
  counters: new Uint32Array(buffer, 0, capacity),
  live: new Int32Array(buffer, capacity * Uint32Array.BYTES_PER_ELEMENT, capacity),
  latches: new Int32Array(buffer, 2 * capacity * Uint32Array.BYTES_PER_ELEMENT, capacity),
  heard: new Int32Array(buffer, 3 * capacity * Uint32Array.BYTES_PER_ELEMENT, capacity)
})

/** Moves counter `slot` past `id`, never back (a compare-and-swap loop: another thread may take ids meanwhile). */
const advanceSlot = (counters: Uint32Array, slot: number, id: number) => {
  const wanted = HeaderIds.after(id)
  for (;;) {
    const next = Atomics.load(counters, slot)
    if (!HeaderIds.isAfter(wanted, next) || Atomics.compareExchange(counters, slot, next, wanted) === next) return
  }
}

/** A table for up to `capacity` AGVs (default 65,536: 1 MB). */
export const make = (capacity = 65_536): SharedHeaderIds => {
  const buffer = new SharedArrayBuffer(capacity * 4 * Uint32Array.BYTES_PER_ELEMENT)
  const { counters, heard, latches, live } = columns(buffer, capacity)
  const assigned = new Map<string, SlotAssigned>()
  const assign = (identity: AgvIdentity): SlotAssigned | undefined => {
    const robot = `${identity.manufacturer}/${identity.serialNumber}`
    let entry = assigned.get(robot)
    if (entry === undefined) {
      if (assigned.size === capacity) return undefined
      entry = { robot, manufacturer: identity.manufacturer, serialNumber: identity.serialNumber, slot: assigned.size }
      assigned.set(robot, entry)
      table.onSlot?.(entry)
    }
    return entry
  }
  const table: SharedHeaderIds = {
    buffer,
    capacity,
    slots: () => [...assigned.values()],
    latched: (robot) => {
      const entry = assigned.get(robot)
      return entry !== undefined && Atomics.load(latches, entry.slot) === 1
    },
    setLatched: (identity, on) => {
      const entry = assign(identity)
      if (entry !== undefined) Atomics.store(latches, entry.slot, on ? 1 : 0)
    },
    setHeard: (identity) => {
      const entry = assign(identity)
      if (entry !== undefined) Atomics.store(heard, entry.slot, 1)
    },
    advance: (identity, headerId) => {
      const entry = assign(identity)
      if (entry !== undefined) advanceSlot(counters, entry.slot, headerId)
    },
    take: (identity) => {
      const entry = assign(identity)
      return entry === undefined ? 0 : Atomics.add(counters, entry.slot, 1)
    },
    slotOf: (identity) => {
      const entry = assign(identity)
      if (entry === undefined) return undefined
      const slot = entry.slot
      const local = HeaderIds.unsafeMake()
      return {
        ids: {
          next: (topic) => (topic === "instantActions" ? Atomics.add(counters, slot, 1) : local.next(topic)),
          advance: (topic, id) => (topic === "instantActions" ? advanceSlot(counters, slot, id) : local.advance(topic, id))
        },
        setLive: (on) => void Atomics.store(live, slot, on ? 1 : 0)
      }
    },
    onSlot: undefined
  }
  return table
}
