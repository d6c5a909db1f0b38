/**
 * The fleet's connection to the MQTT broker (`fleet/mqtt`): one actor that owns an mqtt.js
 * client in its scope, subscribes to every AGV under a prefix (`uagv/v2/+/+/#` by default; by
 * name with a placement or several ingest threads, below), and routes what arrives to the AGV
 * links.
 *
 * - Every message is checked before anything else sees it: the topic must be a VDA 5050
 *   topic under the prefix, the payload must decode with the message schema of its topic
 *   (and pass the official schema of its version, with `officialSchemas`: see `Inbound`).
 *   An invalid one is counted (by topic) and logged with the reason, and goes no further; it
 *   never crashes a link. With `ingestThread`, the subscription and these checks run on a
 *   thread of their own (`IngestThread`, a second connection) and this actor routes what they
 *   pass, a batch at a time.
 * - Discovery: the first valid message of an AGV that has no link starts one, through the
 *   `startAgv` function the fleet gives (which names it `agv:<manufacturer>/<serialNumber>`
 *   under `fleet/links`). Messages arriving while it starts are held and then delivered in
 *   order. A retained OFFLINE or CONNECTIONBROKEN of an AGV nobody knows starts nothing.
 * - Admission ({@link Admission}): an AGV is admitted, not just accepted. Its manufacturer must
 *   be on the allow-list (when there is one), its manufacturer and serial number at most
 *   {@link maxNameLength} characters, the AGV links must be fewer than `maxAgvs`, and an AGV the
 *   fleet does not know yet (`known`: its roster, its latches) takes a token of the discovery
 *   rate (`perSecond`, a bucket of one second's worth). A known AGV never waits for the rate: after
 *   a restart of `links`, every retained `connection` of a known AGV is admitted at once; a
 *   latched one (`always`) is admitted whatever the cap and the rate. A refused message is
 *   dropped (before its payload is decoded, when the refusal does not depend on it: a flood
 *   costs a topic parse per message), counted by reason (`cap`, `rate`, `manufacturer`, `name`)
 *   and logged sampled (one line per reason per 10 s, then a count); the AGV's next message
 *   asks again.
 * - Placement (`placement`, when several nodes share the fleet): an AGV's link runs only on the
 *   node that owns it, and only that node hears the AGV's `state`, `visualization` and
 *   `factsheet`: they are subscribed by name (`AgvSubscriptions`) when the node is given the AGV
 *   (on the ingest thread with `ingestThread`, else on this actor's connection) and unsubscribed
 *   when it loses it; the link starts once the broker acknowledged them. Every node hears every
 *   AGV's `connection` (retained: a node that starts late learns of the AGVs already there) and
 *   `instantActions`. A message of an AGV this node does not own is dropped and counted
 *   ({@link MqttLinkStats.notOwned}); the first one (once admitted) makes the node manage the AGV,
 *   so that it may be given it. An AGV given to this node gets its link at once, without waiting
 *   for its next message or the discovery rate; an AGV taken away has its link stopped at once
 *   (`stopAgv`).
 * - Logs never carry a whole topic or payload: excerpts of 200 characters, and the repeated
 *   warnings (invalid messages, refusals, failed publishes) sampled ({@link LogSampler}).
 * - Samples bypass the actors: with the fleet's sample columns (`samples`), each AGV gets a slot
 *   when its link starts, and its `visualization`s are written there by whichever thread parsed
 *   them (the ingest thread, or this actor), not routed to its link; a link asks for one as a
 *   message when it needs to hear its AGV (`SampleColumns.want`), and a stopped link's slot has
 *   every sample routed again, so the AGV's next word starts a link. A headerId that does not
 *   follow the AGV's previous one is counted as a gap ({@link MqttLinkStats.gaps}).
 * - Outbound: AGV links hand their messages to this actor's outbox; it publishes them with
 *   the QoS and retain flag of the specification's table. An emergency stop's message uses
 *   the urgent lane and overtakes whatever is queued.
 * - Stops without a link ({@link PublishStop}): with `heard`, every `instantActions` headerId
 *   routed here is remembered per AGV, so a stop this node publishes for an AGV whose link runs
 *   on another node continues the AGV's sequence.
 *
 * The connection is opened after `init`, so the actor starts even while the broker is down.
 * A broker that is unreachable or refuses the connection (credentials, TLS: see
 * `BrokerSecurity`) is a status, not a crash: the connection keeps trying with backoff (1 s
 * doubling to 10 s), each failure is counted by reason ({@link MqttLinkStats.connectFailures})
 * and logged as one line saying why, sampled per reason; once connected, mqtt.js reconnects by
 * itself, reading the secret files again each time. A failure of the ingest thread fails the
 * actor, and its supervisor retries.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as LogLevel from "effect/LogLevel"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import { randomBytes } from "node:crypto"
import * as Actor from "../../actors/Actor.js"
import type { ActorRef, Reply } from "../../actors/ActorRef.js"
import * as LogSampler from "../../actors/LogSampler.js"
import * as Registry from "../../actors/Registry.js"
import * as BrokerSecurity from "../mqtt/BrokerSecurity.js"
import type * as Placement from "../Placement.js"
import * as MqttConnection from "../mqtt/MqttConnection.js"
import * as SampleColumns from "../SampleColumns.js"
import * as AgvLink from "./AgvLink.js"
import * as AgvSubscriptions from "./AgvSubscriptions.js"
import type { AgvIdentity } from "./Header.js"
import * as HeardHeaderIds from "./HeardHeaderIds.js"
import * as Inbound from "./Inbound.js"
import * as IngestThread from "./IngestThread.js"
import type * as MessageCodec from "./MessageCodec.js"
import type * as OfficialSchemas from "./OfficialSchemas.js"
import * as StopMessage from "./StopMessage.js"
import * as Topic from "./Topic.js"
import * as VisualizationSample from "./VisualizationSample.js"

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
  /**
   * With `ingestThread`, how many threads (default 1). One subscribes to the whole prefix (by name
   * with a placement); with more, each AGV is given to one of them (by a hash of its id) when its
   * link starts, the thread subscribes to that AGV's topics by name, and this actor subscribes to
   * the `connection` and `instantActions` topics of every AGV, where discovery then happens.
   */
  readonly ingestThreads?: number | undefined
  /**
   * Starts the link of a newly admitted AGV, registered under {@link agvKey}; `known` says
   * whether the fleet knew it (a link for an unknown AGV can start on probation).
   */
  readonly startAgv: (
    identity: AgvIdentity,
    outbox: AgvLink.Outbox,
    known: boolean
  ) => Effect.Effect<ActorRef<AgvLink.AgvLinkMessage>, unknown>
  /** Which AGVs get a link; default: every one (no cap, no rate, no allow-list). */
  readonly admission?: Admission | undefined
  /** Which AGVs this node runs, when several nodes share the fleet; default: every one. */
  readonly placement?: Placement.Placement | undefined
  /** The `instantActions` headerIds heard, kept above this actor (see {@link PublishStop}). */
  readonly heard?: HeardHeaderIds.HeardHeaderIds | undefined
  /** Makes the action ids of the stops this actor publishes unique among senders (the node's id). */
  readonly senderTag?: string | undefined
  /** Stops the link of an AGV `placement` took away (registered under {@link agvKey}); needed with `placement`. */
  readonly stopAgv?: ((identity: AgvIdentity) => Effect.Effect<void>) | undefined
  /** Credentials and TLS files of the broker, for this connection and the ingest thread's. */
  readonly security?: BrokerSecurity.BrokerSecurity | undefined
  /** The fleet's sample columns: AGVs get a slot there when their link starts, and their samples go there. */
  readonly samples?: SampleColumns.Directory | undefined
  /**
   * The official schemas incoming messages are checked against (`Inbound`); the ingest thread
   * loads them again from their folder. Default: the message schemas alone.
   */
  readonly officialSchemas?: OfficialSchemas.OfficialSchemas | undefined
}

