/**
 * The duplicate-owner watchdog of the cluster's chaos tests: while it runs it reads every
 * reachable node's actor tree at once, every `intervalMs`, and records each robot whose link
 * runs on two nodes in one sample. Nodes the test says are down or paused are not asked (a paused
 * node answers nothing, and runs nothing while paused); a node that does not answer in time is
 * counted as a miss, never as an overlap.
 */
import { type NamedNode, placementOf, sleep } from "./Cluster.js"

/** One sample in which a robot's link ran on several nodes. */
export interface Duplicate {
  /** ms since the watchdog started. */
  readonly at: number
  readonly link: string
  readonly nodes: ReadonlyArray<string>
  /** What the test was doing then (its last `mark`), and for how long, ms. */
  readonly during: string
  readonly sinceMark: number
}

export interface Watchdog {
  readonly duplicates: ReadonlyArray<Duplicate>
  /** Samples in which every asked node answered. */
  readonly samples: () => number
  /** Samples dropped because a node did not answer within the timeout. */
  readonly misses: () => number
  /** Names what the test does from now on, for the report of a duplicate. */
  readonly mark: (during: string) => void
  readonly stop: () => Promise<void>
}

/** Starts sampling `nodes()` (the nodes to ask now) until `stop`. */
export const startWatchdog = (
  nodes: () => ReadonlyArray<NamedNode>,
  options: { readonly intervalMs?: number; readonly timeoutMs?: number } = {}
): Watchdog => {
  const intervalMs = options.intervalMs ?? 75
  const timeoutMs = options.timeoutMs ?? 1_500
  const startedAt = Date.now()
  const duplicates: Array<Duplicate> = []
  let samples = 0
  let misses = 0
  let during = "start"
  let markedAt = startedAt
  let running = true
  const loop = (async () => {
    while (running) {
      const asked = nodes()
      const markAtStart = during
      const sentAt = Date.now()
      try {
        const placement = await placementOf(asked, timeoutMs)
        samples++
        for (const [link, on] of placement) {
          if (on.length > 1) duplicates.push({ at: sentAt - startedAt, link, nodes: on, during: markAtStart, sinceMark: sentAt - markedAt })
        }
      } catch {
        misses++
      }
      await sleep(intervalMs)
    }
  })()
  return {
    duplicates,
    samples: () => samples,
    misses: () => misses,
    mark: (next) => {
      during = next
      markedAt = Date.now()
    },
    stop: async () => {
      running = false
      await loop
    }
  }
}
