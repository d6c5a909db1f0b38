/**
 * The fleet's connection to the MQTT broker (`fleet/mqtt`): one actor that owns an mqtt.js
 * client in its scope, subscribes to every AGV under a prefix (`uagv/v2/+/+/#` by default),
 * and routes what arrives to the AGV links.
 *
 * - Every message is checked before anything else sees it: the topic must be a VDA 5050
 *   topic under the prefix, the payload must decode with the message schema of its topic.
 *   An invalid one is counted (by topic) and logged with the reason, and goes no further; it
 *   never crashes a link.
 * - Discovery: the first valid message of an AGV that has no link starts one, through the
 *   `startAgv` function the fleet gives (which names it `agv:<manufacturer>/<serialNumber>`
 *   under `fleet/links`). Messages arriving while it starts are held and then delivered in
 *   order. A retained OFFLINE or CONNECTIONBROKEN of an AGV nobody knows starts nothing.
 * - Outbound: AGV links hand their messages to this actor's outbox; it publishes them with
 *   the QoS and retain flag of the specification's table. An emergency stop's message uses
 *   the urgent lane and overtakes whatever is queued.
 *
 * The connection is opened after `init`, so the actor starts even while the broker is down;
 * mqtt.js then reconnects by itself. A first connect that fails fails the actor, and its
 * supervisor retries.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import { randomBytes } from "node:crypto"
import * as Actor from "../../actors/Actor.js"
import type { ActorRef, Reply } from "../../actors/ActorRef.js"
import * as Registry from "../../actors/Registry.js"
import * as MqttConnection from "../mqtt/MqttConnection.js"
import * as AgvLink from "./AgvLink.js"
import type { AgvIdentity } from "./Header.js"
import * as MessageCodec from "./MessageCodec.js"
import * as Topic from "./Topic.js"

/** Options of the fleet's broker connection. */
export interface MqttLinkOptions {
  /** e.g. `mqtt://127.0.0.1:1883`. */
  readonly url: string
  /** `interfaceName/majorVersion`; default `uagv/v2`. */
  readonly prefix?: string | undefined
  /** Default: `fleetvisor-<random>`, unique on the broker. */
  readonly clientId?: string | undefined
  /** Where AGV links are registered (`agv:<manufacturer>/<serialNumber>`). */
  readonly registry: Registry.Registry<string, any>
  /** Starts the link of a newly seen AGV, registered under {@link agvKey}. */
  readonly startAgv: (
    identity: AgvIdentity,
    outbox: AgvLink.Outbox
  ) => Effect.Effect<ActorRef<AgvLink.AgvLinkMessage>, unknown>
}

const maxCachedTopics = 100_000

/** The registry key of an AGV's link. */
export const agvKey = (identity: AgvIdentity): string => `agv:${AgvLink.robotId(identity)}`

/** Counters of the broker connection. */
export interface MqttLinkStats {
  readonly connected: boolean
  /** Messages received under the prefix. */
  readonly received: number
  /** Messages refused: a topic that is not VDA 5050, or a payload its schema refuses. */
  readonly invalid: number
  /** Refusals by topic name (`state`, …, or `topic` for a topic that did not parse). */
  readonly invalidByTopic: Readonly<Record<string, number>>
  /** The last refusal, for the operator. */
  readonly lastInvalid: { readonly topic: string; readonly reason: string } | undefined
  /** AGV links started on a first message. */
  readonly discovered: number
  readonly published: number
  /** Messages that could not be published (no connection, or the publish failed). */
  readonly publishFailed: number
}

/** Publishes a message of an AGV link. */
export class Publish {
  readonly _tag = "Publish"
  constructor(readonly topic: string, readonly payload: string, readonly delivery: Topic.Delivery) {}
}

/** Asks for {@link MqttLinkStats}. */
export interface GetStats {
  readonly _tag: "GetStats"
  readonly reply: Reply<MqttLinkStats>
}

class Connected {
  readonly _tag = "Connected"
  constructor(readonly connection: MqttConnection.MqttConnection) {}
}
class Incoming {
  readonly _tag = "Incoming"
  constructor(readonly topic: string, readonly payload: Uint8Array) {}
}
class Discovered {
  readonly _tag = "Discovered"
  constructor(readonly key: string, readonly exit: Exit.Exit<ActorRef<AgvLink.AgvLinkMessage>, unknown>) {}
}
class Failed {
  readonly _tag = "Failed"
  constructor(readonly error: MqttConnection.MqttError) {}
}

/** What the broker connection accepts. `Connected`, `Incoming`, `Discovered` and `Failed` are its own. */
export type MqttLinkMessage = Publish | GetStats | Connected | Incoming | Discovered | Failed

/** A `GetStats` message for `ask`. */
export const getStats = (reply: Reply<MqttLinkStats>): MqttLinkMessage => ({ _tag: "GetStats", reply })

interface State {
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>
  connection: MqttConnection.MqttConnection | undefined
  /** Messages of AGVs whose link is starting. */
  readonly starting: Map<string, Array<AgvLink.Received>>
  received: number
  invalid: number
  readonly invalidByTopic: Record<string, number>
  lastInvalid: { readonly topic: string; readonly reason: string } | undefined
  discovered: number
  published: number
  publishFailed: number
}