/** Which AGVs get a link; see the module documentation. */
export interface Admission {
  /** The most AGV links at once; default unlimited. */
  readonly maxAgvs?: number | undefined
  /** New (unknown) AGVs admitted per second, in a bucket of one second's worth; default unlimited. */
  readonly perSecond?: number | undefined
  /** Manufacturers whose AGVs may be admitted; default: any. */
  readonly manufacturers?: ReadonlySet<string> | undefined
  /** Whether the fleet knows the AGV (`<manufacturer>/<serialNumber>`): then the rate does not apply. */
  readonly known?: ((robot: string) => boolean) | undefined
  /**
   * AGVs admitted whatever the cap and the rate (the allow-list still applies): latched ones,
   * whose unconfirmed stop their link must send again the moment they are back.
   */
  readonly always?: ((robot: string) => boolean) | undefined
}

/** Why discovery refused an AGV (the label `reason` of `fleetvisor_mqtt_agvs_refused_total`). */
export type RefusalReason = "cap" | "rate" | "manufacturer" | "name"

/** The longest manufacturer or serial number admitted, in characters. */
export const maxNameLength = 128

/** The registry key of an AGV's link. */
export const agvKey = (identity: AgvIdentity): string => `agv:${AgvLink.robotId(identity)}`

/** Counters of the broker connection. */
export interface MqttLinkStats {
  readonly connected: boolean
  /** Messages received under the prefix (samples written to the columns included). */
  readonly received: number
  /** Samples written to the sample columns without being routed to a link. */
  readonly sampled: number
  /** Samples whose headerId did not follow their AGV's previous one (a lost message, or an AGV that counted again). */
  readonly gaps: number
  /** Messages refused: a topic that is not VDA 5050, or a payload its schema refuses. */
  readonly invalid: number
  /** Refusals by topic name (`state`, …, or `topic` for a topic that did not parse). */
  readonly invalidByTopic: Readonly<Record<string, number>>
  /** The last refusal, for the operator. */
  readonly lastInvalid: { readonly topic: string; readonly reason: string } | undefined
  /** AGV links started on a first message. */
  readonly discovered: number
  /** Messages of AGVs without a link that admission refused, by reason. */
  readonly refused: Readonly<Record<RefusalReason, number>>
  /** AGV links this connection started or routes to, starting ones included. */
  readonly agvLinks: number
  /** Messages of AGVs without a link here that another node runs (`placement`), dropped. */
  readonly notOwned: number
  /** AGV links started because `placement` gave this node their AGV. */
  readonly placedLinks: number
  /** AGV links stopped because `placement` took their AGV away. */
  readonly displacedLinks: number
  readonly published: number
  /** Messages that could not be published (no connection, or the publish failed). */
  readonly publishFailed: number
  /** Messages the ingest threads dropped because the main thread was too far behind (0 without one). */
  readonly ingestDropped: number
  /** Samples written by each ingest thread (empty without one). */
  readonly ingestSampled: ReadonlyArray<number>
  /** Failed connects and reconnects to the broker, by reason (refused credentials, TLS, unreachable, …). */
  readonly connectFailures: Readonly<Record<BrokerSecurity.RefusalReason, number>>
  /** The last failure's line, for the operator; never a secret. */
  readonly lastConnectFailure: string | undefined
}

