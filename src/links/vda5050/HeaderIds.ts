/**
 * headerId counters: one per topic, for one sender and one AGV. Each message on a topic carries
 * the next id (+1 per message, starting at 0, wrapping after the uint32 maximum).
 */
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import type { TopicName } from "./Topic.js"

/** Counters handing out the next headerId of each topic. */
export interface HeaderIds {
  /** The id for the next message on `topic`. */
  readonly next: (topic: TopicName) => Effect.Effect<number>
}

const UINT32_MAX = 0xffff_ffff

/** Fresh counters: the first message on every topic gets headerId 0. */
export const make: Effect.Effect<HeaderIds> = Effect.map(
  Ref.make<Partial<Record<TopicName, number>>>({}),
  (counters) => ({
    next: (topic) =>
      Ref.modify(counters, (ids) => {
        const id = ids[topic] ?? 0
        return [id, { ...ids, [topic]: id === UINT32_MAX ? 0 : id + 1 }]
      })
  })
)

/**
 * Whether headerId `a` comes after `b` on a topic, on the uint32 circle the ids wrap around:
 * `a` is at most half the circle ahead of `b`.
 */
export const isAfter = (a: number, b: number): boolean => a !== b && ((a - b) >>> 0) < 0x8000_0000

/** The id after `id`, wrapping after the uint32 maximum. */
export const after = (id: number): number => (id === UINT32_MAX ? 0 : id + 1)

/** Counters an actor owns, handing out ids synchronously. */
export interface Counters {
  /** The id for the next message on `topic`. */
  readonly next: (topic: TopicName) => number
  /**
   * Another sender used `id` on `topic` (heard on the broker): the next id handed out comes
   * after it, so the AGV sees one increasing sequence whoever sends.
   */
  readonly advance: (topic: TopicName, id: number) => void
}

/** Fresh synchronous counters: the first message on every topic gets headerId 0. */
export const unsafeMake = (): Counters => {
  const ids: Partial<Record<TopicName, number>> = {}
  return {
    next: (topic) => {
      const id = ids[topic] ?? 0
      ids[topic] = after(id)
      return id
    },
    advance: (topic, id) => {
      const next = ids[topic]
      if (next === undefined || isAfter(after(id), next)) ids[topic] = after(id)
    }
  }
}
