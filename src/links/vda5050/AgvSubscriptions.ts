/**
 * The AGVs one broker connection hears by name: for each, a subscription to its `state`,
 * `visualization` and `factsheet` topics, instead of the whole prefix. With several nodes
 * (issue #16: no shared subscriptions) each node subscribes to the AGVs it runs, and with several
 * ingest threads each thread to its own; the `connection` and `instantActions` topics of every
 * AGV ({@link sharedFilters}: small, rare, and what discovery and the headerIds of stops from other
 * nodes need) are heard once, on the fleet's own connection.
 *
 * An AGV added before a connection is attached is subscribed once one is; `add` calls back once
 * the broker acknowledged its subscription (SUBACK), so a link may wait until it can hear its AGV.
 * mqtt.js subscribes again by itself after a reconnect.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as MqttConnection from "../mqtt/MqttConnection.js"
import type { TopicName } from "./Topic.js"

/** The topics of an AGV subscribed by name: what its link and the sample columns consume from it, besides `connection`. */
export const byNameTopics: ReadonlyArray<TopicName> = ["state", "visualization", "factsheet"]

/** The filters heard for every AGV when the others are subscribed by name: discovery (`connection`) and stops from any sender (`instantActions`). */
export const sharedFilters = (prefix: string): ReadonlyArray<string> => [`${prefix}/+/+/connection`, `${prefix}/+/+/instantActions`]

/** The filters of one AGV (`<manufacturer>/<serialNumber>`) subscribed by name. */
export const filtersOf = (prefix: string, robot: string): ReadonlyArray<string> => byNameTopics.map((topic) => `${prefix}/${robot}/${topic}`)

/** The set; see the module documentation. */
export interface AgvSubscriptions {
  /** Subscribes `robot`'s topics (now, or once a connection is attached); `onAck` once the broker acknowledged them. */
  readonly add: (robot: string, onAck?: () => void) => void
  /** Ends `robot`'s subscriptions; whoever waits for its acknowledgement is called back at once. */
  readonly remove: (robot: string) => void
  /** The connection to subscribe on; every AGV added so far is subscribed there. */
  readonly attach: (connection: MqttConnection.MqttConnection) => void
  /** Whether `robot` is in the set. */
  readonly has: (robot: string) => boolean
  /** The AGVs in the set. */
  readonly robots: () => Iterable<string>
}

/** At most this many AGVs in one SUBSCRIBE when a connection is attached. */
const perPacket = 200

/**
 * An empty set for AGVs under `prefix`; `run` forks the subscriptions' effects, `onError` hears
 * of a (un)subscription the broker or the connection refused.
 */
export const make = (
  prefix: string,
  run: (effect: Effect.Effect<void>) => void,
  onError: (robots: ReadonlyArray<string>, error: MqttConnection.MqttError) => void
): AgvSubscriptions => {
  /** Each AGV, whether its subscription was acknowledged, and who waits for that. */
  const entries = new Map<string, { acked: boolean; readonly waiting: Array<() => void> }>()
  let connection: MqttConnection.MqttConnection | undefined

  const subscribe = (conn: MqttConnection.MqttConnection, robots: ReadonlyArray<string>) =>
    run(conn.subscribe(robots.flatMap((robot) => filtersOf(prefix, robot)), 0).pipe(
      Effect.match({
        onFailure: (error) => onError(robots, error),
        onSuccess: () => {
          for (const robot of robots) {
            const entry = entries.get(robot)
            if (entry === undefined || conn !== connection) continue
            entry.acked = true
            for (const wake of entry.waiting.splice(0)) wake()
          }
        }
      })
    ))

  return {
    add: (robot, onAck) => {
      const entry = entries.get(robot)
      if (entry?.acked === true) return onAck?.()
      if (entry !== undefined) return void (onAck !== undefined && entry.waiting.push(onAck))
      entries.set(robot, { acked: false, waiting: onAck === undefined ? [] : [onAck] })
      if (connection !== undefined) subscribe(connection, [robot])
    },
    remove: (robot) => {
      const entry = entries.get(robot)
      if (entry === undefined) return
      entries.delete(robot)
      for (const wake of entry.waiting.splice(0)) wake()
      const conn = connection
      if (conn !== undefined) {
        run(Effect.catchAll(conn.unsubscribe(filtersOf(prefix, robot)), (error) => Effect.sync(() => onError([robot], error))))
      }
    },
    attach: (conn) => {
      connection = conn
      const robots = [...entries.keys()]
      for (const entry of entries.values()) entry.acked = false
      for (let i = 0; i < robots.length; i += perPacket) subscribe(conn, robots.slice(i, i + perPacket))
    },
    has: (robot) => entries.has(robot),
    robots: () => entries.keys()
  }
}
