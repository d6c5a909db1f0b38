/** Latency samples summed up for the benchmarks' JSON. */

/** How many samples, their median, 99th percentile and maximum, in ms rounded to `digits`; zeros when there are none. */
export const summary = (values: ReadonlyArray<number>, digits = 2) => {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number) => Number((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(digits))
  return { samples: sorted.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1) }
}

/** The median of some values (the lower middle one of an even count), `undefined` when there are none. */
export const median = (values: ReadonlyArray<number>): number | undefined => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]
