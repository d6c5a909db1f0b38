/**
 * PubSub: topics that actors (or queues, or sockets) subscribe to, and
 * broadcasts that reach every subscriber of a topic.
 *
 * Every subscriber has a bounded buffer (`bufferSize`: what was handed to it
 * and not yet consumed) and an overflow policy for when it is full:
 *
 * | policy         | a full subscriber…                                  | right for                 |
 * |----------------|------------------------------------------------------|---------------------------|
 * | `sliding`      | loses its oldest message, takes the new one          | telemetry, positions      |
 * | `dropping`     | does not get the new message                         | best-effort notifications |
 * | `backpressure` | makes `broadcast` wait until it has room             | what must not be lost     |
 * | `disconnect`   | is stopped with a `shutdown(slow consumer…)` reason  | slow sockets              |
 *
 * A subscription vanishes when its actor exits (the hub watches the actor),
 * or when the scope of a queue subscription closes. Wrap a payload in
 * `Encoded` to encode it once for all subscribers. Hubs on several nodes share
 * broadcasts through a `Backplane`: a hub watches a topic on it while the topic
 * has local subscribers, and hands its resync signals (messages on a topic may
 * have been lost) to the handlers registered with {@link onResync}, which
 * answer by broadcasting what they hold of the topic whole. A hub may share
 * only some topics (`shares`): the others stay on their node.
 *
 * ```ts
 * const hub = yield* PubSub.make()
 * yield* PubSub.subscribe(hub, "robots", dashboard, { bufferSize: 64, overflow: "sliding" })
 * yield* PubSub.broadcast(hub, "robots", { robot: "agv-1", x: 1.5 })
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { ActorRef } from "./ActorRef.js"
import { type Attachment, type Backplane, type Resync, resyncSignal } from "./Backplane.js"
import type { ActorCell } from "./internal/cell.js"
import { ActorSub, type HubCounters, type Overflow, QueueSub, type Sink, type Sub, SinkSub } from "./internal/subscription.js"

export type { Overflow, Sink }

/** @internal */
export const TypeId: unique symbol = Symbol.for("fleetvisor/PubSub")

/** A PubSub hub. */
export interface PubSub {
  readonly [TypeId]: typeof TypeId
  /** This node's name on the backplane. */
  readonly nodeId: string
  /** @internal */
  readonly topics: Map<string, Array<Sub>>
  /** @internal */
  readonly counters: HubCounters & { published: number }
  /** @internal */
  readonly backplane: Backplane | undefined
  /** @internal */
  readonly shares: (topic: string) => boolean
  /** @internal */
  attachment: Attachment | undefined
  /** @internal */
  readonly resyncHandlers: Map<string, Set<ResyncHandler>>
}

/** One registration of {@link onResync} (an object of its own, so that one function may be registered twice). */
interface ResyncHandler {
  readonly run: (signal: Resync) => Effect.Effect<void>
}

/** A subscriber's buffer and policy. */
export interface SubscribeOptions {
  /** Default: 1024 messages (a sink counts in its own unit, e.g. bytes). */
  readonly bufferSize?: number | undefined
  /** Default: `sliding`, since most fan-out here is state where the latest value wins. */
  readonly overflow?: Overflow | undefined
}

/** One subscription, to inspect or end. */
export interface Subscription {
  readonly topic: string
  /** Messages handed over and not yet consumed. */
  pending(): number
  /** Messages this subscriber lost to its overflow policy. */
  dropped(): number
  /** Whether the subscription still exists. */
  isActive(): boolean
  /** Ends the subscription. */
  readonly unsubscribe: Effect.Effect<void>
}

/** Hub counters. */
export interface Stats {
  readonly topics: number
  readonly subscriptions: number
  readonly published: number
  readonly delivered: number
  readonly dropped: number
  readonly disconnected: number
}

const defaultBufferSize = 1024
const defaultOverflow: Overflow = "sliding"

const everyTopic = () => true

