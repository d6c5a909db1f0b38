/** Slots of the ingest thread's shared `Int32Array` of counters. */
export const Counter = {
  /** Messages posted to the main thread and not yet taken. */
  inFlight: 0,
  /** Messages dropped because `maxInFlight` were in flight. */
  dropped: 1,
  /** Valid messages written to the sample columns and not posted (samples of AGVs whose link runs). */
  sampled: 2,
  /** Samples whose headerId did not follow the AGV's previous one. */
  gaps: 3
} as const

/** How many slots the counters have. */
export const size = 4