/** The behaviour of the fleet's broker connection; see the module documentation. */
export const make = (options: MqttLinkOptions): Actor.Behaviour<MqttLinkMessage, State> => {
  const prefix = options.prefix ?? Topic.DEFAULT_PREFIX
  const filter = Topic.subscriptionFilter(prefix)

  const session = (self: ActorRef<MqttLinkMessage>, scope: Scope.Scope) =>
    Effect.gen(function*() {
      const connection = yield* Scope.extend(
        MqttConnection.connect({
          url: options.url,
          clientId: options.clientId ?? `fleetvisor-${randomBytes(4).toString("hex")}`,
          onMessage: (topic, payload) => self.unsafeTell(new Incoming(topic, payload))
        }),
        scope
      )
      yield* connection.subscribe([filter], 0)
      self.unsafeTellUrgent(new Connected(connection))
      // Forked into the scope after the connection, so it stops before the connection closes.
      yield* Effect.forkIn(
        Effect.forever(
          Effect.flatMap(Queue.take(connection.events), (event) =>
            event._tag === "Connected"
              ? Effect.ignore(connection.subscribe([filter], 0))
              : event._tag === "Disconnected"
              ? Effect.logWarning(`MQTT connection to ${options.url} lost; mqtt.js reconnects`)
              : Effect.void)
        ),
        scope
      )
    }).pipe(Effect.catchAll((error) => Effect.sync(() => self.unsafeTellUrgent(new Failed(error)))))

  // A fleet has a few topics per AGV, and each arrives many times a second: each is parsed once.
  const topics = new Map<string, { readonly identity: AgvIdentity; readonly key: string; readonly topic: Topic.TopicName }>()
  const parseTopic = (name: string) => {
    const known = topics.get(name)
    if (known !== undefined) return Either.right(known)
    return Either.map(Topic.parse(name, prefix), ({ topic, ...identity }) => {
      if (topics.size >= maxCachedTopics) topics.clear()
      const parsed = { identity, key: agvKey(identity), topic }
      topics.set(name, parsed)
      return parsed
    })
  }

  const refuse = (state: State, topic: string, topicName: string, reason: string) => {
    state.invalid++
    state.invalidByTopic[topicName] = (state.invalidByTopic[topicName] ?? 0) + 1
    state.lastInvalid = { topic, reason }
    return Effect.as(Effect.logWarning(`invalid VDA 5050 message on ${topic}: ${reason}`), state)
  }

  const outboxOf = (self: ActorRef<MqttLinkMessage>, identity: AgvIdentity): AgvLink.Outbox => ({
    send: (topic, payload, urgent) => {
      const message = new Publish(Topic.format({ ...identity, topic }, prefix), payload, Topic.delivery[topic])
      if (urgent) self.unsafeTellUrgent(message)
      else self.unsafeTell(message)
    }
  })

  return Actor.make<MqttLinkMessage, State>({
    name: "mqtt_link",
    init: (ctx) =>
      Effect.map(FiberSet.makeRuntime<never, unknown, unknown>(), (run) => {
        run(session(ctx.self, ctx.scope))
        return {
          run,
          connection: undefined,
          starting: new Map(),
          received: 0,
          invalid: 0,
          invalidByTopic: {},
          lastInvalid: undefined,
          discovered: 0,
          published: 0,
          publishFailed: 0
        }
      }),
    receive: (state, message, ctx) => {
      switch (message._tag) {
        case "Incoming": {
          if (message.payload.byteLength === 0) return state // a retained message being cleared
          state.received++
          const parsed = parseTopic(message.topic)
          if (Either.isLeft(parsed)) return refuse(state, message.topic, "topic", parsed.left.reason)
          const { identity, key, topic } = parsed.right
          const decoded = MessageCodec.decode(topic, message.payload)
          if (Either.isLeft(decoded)) {
            const reason = decoded.left.issues.map((issue) => `${issue.path || "(root)"}: ${issue.message}`).join("; ")
            return refuse(state, message.topic, topic, `${decoded.left.schema}: ${reason}`)
          }
          const received = new AgvLink.Received(topic, decoded.right)
          const link = Registry.unsafeLookup(options.registry, key)[0]
          if (link !== undefined) {
            link.ref.unsafeTell(received)
            return state
          }
          const held = state.starting.get(key)
          if (held !== undefined) {
            held.push(received)
            return state
          }
          if (topic === "connection" && (decoded.right as MessageCodec.MessageOf<"connection">).connectionState !== "ONLINE") {
            return state
          }
          state.starting.set(key, [received])
          const self = ctx.self
          state.run(
            Effect.tap(Effect.exit(options.startAgv(identity, outboxOf(self, identity))), (exit) =>
              self.unsafeTellUrgent(new Discovered(key, exit)))
          )
          return state
        }
        case "Discovered": {
          const held = state.starting.get(message.key) ?? []
          state.starting.delete(message.key)
          if (message.exit._tag === "Failure") {
            return Effect.as(Effect.logWarning(`could not start the link of ${message.key}`, message.exit.cause), state)
          }
          state.discovered++
          for (const received of held) message.exit.value.unsafeTell(received)
          return state
        }
        case "Publish": {
          const connection = state.connection
          if (connection === undefined) {
            state.publishFailed++
            return state
          }
          state.published++
          state.run(
            connection.publish(message.topic, message.payload, message.delivery).pipe(
              Effect.catchAll((error) =>
                Effect.zipRight(
                  Effect.sync(() => state.publishFailed++),
                  Effect.logWarning(`could not publish to ${message.topic}: ${error.message}`)
                )
              )
            )
          )
          return state
        }
        case "GetStats":
          message.reply.succeed({
            connected: state.connection !== undefined,
            received: state.received,
            invalid: state.invalid,
            invalidByTopic: { ...state.invalidByTopic },
            lastInvalid: state.lastInvalid,
            discovered: state.discovered,
            published: state.published,
            publishFailed: state.publishFailed
          })
          return state
        case "Connected":
          state.connection = message.connection
          return state
        case "Failed":
          return Effect.fail(message.error)
      }
    }
  })
}