/**
 * Creates a hub. With a backplane, broadcasts also go to the hubs of other
 * nodes, and theirs come here, while the scope is open: those of every topic,
 * or of the topics `shares` accepts (the others never leave this node, and the
 * hub never watches them on the backplane).
 */
export const make = (options?: {
  readonly nodeId?: string | undefined
  readonly backplane?: Backplane | undefined
  readonly shares?: ((topic: string) => boolean) | undefined
}): Effect.Effect<PubSub, never, Scope.Scope> =>
  Effect.gen(function*() {
    const hub: PubSub = {
      [TypeId]: TypeId,
      nodeId: options?.nodeId ?? `node-${Math.random().toString(36).slice(2, 10)}`,
      topics: new Map(),
      counters: { published: 0, delivered: 0, dropped: 0, disconnected: 0 },
      backplane: options?.backplane,
      shares: options?.shares ?? everyTopic,
      attachment: undefined,
      resyncHandlers: new Map()
    }
    if (options?.backplane !== undefined) {
      const attachment = yield* options.backplane.subscribe({
        onMessage: (incoming) => {
          if (incoming.origin === hub.nodeId || !hub.shares(incoming.topic)) return
          const offered = offerNow(hub, incoming.topic, incoming.message, undefined)
          if (offered.blocked !== undefined) Effect.runFork(waitForRoom(offered.blocked, incoming.message))
        },
        onResync: (signal) => runResyncHandlers(hub, signal)
      })
      hub.attachment = attachment
      yield* Effect.addFinalizer(() => Effect.sync(() => (hub.attachment = undefined)))
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const subs of [...hub.topics.values()]) for (const sub of [...subs]) sub.close()
      })
    )
    return hub
  })

const attach = (hub: PubSub, sub: Sub): void => {
  let subs = hub.topics.get(sub.topic)
  if (subs === undefined) {
    subs = []
    hub.topics.set(sub.topic, subs)
    if (hub.shares(sub.topic)) hub.attachment?.watch(sub.topic)
  }
  sub.index = subs.length
  subs.push(sub)
}

const detacher = (hub: PubSub) => (sub: Sub): void => {
  const subs = hub.topics.get(sub.topic)
  if (subs === undefined || subs[sub.index] !== sub) return
  const last = subs.pop() as Sub
  if (last !== sub) {
    subs[sub.index] = last
    last.index = sub.index
  }
  if (subs.length === 0) {
    hub.topics.delete(sub.topic)
    if (hub.shares(sub.topic)) hub.attachment?.unwatch(sub.topic)
  }
}

const handle = (sub: Sub): Subscription => ({
  topic: sub.topic,
  pending: () => sub.pending(),
  dropped: () => sub.dropped,
  isActive: () => !sub.closed,
  unsubscribe: Effect.sync(() => sub.close())
})

const bindToOwner = (hub: PubSub, sub: Sub, owner: ActorCell): Subscription => {
  if (!owner.isAlive()) {
    sub.closed = true
    return handle(sub)
  }
  attach(hub, sub)
  sub.cancelExit = owner.onExit(() => sub.close())
  return handle(sub)
}

/**
 * Subscribes an actor: each broadcast arrives in its mailbox (mapped by `map`
 * if given, to fit its message type). Ends when the actor exits.
 */
export const subscribe = <M>(
  hub: PubSub,
  topic: string,
  subscriber: ActorRef<M>,
  options?: SubscribeOptions & { readonly map?: ((message: any) => M) | undefined }
): Effect.Effect<Subscription> =>
  Effect.sync(() => {
    const owner = subscriber as unknown as ActorCell
    const sub = new ActorSub(
      topic,
      owner,
      options?.bufferSize ?? defaultBufferSize,
      options?.overflow ?? defaultOverflow,
      hub.counters,
      detacher(hub),
      options?.map
    )
    return bindToOwner(hub, sub, owner)
  })