/** Publishes a message of an AGV link. */
export class Publish {
  readonly _tag = "Publish"
  constructor(readonly topic: string, readonly payload: string, readonly delivery: Topic.Delivery) {}
}

/** What {@link PublishStop} answers: whether the broker connection took the stop, and its `cancelOrder` id. */
export interface PublishedStop {
  readonly written: boolean
  readonly cancelId: string | undefined
}

/**
 * Publishes the emergency stop of an AGV whose link does not run here (another node runs it),
 * with the headerId after the last one heard on its `instantActions` topic; send it on the
 * urgent lane. Answers once the connection wrote it (or could not).
 */
export interface PublishStop {
  readonly _tag: "PublishStop"
  readonly identity: AgvIdentity
  readonly reply: Reply<PublishedStop>
}

/** A `PublishStop` message for `ask` with `{ urgent: true }`. */
export const publishStop = (identity: AgvIdentity) => (reply: Reply<PublishedStop>): MqttLinkMessage => ({
  _tag: "PublishStop",
  identity,
  reply
})

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
  constructor(readonly items: ReadonlyArray<Inbound.Checked>, readonly partition: number) {}
}
class IngestStarted {
  readonly _tag = "IngestStarted"
  constructor(readonly thread: IngestThread.IngestThread, readonly partition: number) {}
}
class Discovered {
  readonly _tag = "Discovered"
  constructor(
    readonly key: string,
    readonly exit: Exit.Exit<ActorRef<AgvLink.AgvLinkMessage>, unknown>,
    /** Started because `placement` gave this node the AGV, not on a first message. */
    readonly placed: boolean
  ) {}
}
class Failed {
  readonly _tag = "Failed"
  constructor(readonly error: MqttConnection.MqttError | IngestThread.IngestThreadFailed) {}
}
class Placed {
  readonly _tag = "Placed"
  constructor(readonly robot: string, readonly owned: boolean) {}
}

/** What the broker connection accepts. The messages other than `Publish` and `GetStats` are its own. */
export type MqttLinkMessage =
  | Publish
  | PublishStop
  | GetStats
  | Connected
  | Incoming
  | Checked
  | IngestStarted
  | Discovered
  | Failed
  | Placed

/** A `GetStats` message for `ask`. */
export const getStats = (reply: Reply<MqttLinkStats>): MqttLinkMessage => ({ _tag: "GetStats", reply })

