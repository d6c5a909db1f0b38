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

/** Counters an actor owns, handing out ids synchronously. */
export interface Counters {
  /** The id for the next message on `topic`. */
  readonly next: (topic: TopicName) => number
}

/** Fresh synchronous counters: the first message on every topic gets headerId 0. */
export const unsafeMake = (): Counters => {
  const ids: Partial<Record<TopicName, number>> = {}
  return {
    next: (topic) => {
      const id = ids[topic] ?? 0
      ids[topic] = id === UINT32_MAX ? 0 : id + 1
      return id
    }
  }
}