/**
 * Subscribes a sink owned by an actor: each broadcast is handed to
 * `sink.deliver` synchronously (a socket writer), and the sink's own backlog
 * (say, the socket's buffered bytes) is what `bufferSize` bounds. Only
 * `dropping` and `disconnect` make sense for a sink: what it took, it holds.
 * Ends when the owner exits.
 */
export const subscribeSink = (
  hub: PubSub,
  topic: string,
  owner: ActorRef<never>,
  sink: Sink,
  options: { readonly bufferSize: number; readonly overflow: "dropping" | "disconnect" }
): Effect.Effect<Subscription> =>
  Effect.sync(() => {
    const cell = owner as unknown as ActorCell
    return bindToOwner(hub, new SinkSub(topic, cell, options.bufferSize, options.overflow, hub.counters, detacher(hub), sink), cell)
  })

/** Subscribes a queue for the lifetime of the scope; `disconnect` shuts the queue down. */
export const subscribeQueue = <A = unknown>(
  hub: PubSub,
  topic: string,
  options?: SubscribeOptions
): Effect.Effect<Queue.Dequeue<A>, never, Scope.Scope> => {
  const bufferSize = options?.bufferSize ?? defaultBufferSize
  const overflow = options?.overflow ?? defaultOverflow
  const makeQueue = overflow === "sliding"
    ? Queue.sliding<unknown>(bufferSize)
    : overflow === "dropping"
    ? Queue.dropping<unknown>(bufferSize)
    : Queue.bounded<unknown>(bufferSize)
  return Effect.acquireRelease(
    Effect.map(makeQueue, (queue) => {
      const sub = new QueueSub(topic, bufferSize, overflow, hub.counters, detacher(hub), queue)
      attach(hub, sub)
      return sub
    }),
    (sub) => Effect.sync(() => sub.close())
  ).pipe(Effect.map((sub) => sub.queue as Queue.Dequeue<A>))
}

/** Broadcasts to every subscriber of `topic` on every node; returns how many local subscribers got it. */
export const broadcast = (hub: PubSub, topic: string, message: unknown): Effect.Effect<number> =>
  publish(hub, topic, message, undefined)

/** Broadcasts to every subscriber of `topic` except those owned by `from` (Phoenix's `broadcast_from`). */
export const broadcastFrom = (
  hub: PubSub,
  from: ActorRef<never>,
  topic: string,
  message: unknown
): Effect.Effect<number> => publish(hub, topic, message, from)

/**
 * {@link broadcast} from outside Effect (a socket's callback, an actor's hot path), delivered
 * before it returns. Only the rare parts that must wait (a backpressure subscriber that is full,
 * the backplane) run in a fiber of their own. Returns how many local subscribers got it at once.
 */
export const unsafeBroadcast = (hub: PubSub, topic: string, message: unknown): number => {
  const offered = offerNow(hub, topic, message, undefined)
  if (offered.blocked !== undefined) Effect.runFork(waitForRoom(offered.blocked, message))
  if (hub.backplane !== undefined && hub.shares(topic)) Effect.runFork(hub.backplane.publish({ origin: hub.nodeId, topic, message }))
  return offered.delivered
}

const publish = (hub: PubSub, topic: string, message: unknown, from: ActorRef<never> | undefined) => {
  const local = deliverLocal(hub, topic, message, from)
  if (hub.backplane === undefined || !hub.shares(topic)) return local
  return Effect.zipLeft(local, hub.backplane.publish({ origin: hub.nodeId, topic, message }))
}