/** What a handler of this actor returns. */
type Step = State | Effect.Effect<State>

interface State {
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>
  connection: MqttConnection.MqttConnection | undefined
  /** The AGVs this actor's own connection hears by name (with a placement and no ingest thread). */
  readonly own: AgvSubscriptions.AgvSubscriptions | undefined
  /** The ingest threads, by partition; an entry is undefined until its thread started. */
  readonly ingest: Array<IngestThread.IngestThread | undefined>
  /** Messages of AGVs whose link is starting. */
  readonly starting: Map<string, Array<AgvLink.Received>>
  received: number
  /** Samples this actor wrote to the columns (those of the ingest thread are counted there). */
  sampled: number
  gaps: number
  invalid: number
  readonly invalidByTopic: Record<string, number>
  lastInvalid: { readonly topic: string; readonly reason: string } | undefined
  discovered: number
  notOwned: number
  placedLinks: number
  displacedLinks: number
  published: number
  publishFailed: number
  /** Registry keys of the AGV links started (or found) by this connection, starting ones included. */
  readonly links: Set<string>
  /** When `links` was last cleared of links that have stopped. */
  prunedAt: number
  /** Discovery-rate tokens, and when they were last refilled. */
  tokens: number
  refilledAt: number
  readonly refused: Record<RefusalReason, number>
}

/** `f` of each thread started, summed. */
const sum = (
  threads: ReadonlyArray<IngestThread.IngestThread | undefined>,
  f: (thread: IngestThread.IngestThread) => number
): number => threads.reduce((total, thread) => total + (thread === undefined ? 0 : f(thread)), 0)

/** A stable hash of a string (FNV-1a, 32 bits). */
const hash = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  return h >>> 0
}

const refusalText: Record<RefusalReason, string> = {
  cap: "the AGV links are at FLEET_MAX_AGVS",
  rate: "new AGVs are past FLEET_AGV_DISCOVERY_RATE",
  manufacturer: "its manufacturer is not in FLEET_AGV_MANUFACTURERS",
  name: `its manufacturer or serial number is longer than ${maxNameLength} characters`
}

