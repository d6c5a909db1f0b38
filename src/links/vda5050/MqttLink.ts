/**
 * The fleet's connection to the MQTT broker (`fleet/mqtt`): one actor that owns an mqtt.js
 * client in its scope, subscribes to every AGV under a prefix (`uagv/v2/+/+/#` by default),
 * and routes what arrives to the AGV links.
 *
 * - Every message is checked before anything else sees it: the topic must be a VDA 5050
 *   topic under the prefix, the payload must decode with the message schema of its topic.
 *   An invalid one is counted (by topic) and logged with the reason, and goes no further; it
 *   never crashes a link. With `ingestThread`, the subscription and these checks run on a
 *   thread of their own (`IngestThread`, a second connection) and this actor routes what they
 *   pass, a batch at a time.
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
import * as Inbound from "./Inbound.js"
import * as IngestThread from "./IngestThread.js"
import type * as MessageCodec from "./MessageCodec.js"
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
  /**
   * Parse and check incoming messages on a thread of their own (`IngestThread`), with a second
   * connection, instead of on this actor's thread. Default false.
   */
  readonly ingestThread?: boolean | undefined
  /** Starts the link of a newly seen AGV, registered under {@link agvKey}. */
  readonly startAgv: (
    identity: AgvIdentity,
    outbox: AgvLink.Outbox
  ) => Effect.Effect<ActorRef<AgvLink.AgvLinkMessage>, unknown>
}

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
  /** Messages the ingest thread dropped because the main thread was too far behind (0 without one). */
  readonly ingestDropped: number
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
class Checked {
  readonly _tag = "Checked"
  constructor(readonly items: ReadonlyArray<Inbound.Checked>) {}
}
class IngestStarted {
  readonly _tag = "IngestStarted"
  constructor(readonly thread: IngestThread.IngestThread) {}
}
class Discovered {
  readonly _tag = "Discovered"
  constructor(readonly key: string, readonly exit: Exit.Exit<ActorRef<AgvLink.AgvLinkMessage>, unknown>) {}
}
class Failed {
  readonly _tag = "Failed"
  constructor(readonly error: MqttConnection.MqttError | IngestThread.IngestThreadFailed) {}
}

/** What the broker connection accepts. The messages other than `Publish` and `GetStats` are its own. */
export type MqttLinkMessage = Publish | GetStats | Connected | Incoming | Checked | IngestStarted | Discovered | Failed

/** A `GetStats` message for `ask`. */
export const getStats = (reply: Reply<MqttLinkStats>): MqttLinkMessage => ({ _tag: "GetStats", reply })

interface State {
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>
  connection: MqttConnection.MqttConnection | undefined
  ingest: IngestThread.IngestThread | undefined
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
      const clientId = options.clientId ?? `fleetvisor-${randomBytes(4).toString("hex")}`
      const subscribeHere = options.ingestThread !== true
      const connection = yield* Scope.extend(
        MqttConnection.connect({
          url: options.url,
          clientId,
          onMessage: (topic, payload) => self.unsafeTell(new Incoming(topic, payload))
        }),
        scope
      )
      if (subscribeHere) yield* connection.subscribe([filter], 0)
      else {
        const thread = yield* Scope.extend(
          IngestThread.start({
            url: options.url,
            prefix,
            clientId: `${clientId}-ingest`,
            onBatch: (items) => self.unsafeTell(new Checked(items)),
            onFailure: (failure) => self.unsafeTellUrgent(new Failed(failure))
          }),
          scope
        )
        self.unsafeTellUrgent(new IngestStarted(thread))
      }
      self.unsafeTellUrgent(new Connected(connection))
      // Forked into the scope after the connection, so it stops before the connection closes.
      yield* Effect.forkIn(
        Effect.forever(
          Effect.flatMap(Queue.take(connection.events), (event) =>
            event._tag === "Connected"
              ? subscribeHere ? Effect.ignore(connection.subscribe([filter], 0)) : Effect.void
              : event._tag === "Disconnected"
              ? Effect.logWarning(`MQTT connection to ${options.url} lost; mqtt.js reconnects`)
              : Effect.void)
        ),
        scope
      )
    }).pipe(Effect.catchAll((error) => Effect.sync(() => self.unsafeTellUrgent(new Failed(error)))))

  const check = Inbound.makeChecker(prefix)

  const refuse = (state: State, { countedAs, reason, topic }: Inbound.Invalid) => {
    state.invalid++
    state.invalidByTopic[countedAs] = (state.invalidByTopic[countedAs] ?? 0) + 1
    state.lastInvalid = { topic, reason }
    return Effect.as(Effect.logWarning(`invalid VDA 5050 message on ${topic}: ${reason}`), state)
  }

  /** Hands a valid message to its AGV's link, holding it while the link starts, and starting it on a first message. */
  const route = (state: State, self: ActorRef<MqttLinkMessage>, { identity, message, topic }: Inbound.Valid): State => {
    const key = agvKey(identity)
    const received = new AgvLink.Received(topic, message)
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
    if (topic === "connection" && (message as MessageCodec.MessageOf<"connection">).connectionState !== "ONLINE") {
      return state
    }
    state.starting.set(key, [received])
    state.run(
      Effect.tap(Effect.exit(options.startAgv(identity, outboxOf(self, identity))), (exit) =>
        self.unsafeTellUrgent(new Discovered(key, exit)))
    )
    return state
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
          ingest: undefined,
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
          const checked = check(message.topic, message.payload)
          if (checked === undefined) return state
          state.received++
          return checked._tag === "Valid" ? route(state, ctx.self, checked) : refuse(state, checked)
        }
        case "Checked": {
          const refusals: Array<Effect.Effect<State>> = []
          for (const checked of message.items) {
            state.received++
            if (checked!._tag === "Valid") route(state, ctx.self, checked!)
            else refusals.push(refuse(state, checked!))
          }
          state.ingest?.taken(message.items.length)
          return refusals.length === 0 ? state : Effect.as(Effect.all(refusals, { discard: true }), state)
        }
        case "IngestStarted":
          state.ingest = message.thread
          return state
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
            publishFailed: state.publishFailed,
            ingestDropped: state.ingest?.dropped() ?? 0
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