/** Offers `message` now to every subscriber of `topic` (but `from`'s); the full backpressure ones are left to wait. */
const offerNow = (
  hub: PubSub,
  topic: string,
  message: unknown,
  from: ActorRef<never> | undefined
): { readonly delivered: number; readonly blocked: Array<Sub> | undefined } => {
  hub.counters.published++
  const subs = hub.topics.get(topic)
  let delivered = 0
  let blocked: Array<Sub> | undefined
  if (subs === undefined) return { delivered, blocked }
  // An offer may detach its subscriber (the disconnect policy): iterate over a copy unless there is one.
  for (const sub of subs.length === 1 ? subs : [...subs]) {
    if (from !== undefined && sub.owner === (from as unknown)) continue
    const result = sub.offer(message)
    if (result === true) delivered++
    else if (result === "full") (blocked ??= []).push(sub)
  }
  return { delivered, blocked }
}

const deliverLocal = (
  hub: PubSub,
  topic: string,
  message: unknown,
  from: ActorRef<never> | undefined
): Effect.Effect<number> =>
  Effect.suspend(() => {
    const { blocked, delivered } = offerNow(hub, topic, message, from)
    if (blocked === undefined) return Effect.succeed(delivered)
    return Effect.map(waitForRoom(blocked, message), () => delivered + blocked.filter((sub) => !sub.closed).length)
  })

const waitForRoom = (blocked: ReadonlyArray<Sub>, message: unknown): Effect.Effect<void> =>
  Effect.forEach(blocked, (sub) => offerWhenRoom(sub, message), { discard: true })

const offerWhenRoom = (sub: Sub, message: unknown): Effect.Effect<void> =>
  Effect.flatMap(sub.awaitRoom, () => {
    const result = sub.offer(message)
    return result === "full" ? offerWhenRoom(sub, message) : Effect.void
  })

const runResyncHandlers = (hub: PubSub, signal: Resync): void => {
  const handlers = hub.resyncHandlers.get(signal.topic)
  if (handlers !== undefined) for (const handler of handlers) Effect.runFork(handler.run(signal))
}

/**
 * Registers, while the scope is open, who answers when messages on `topic` may have been lost
 * here or on another node (a gap, a reconnect, a request): typically the holder of the topic's
 * state, which broadcasts it whole. Needs no subscription to the topic, and runs on every node
 * that registered one, so each sends the part it holds.
 */
export const onResync = (
  hub: PubSub,
  topic: string,
  handler: (signal: Resync) => Effect.Effect<void>
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const registration: ResyncHandler = { run: handler }
      let handlers = hub.resyncHandlers.get(topic)
      if (handlers === undefined) hub.resyncHandlers.set(topic, handlers = new Set())
      handlers.add(registration)
      return registration
    }),
    (registration) =>
      Effect.sync(() => {
        const handlers = hub.resyncHandlers.get(topic)
        handlers?.delete(registration)
        if (handlers?.size === 0) hub.resyncHandlers.delete(topic)
      })
  ).pipe(Effect.asVoid)

/**
 * Asks for `topic`'s state whole: the resync handlers of every node (this one's included) run
 * with reason `requested`. A new subscriber asks so, to start from a snapshot.
 */
export const resync = (hub: PubSub, topic: string): Effect.Effect<void> =>
  hub.backplane === undefined
    ? Effect.sync(() => runResyncHandlers(hub, resyncSignal(topic, "requested")))
    : hub.backplane.resync(topic)

/** The hub's counters now. */
export const stats = (hub: PubSub): Effect.Effect<Stats> =>
  Effect.sync(() => {
    let subscriptions = 0
    for (const subs of hub.topics.values()) subscriptions += subs.length
    return {
      topics: hub.topics.size,
      subscriptions,
      published: hub.counters.published,
      delivered: hub.counters.delivered,
      dropped: hub.counters.dropped,
      disconnected: hub.counters.disconnected
    }
  })

/** The actors subscribed to `topic` now (queue subscribers have none), for inspection and invariant checks. */
export const subscribers = (hub: PubSub, topic?: string): ReadonlyArray<ActorRef<never>> => {
  const out: Array<ActorRef<never>> = []
  for (const [name, subs] of hub.topics) {
    if (topic !== undefined && name !== topic) continue
    for (const sub of subs) if (sub.owner !== undefined) out.push(sub.owner)
  }
  return out
}