/** The behaviour of the fleet's broker connection; see the module documentation. */
export const make = (options: MqttLinkOptions): Actor.Behaviour<MqttLinkMessage, State> => {
  const prefix = options.prefix ?? Topic.DEFAULT_PREFIX
  const filter = Topic.subscriptionFilter(prefix)
  const maxAgvs = options.admission?.maxAgvs ?? Infinity
  const perSecond = options.admission?.perSecond ?? Infinity
  const manufacturers = options.admission?.manufacturers
  const known = options.admission?.known ?? (() => false)
  const always = options.admission?.always ?? (() => false)
  // Repeated warnings (invalid messages, refusals, failed publishes) sampled per kind; shared by
  // every incarnation of this actor, so a restart does not reopen the windows.
  const sampler = LogSampler.make()
  const connectFailures = Object.fromEntries(BrokerSecurity.refusalReasons.map((reason) => [reason, 0])) as Record<
    BrokerSecurity.RefusalReason,
    number
  >
  let lastConnectFailure: string | undefined
  const where = BrokerSecurity.redactUrl(options.url)
  let warnedInline = false
  const placement = options.placement
  /** The AGVs handed to `placement.manage`; kept across restarts of this actor, as the placement keeps them. */
  const managed = new Set<string>()
  const heard = options.heard

  const threads = options.ingestThread === true ? Math.max(1, options.ingestThreads ?? 1) : 0
  /** Whether AGVs' topics are subscribed by name (`AgvSubscriptions`): each node its own AGVs, each thread its own. */
  const byName = placement !== undefined || threads > 1
  /** What this actor's own connection subscribes to with wildcards. */
  const ownFilters = byName ? AgvSubscriptions.sharedFilters(prefix) : threads === 0 ? [filter] : []
  /** The ingest thread of an AGV: always the same one, whatever the order of discovery. */
  const partitionOf = (robot: string): number => threads <= 1 ? 0 : hash(robot) % threads

  const session = (self: ActorRef<MqttLinkMessage>, scope: Scope.Scope) =>
    Effect.gen(function*() {
      const clientId = options.clientId ?? `fleetvisor-${randomBytes(4).toString("hex")}`
      if (!warnedInline && BrokerSecurity.hasInlinePassword(options.url)) {
        warnedInline = true
        yield* Effect.logWarning(
          `the broker's password is inline in FLEET_MQTT_URL (${where}), where the environment and the process list show it: ` +
            "use FLEET_MQTT_USERNAME and FLEET_MQTT_PASSWORD_FILE"
        )
      }
      const connection = yield* Scope.extend(
        MqttConnection.connect({
          url: options.url,
          clientId,
          security: options.security,
          untilConnected: true,
          sampler,
          onFailure: (refusal) => {
            connectFailures[refusal.reason]++
            lastConnectFailure = refusal.text
          },
          onMessage: (topic, payload) => self.unsafeTell(new Incoming(topic, payload))
        }),
        scope
      )
      if (ownFilters.length > 0) yield* connection.subscribe(ownFilters, 0)
      for (let partition = 0; partition < threads; partition++) {
        const thread = yield* Scope.extend(
          IngestThread.start({
            url: options.url,
            security: options.security,
            prefix,
            officialSchemas: options.officialSchemas?.folder,
            clientId: threads === 1 ? `${clientId}-ingest` : `${clientId}-ingest-${partition}`,
            columns: options.samples?.columns,
            byName,
            onBatch: (items) => self.unsafeTell(new Checked(items, partition)),
            onFailure: (failure) => self.unsafeTellUrgent(new Failed(failure))
          }),
          scope
        )
        self.unsafeTellUrgent(new IngestStarted(thread, partition))
      }
      self.unsafeTellUrgent(new Connected(connection))
      // Forked into the scope after the connection, so it stops before the connection closes.
      yield* Effect.forkIn(
        Effect.forever(
          Effect.flatMap(Queue.take(connection.events), (event) =>
            event._tag === "Connected"
              ? ownFilters.length > 0 ? Effect.ignore(connection.subscribe(ownFilters, 0)) : Effect.void
              : event._tag === "Disconnected"
              ? Effect.logWarning(`MQTT connection to ${where} lost; mqtt.js reconnects`)
              : Effect.void)
        ),
        scope
      )
    }).pipe(Effect.catchAll((error) => Effect.sync(() => self.unsafeTellUrgent(new Failed(error)))))

  /** The live incarnation's state, for the check that refuses before decoding. */
  let current: State | undefined
  const check = Inbound.makeChecker(prefix, {
    before: (identity): RefusalReason | undefined => {
      const state = current
      if (state === undefined) return undefined
      // Before the key is built and hashed: a 60 KB serial number is refused by its length alone.
      if (identity.manufacturer.length > maxNameLength || identity.serialNumber.length > maxNameLength) return "name"
      const key = agvKey(identity)
      if (state.starting.has(key) || Registry.unsafeLookup(options.registry, key).length > 0) return undefined
      // Dropped by `route` without a refusal: it runs on another node.
      if (placement !== undefined && managed.has(AgvLink.robotId(identity))) return undefined
      return admit(state, identity, false)
    },
    official: options.officialSchemas?.validate
  })

  const refuse = (state: State, { countedAs, reason, topic }: Inbound.Invalid): Step => {
    state.invalid++
    state.invalidByTopic[countedAs] = (state.invalidByTopic[countedAs] ?? 0) + 1
    const last = { topic: LogSampler.excerpt(topic), reason: LogSampler.excerpt(reason) }
    state.lastInvalid = last
    const line = sampler.sample(
      LogLevel.Warning,
      `invalid:${countedAs}`,
      `invalid VDA 5050 messages (${countedAs})`,
      () => `invalid VDA 5050 message on ${last.topic}: ${last.reason}`
    )
    return line === undefined ? state : Effect.as(line, state)
  }

  /**
   * Why `identity` may not have a link now, or `undefined` when it may; `take`: take a rate token
   * when it is new (else only look whether one is left).
   */
  const admit = (state: State, identity: AgvIdentity, take: boolean): RefusalReason | undefined => {
    if (manufacturers !== undefined && !manufacturers.has(identity.manufacturer)) return "manufacturer"
    if (identity.manufacturer.length > maxNameLength || identity.serialNumber.length > maxNameLength) return "name"
    const robot = AgvLink.robotId(identity)
    if (always(robot)) return undefined
    if (state.links.size >= maxAgvs) {
      prune(state)
      if (state.links.size >= maxAgvs) return "cap"
    }
    if (perSecond !== Infinity && !known(robot)) {
      const now = Date.now()
      state.tokens = Math.min(perSecond, state.tokens + ((now - state.refilledAt) / 1000) * perSecond)
      state.refilledAt = now
      if (state.tokens < 1) return "rate"
      if (take) state.tokens -= 1
    }
    return undefined
  }

  /** Forgets the links that have stopped (let go, or failed to start); at most every 100 ms. */
  const prune = (state: State) => {
    const now = Date.now()
    if (now - state.prunedAt < 100) return
    state.prunedAt = now
    for (const key of state.links) {
      if (!state.starting.has(key) && Registry.unsafeLookup(options.registry, key).length === 0) state.links.delete(key)
    }
  }

  /** Counts a refusal; returns the log line's Effect when this one is to be logged (sampled). */
  const refuseAgv = (state: State, identity: AgvIdentity, reason: RefusalReason): Effect.Effect<void> | undefined => {
    state.refused[reason]++
    return sampler.sample(
      LogLevel.Warning,
      `refused:${reason}`,
      `AGVs refused (${reason})`,
      () => `AGV ${LogSampler.excerpt(AgvLink.robotId(identity))} refused: ${refusalText[reason]}`
    )
  }

  /**
   * Hands a valid message to its AGV's link, holding it while the link starts, and starting it on
   * a first message if the AGV is admitted; returns the refusal's log line when it is not.
   */
  const route = (
    state: State,
    self: ActorRef<MqttLinkMessage>,
    { identity, message, topic }: Inbound.Valid
  ): Effect.Effect<void> | undefined => {
    const key = agvKey(identity)
    if (topic === "instantActions") heard?.heard(AgvLink.robotId(identity), (message as MessageCodec.MessageOf<"instantActions">).headerId)
    const received = new AgvLink.Received(topic, message)
    const link = Registry.unsafeLookup(options.registry, key)[0]
    if (link !== undefined) {
      // Counted even if another incarnation of this actor started it.
      state.links.add(key)
      link.ref.unsafeTell(received)
      return undefined
    }
    const held = state.starting.get(key)
    if (held !== undefined) {
      held.push(received)
      return undefined
    }
    if (topic === "connection" && (message as MessageCodec.MessageOf<"connection">).connectionState !== "ONLINE") {
      return undefined
    }
    const robot = AgvLink.robotId(identity)
    if (placement !== undefined && !placement.owns(robot)) {
      if (!managed.has(robot)) {
        const refusal = admit(state, identity, true)
        if (refusal !== undefined) return refuseAgv(state, identity, refusal)
        managed.add(robot)
        heard?.heard(robot)
        state.run(placement.manage([robot]))
      }
      state.notOwned++
      return undefined
    }
    const refusal = admit(state, identity, true)
    if (refusal !== undefined) return refuseAgv(state, identity, refusal)
    startLink(state, self, identity, received, known(robot))
    return undefined
  }

  /**
   * Starts the link of `identity`, delivering `first` and what arrives meanwhile once it runs (see
   * `Discovered`); without `first`, because `placement` gave this node the AGV.
   */
  const startLink = (
    state: State,
    self: ActorRef<MqttLinkMessage>,
    identity: AgvIdentity,
    first: AgvLink.Received | undefined,
    isKnown: boolean
  ) => {
    const key = agvKey(identity)
    const robot = AgvLink.robotId(identity)
    const slot = options.samples?.assign(robot) ?? -1
    // By name, the link starts once the AGV can be heard (or after a while without an answer: a broker that lost the SUBSCRIBE).
    const heard = Effect.ignore(Effect.timeout(hear(state, robot, slot), "5 seconds"))
    state.starting.set(key, first === undefined ? [] : [first])
    state.links.add(key)
    state.run(
      Effect.tap(
        Effect.exit(Effect.zipRight(heard, options.startAgv(identity, outboxOf(self, identity), isKnown))),
        (exit) => self.unsafeTellUrgent(new Discovered(key, exit, first === undefined))
      )
    )
  }

  /**
   * Gives `robot` (and its sample slot) to its ingest thread, or subscribes its topics on this
   * actor's connection (by name); completes once the broker acknowledged a subscription by name.
   */
  const hear = (state: State, robot: string, slot: number): Effect.Effect<void> => {
    if (threads > 0) return state.ingest[partitionOf(robot)]?.assign(robot, slot) ?? Effect.void
    const own = state.own
    return own === undefined ? Effect.void : Effect.async<void>((resume) => own.add(robot, () => resume(Effect.void)))
  }

  /** Ends the subscriptions by name of an AGV this node no longer runs. */
  const unhear = (state: State, robot: string) => {
    if (threads > 0) state.ingest[partitionOf(robot)]?.unassign(robot)
    else state.own?.remove(robot)
  }

  /** The AGV of a robot id (`manufacturer/serialNumber`, split at the first `/`); undefined for an arm's. */
  const identityOf = (robot: string): AgvIdentity | undefined => {
    const slash = robot.indexOf("/")
    return slash <= 0 ? undefined : { manufacturer: robot.slice(0, slash), serialNumber: robot.slice(slash + 1) }
  }

  /** Stops the link of an AGV this node no longer owns. */
  const displace = (state: State, identity: AgvIdentity) => {
    if (options.stopAgv === undefined) return
    state.displacedLinks++
    state.links.delete(agvKey(identity))
    state.run(options.stopAgv(identity))
  }

  /** `placement` gave this node an AGV (its link starts, admitted as known) or took one away (its link stops). */
  const placed = (state: State, self: ActorRef<MqttLinkMessage>, { owned, robot }: Placed): Step => {
    const identity = identityOf(robot)
    if (identity === undefined) return state
    const key = agvKey(identity)
    const running = Registry.unsafeLookup(options.registry, key).length > 0
    if (!owned) {
      if (!placement!.owns(robot)) unhear(state, robot)
      // One still starting is stopped once it runs (`Discovered`).
      if (running) displace(state, identity)
      return state
    }
    if (!placement!.owns(robot) || state.starting.has(key)) return state
    // Running since before this actor restarted: its topics are subscribed again.
    if (running) {
      state.run(hear(state, robot, options.samples?.slotOf(robot) ?? -1))
      return state
    }
    if (manufacturers !== undefined && !manufacturers.has(identity.manufacturer)) return state
    if (!always(robot) && state.links.size >= maxAgvs) {
      prune(state)
      if (state.links.size >= maxAgvs) return state
    }
    state.placedLinks++
    startLink(state, self, identity, undefined, true)
    return state
  }

  /** Writes a sample into its AGV's slot (on this actor's thread, without an ingest thread); true when it need not be routed too. */
  const sampled = (checked: Inbound.Valid): boolean =>
    options.samples !== undefined && VisualizationSample.take(options.samples.columns, options.samples.slotOf, checked, sampleCounts)

  /** Counted in the live incarnation's state (the one receiving messages). */
  const sampleCounts: VisualizationSample.SampleCounts = {
    sampled: () => void current!.sampled++,
    gap: () => void current!.gaps++
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
      Effect.gen(function*() {
        const run = yield* FiberSet.makeRuntime<never, unknown, unknown>()
        run(session(ctx.self, ctx.scope))
        if (placement !== undefined) {
          const unwatch = placement.watch((robot, owned) =>
            owned ? ctx.self.unsafeTell(new Placed(robot, true)) : ctx.self.unsafeTellUrgent(new Placed(robot, false))
          )
          yield* Scope.addFinalizer(ctx.scope, Effect.sync(unwatch))
          // Given while this actor was not running (a restart): their links start now if they are not running.
          for (const robot of placement.owned()) ctx.self.unsafeTell(new Placed(robot, true))
        }
        return current = {
          run,
          own: byName && threads === 0
            ? AgvSubscriptions.make(prefix, (effect) => void run(effect), (robots, error) =>
              void run(sampler.warning(
                "subscribe",
                "AGV subscriptions by name that failed",
                `could not (un)subscribe the topics of ${LogSampler.excerpt(robots.join(", "))}: ${LogSampler.excerpt(error.message)}`
              )))
            : undefined,
          connection: undefined,
          ingest: Array.from({ length: threads }, () => undefined),
          starting: new Map(),
          received: 0,
          sampled: 0,
          gaps: 0,
          invalid: 0,
          invalidByTopic: {},
          lastInvalid: undefined,
          discovered: 0,
          notOwned: 0,
          placedLinks: 0,
          displacedLinks: 0,
          published: 0,
          publishFailed: 0,
          links: new Set(),
          prunedAt: 0,
          tokens: perSecond === Infinity ? 0 : perSecond,
          refilledAt: Date.now(),
          refused: { cap: 0, rate: 0, manufacturer: 0, name: 0 }
        }
      }),
    receive: (state, message, ctx) => {
      switch (message._tag) {
        case "Incoming": {
          const checked = check(message.topic, message.payload)
          if (checked === undefined) return state
          state.received++
          if (checked._tag === "Invalid") return refuse(state, checked)
          if (checked._tag === "Valid" && sampled(checked)) return state
          const refused = checked._tag === "Refused"
            ? refuseAgv(state, checked.identity, checked.reason)
            : route(state, ctx.self, checked)
          return refused === undefined ? state : Effect.as(refused, state)
        }
        case "Checked": {
          const refusals: Array<Effect.Effect<unknown>> = []
          for (const checked of message.items) {
            state.received++
            const refused = checked!._tag === "Valid" ? route(state, ctx.self, checked!) : refuse(state, checked!)
            if (Effect.isEffect(refused)) refusals.push(refused)
          }
          state.ingest[message.partition]?.taken(message.items.length)
          return refusals.length === 0 ? state : Effect.as(Effect.all(refusals, { discard: true }), state)
        }
        case "IngestStarted": {
          state.ingest[message.partition] = message.thread
          // The AGVs it hears (all of them, or its partition's), with their slots: links outlive this actor.
          const robots = new Set<string>()
          for (const [robot] of options.samples?.entries() ?? []) if (robot.includes("/")) robots.add(robot)
          for (const entry of Registry.all(options.registry)) {
            if (entry.key.startsWith("agv:")) robots.add(entry.key.slice("agv:".length))
          }
          for (const robot of robots) {
            if (partitionOf(robot) === message.partition && (placement === undefined || placement.owns(robot))) {
              state.run(message.thread.assign(robot, options.samples?.slotOf(robot) ?? -1))
            }
          }
          return state
        }
        case "Discovered": {
          const held = state.starting.get(message.key) ?? []
          state.starting.delete(message.key)
          if (message.exit._tag === "Failure") {
            state.links.delete(message.key)
            return Effect.as(
              sampler.log(
                LogLevel.Warning,
                "start",
                "AGV links that could not start",
                `could not start the link of ${LogSampler.excerpt(message.key)}`,
                message.exit.cause
              ),
              state
            )
          }
          if (!message.placed) state.discovered++
          const identity = identityOf(message.key.slice("agv:".length))!
          if (placement !== undefined && !placement.owns(AgvLink.robotId(identity))) {
            displace(state, identity)
            return state
          }
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
                  sampler.warning(
                    "publish",
                    "messages to AGVs that could not be published",
                    `could not publish to ${LogSampler.excerpt(message.topic)}: ${LogSampler.excerpt(error.message)}`
                  )
                )
              )
            )
          )
          return state
        }
        case "PublishStop": {
          const connection = state.connection
          const robot = AgvLink.robotId(message.identity)
          const stop = StopMessage.encode(message.identity, heard?.next(robot) ?? 0, Date.now(), options.senderTag ?? "n")
          if (connection === undefined || stop.payload._tag === "Left") {
            state.publishFailed++
            message.reply.succeed({ written: false, cancelId: undefined })
            return state
          }
          state.published++
          const reply = message.reply
          state.run(
            connection.publish(Topic.format({ ...message.identity, topic: "instantActions" }, prefix), stop.payload.right, Topic.delivery.instantActions).pipe(
              Effect.matchEffect({
                onSuccess: () => Effect.sync(() => reply.succeed({ written: true, cancelId: stop.cancelId })),
                onFailure: (error) =>
                  Effect.zipRight(
                    Effect.sync(() => {
                      state.publishFailed++
                      reply.succeed({ written: false, cancelId: undefined })
                    }),
                    sampler.warning("publish", "messages to AGVs that could not be published", `could not publish the stop of ${LogSampler.excerpt(robot)}: ${LogSampler.excerpt(error.message)}`)
                  )
              })
            )
          )
          return state
        }
        case "GetStats":
          message.reply.succeed({
            connected: state.connection !== undefined,
            received: state.received + sum(state.ingest, (t) => t.sampled()),
            sampled: state.sampled + sum(state.ingest, (t) => t.sampled()),
            gaps: state.gaps + sum(state.ingest, (t) => t.gaps()),
            invalid: state.invalid,
            invalidByTopic: { ...state.invalidByTopic },
            lastInvalid: state.lastInvalid,
            discovered: state.discovered,
            refused: { ...state.refused },
            agvLinks: state.links.size,
            notOwned: state.notOwned,
            placedLinks: state.placedLinks,
            displacedLinks: state.displacedLinks,
            published: state.published,
            publishFailed: state.publishFailed,
            ingestDropped: sum(state.ingest, (t) => t.dropped()),
            ingestSampled: state.ingest.map((t) => t?.sampled() ?? 0),
            connectFailures: { ...connectFailures },
            lastConnectFailure
          })
          return state
        case "Connected":
          state.connection = message.connection
          state.own?.attach(message.connection)
          return state
        case "Failed":
          return Effect.fail(message.error)
        case "Placed":
          return placed(state, ctx.self, message)
      }
    }
  })
}
