/**
 * A stand-in for master control in tests: subscribes to everything under a fresh topic prefix,
 * keeps every message (decoded, or with its decoding error), waits for the one a test expects,
 * and sends orders and instant actions. When its scope closes it clears the retained
 * `connection` and `factsheet` messages it has seen, so the shared broker stays clean.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { randomBytes } from "node:crypto"
import * as MqttConnection from "../../../../src/links/mqtt/MqttConnection.js"
import * as Header from "../../../../src/links/vda5050/Header.js"
import * as HeaderIds from "../../../../src/links/vda5050/HeaderIds.js"
import * as MessageCodec from "../../../../src/links/vda5050/MessageCodec.js"
import * as Topic from "../../../../src/links/vda5050/Topic.js"

/** The real Mosquitto the tests run against: the run's own (`test/support/globalSetup.ts`), else the machine's on 1883. */
export const MOSQUITTO_URL = process.env.FLEETVISOR_TEST_MQTT_URL ?? "mqtt://127.0.0.1:1883"

/** A topic prefix no other test uses. */
export const uniquePrefix = () => `test-${randomBytes(4).toString("hex")}/v2`

/** One message the probe received, in arrival order. */
export interface Received {
  readonly index: number
  readonly topic: Topic.AgvTopic
  readonly raw: string
  readonly decoded: Either.Either<unknown, MessageCodec.MessageDecodeError>
}

/** A message of topic `T` the probe waited for, and where it sits in the log. */
export interface Found<T extends Topic.TopicName> {
  readonly index: number
  readonly message: MessageCodec.MessageOf<T>
}

/** Master control, for tests. */
export interface FleetProbe {
  readonly prefix: string
  /** Everything received so far, in order. */
  readonly log: ReadonlyArray<Received>
  /** Waits (10 s at most) for a message from `serialNumber` on `topic` matching `predicate`, at log index `from` or later. */
  readonly waitFor: <T extends Topic.TopicName>(
    serialNumber: string,
    topic: T,
    predicate?: (message: MessageCodec.MessageOf<T>) => boolean,
    from?: number
  ) => Effect.Effect<Found<T>>
  /** Waits for a message from `serialNumber` on `topic` that failed to decode. */
  readonly waitForInvalid: (serialNumber: string, topic: Topic.TopicName) => Effect.Effect<MessageCodec.MessageDecodeError>
  /** Sends an order or instant actions to `agv`, stamped with the probe's own headerIds. */
  readonly send: <T extends "order" | "instantActions">(
    agv: Header.AgvIdentity,
    topic: T,
    body: Omit<MessageCodec.MessageOf<T>, keyof Header.Header>
  ) => Effect.Effect<void>
}

const poll = <A>(find: () => A | undefined, what: () => string): Effect.Effect<A> =>
  Effect.suspend(() => {
    const found = find()
    return found === undefined ? Effect.fail("not yet" as const) : Effect.succeed(found)
  }).pipe(
    Effect.retry(Schedule.spaced("20 millis")),
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => what() }),
    Effect.orDieWith((message) => new Error(`timed out waiting for ${message}`))
  )

/** Connects a probe to `url`, subscribed to every AGV under `prefix`. */
export const make = (url: string, prefix: string): Effect.Effect<FleetProbe, MqttConnection.MqttError, Scope.Scope> =>
  Effect.gen(function* () {
    const log: Array<Received> = []
    const connection = yield* MqttConnection.connect({ url, clientId: `probe-${randomBytes(4).toString("hex")}` })
    const retained = () =>
      new Set(log.filter((r) => Topic.delivery[r.topic.topic].retain).map((r) => Topic.format(r.topic, prefix)))
    yield* Effect.addFinalizer(() =>
      Effect.forEach(retained(), (topic) => connection.publish(topic, "", { qos: 1, retain: true }), { discard: true }).pipe(
        Effect.ignore
      )
    )
    yield* connection.subscribe([Topic.subscriptionFilter(prefix)], 0)
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.map(Queue.take(connection.events), (event) => {
          if (event._tag !== "Message" || event.payload.byteLength === 0) return
          const topic = Topic.parse(event.topic, prefix)
          if (Either.isLeft(topic)) return
          log.push({
            index: log.length,
            topic: topic.right,
            raw: Buffer.from(event.payload).toString("utf8"),
            decoded: MessageCodec.decode(topic.right.topic, event.payload)
          })
        })
      )
    )
    const ids = yield* HeaderIds.make
    const from = (serialNumber: string, topic: Topic.TopicName, start: number) =>
      log.slice(start).filter((r) => r.topic.serialNumber === serialNumber && r.topic.topic === topic)

    return {
      prefix,
      log,
      waitFor: (serialNumber, topic, predicate = () => true, start = 0) =>
        poll(
          () => {
            const hit = from(serialNumber, topic, start).find(
              (r) => Either.isRight(r.decoded) && predicate(r.decoded.right as never)
            )
            return hit && { index: hit.index, message: (hit.decoded as Either.Right<never, never>).right }
          },
          () => `a matching ${topic} message from ${serialNumber} (${from(serialNumber, topic, start).length} others seen)`
        ),
      waitForInvalid: (serialNumber, topic) =>
        poll(
          () => from(serialNumber, topic, 0).flatMap((r) => (Either.isLeft(r.decoded) ? [r.decoded.left] : []))[0],
          () => `an invalid ${topic} message from ${serialNumber}`
        ),
      send: (agv, topic, body) =>
        Effect.gen(function* () {
          const header = Header.make(agv, yield* ids.next(topic), Date.now())
          const payload = yield* MessageCodec.encode(topic, { ...header, ...body } as MessageCodec.MessageOf<typeof topic>)
          yield* connection.publish(Topic.format({ ...agv, topic }, prefix), payload, Topic.delivery[topic])
        }).pipe(Effect.orDie)
    } satisfies FleetProbe
  })
