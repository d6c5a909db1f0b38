/** Slots of the ingest thread's shared `Int32Array` of counters. */
export const Counter = {
  /** Messages posted to the main thread and not yet taken. */
  inFlight: 0,
  /** Messages dropped because `maxInFlight` were in flight. */
  dropped: 1
} as const

/** How many slots the counters have. */
export const size = 2
