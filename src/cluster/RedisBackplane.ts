/**
 * The PubSub backplane on Redis pub/sub (what the Socket.IO and Phoenix.PubSub Redis adapters
 * do): one connection that publishes and one that subscribes, per node, both closed with the
 * scope.
 *
 * - **A channel per topic**, `<prefix>:bp:<topic>`, subscribed only while some hub of this node
 *   watches the topic (has local subscribers), so a node hears only what its subscribers want.
 *   Plain pub/sub channels are not bound to a hash slot (a Redis Cluster broadcasts them to every
 *   shard; only sharded pub/sub, `SSUBSCRIBE`, is slot-bound), so the names carry no hash tag.
 * - **Numbered frames** ({@link BackplaneFrame}): each origin node numbers its broadcasts on each
 *   topic 1, 2, 3…; a receiver that sees a number skipped counts a gap and raises a resync of the
 *   topic. An origin heard for the first time (or starting again from 1) starts its numbering
 *   without a gap. A broadcast whose remote copy could not be sent still takes its number, so
 *   the other nodes notice.
 * - **Resync**: a gap, the subscribing connection coming back after a drop (it subscribes its
 *   channels again, since what was published meanwhile is lost), or the publishing one coming
 *   back after remote copies were dropped, raises a resync signal of the topic here and, on a channel every node always listens to (`<prefix>:bp-resync`), on every
 *   other node: each node's resync handlers of the topic then broadcast what they hold of it.
 *   Signals of one topic raised within `resyncCoalesceMs` are raised once.
 * - **Never in the way**: `publish` returns at once and never fails. While Redis is down, or
 *   when `maxInFlight` frames already await Redis's answer (a hung Redis), the remote copy is
 *   dropped and counted; local delivery is the hub's and does not depend on it. ioredis's offline
 *   queue is off, so nothing piles up while disconnected, and reconnection is retried forever.
 * - **Rolling upgrades**: a frame of a newer major protocol version is counted and dropped;
 *   bytes that are not a frame are counted and dropped.
 *
 * ```ts
 * const backplane = yield* RedisBackplane.make({ url: "redis://127.0.0.1:6379", nodeId: "n1" })
 * const hub = yield* PubSub.make({ nodeId: "n1", backplane })
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Backplane } from "../actors/index.js"
import * as BackplaneFrame from "./BackplaneFrame.js"
import type { InvalidSettings } from "./ClusterError.js"
import * as RedisConnection from "./RedisConnection.js"

/** How to reach Redis and how much to hold. */
export interface Options {
  /** `redis://host:port`, any `REDIS_URL` form (Sentinel too), or an address read already. */
  readonly url: RedisConnection.Target
  /** This node's name in its resync requests (default: random); give it the hub's `nodeId`. */
  readonly nodeId?: string | undefined
  /** Channels are named `<prefix>:bp:<topic>` (default prefix: `fleetvisor`). */
  readonly prefix?: string | undefined
  /** Frames written and not yet answered by Redis beyond which remote copies are dropped (default 10,000). */
  readonly maxInFlight?: number | undefined
  /**
   * Whether `make` runs {@link RedisBackplane.listen} itself until the scope closes (default
   * true); with false the caller runs it (an actor of the `cluster` subtree).
   */
  readonly runLoop?: boolean | undefined
  /** Longest wait between two reconnection attempts, ms (default 1,000). */
  readonly maxReconnectDelayMs?: number | undefined
  /** Resync signals of one topic within this window are raised once, ms (default 20). */
  readonly resyncCoalesceMs?: number | undefined
}

/** The backplane's counters, for metrics. */
export interface Stats {
  /** Frames Redis accepted. */
  readonly published: number
  /** Broadcasts whose remote copy was not sent: Redis down, too many in flight, not serializable. */
  readonly publishDropped: number
  /** Frames of other nodes handed to the hubs. */
  readonly received: number
  /** Skips in an origin's numbering. */
  readonly gaps: number
  /** Resync signals this node raised (gaps, reconnects, its own requests). */
  readonly resyncs: number
  /** Resync requests heard from other nodes. */
  readonly resyncRequests: number
  /** Frames that were not MessagePack or not a frame. */
  readonly decodeFailures: number
  /** Frames of a major protocol version this node does not speak. */
  readonly unknownVersion: number
  /** Times the subscribing connection came back after a drop. */
  readonly reconnects: number
  /** Frames written and not yet answered. */
  readonly inFlight: number
  /** Both connections are up. */
  readonly connected: boolean
}

/** A Redis backplane, with its counters. */
export interface RedisBackplane extends Backplane.Backplane {
  /** The counters now. */
  readonly stats: Effect.Effect<Stats>
  /** The counters now, outside Effect (a metrics scrape). */
  readonly unsafeStats: () => Stats
  /** The Redis channel of `topic`. */
  readonly channel: (topic: string) => string
  /**
   * Hands the subscribing connection's frames to the hubs, forever. Interrupted, frames are not
   * heard (the connections stay); run again, it raises a `reconnect` resync of every watched topic.
   */
  readonly listen: Effect.Effect<never>
}

const noop = () => {}

/**
 * Connects to Redis in the background (never waits for it, never fails once started) while the
 * scope is open; only a URL that cannot work fails, at once.
 */
export const make = (options: Options): Effect.Effect<RedisBackplane, InvalidSettings, Scope.Scope> =>
  Effect.gen(function*() {
    const address = yield* RedisConnection.address(options.url)
    const nodeId = options.nodeId ?? `node-${Math.random().toString(36).slice(2, 10)}`
    const prefix = `${options.prefix ?? "fleetvisor"}:bp:`
    const resyncChannel = `${options.prefix ?? "fleetvisor"}:bp-resync`
    const channel = (topic: string) => prefix + topic
    const maxInFlight = options.maxInFlight ?? 10_000
    const maxDelay = options.maxReconnectDelayMs ?? 1_000
    const coalesceMs = options.resyncCoalesceMs ?? 20

    const counters = {
      published: 0,
      publishDropped: 0,
      received: 0,
      gaps: 0,
      resyncs: 0,
      resyncRequests: 0,
      decodeFailures: 0,
      unknownVersion: 0,
      reconnects: 0,
      inFlight: 0
    }
    const receivers = new Set<Backplane.Receiver>()
    /** Topic → the receivers watching it; its channel is subscribed while it has any. */
    const watched = new Map<string, Set<Backplane.Receiver>>()
    /** Topic → origin → the number expected next. */
    const expected = new Map<string, Map<string, number>>()
    /** Origin (of this node's hubs) → topic → the last number sent. */
    const sent = new Map<string, Map<string, number>>()
    /** Resync signals waiting for the coalescing window, and requests waiting for the publisher. */
    const pendingLocal = new Map<string, Backplane.ResyncReason>()
    const pendingRemote = new Map<string, Backplane.ResyncReason>()
    /** Topics whose remote copies were dropped while the publishing connection was down. */
    const droppedWhileDown = new Set<string>()
    let timer: ReturnType<typeof setTimeout> | undefined
    let closed = false

    const connect = (role: string) =>
      RedisConnection.open(address, {
        connectionName: `fleetvisor-bp-${role}-${nodeId}`,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        autoResubscribe: false,
        autoResendUnfulfilledCommands: false,
        retryStrategy: (times) => Math.min(times * 50, maxDelay)
      })
    const publisher = yield* connect("pub")
    const subscriber = yield* connect("sub")

    const flushRemote = () => {
      if (closed || publisher.status !== "ready") return
      for (const [topic, reason] of pendingRemote) {
        publisher.publish(resyncChannel, BackplaneFrame.encodeResync(nodeId, topic, reason)).catch(noop)
      }
      pendingRemote.clear()
    }
    const signalLocal = (topic: string, reason: Backplane.ResyncReason) => {
      const signal: Backplane.Resync = { _tag: "Resync", topic, reason }
      for (const receiver of receivers) receiver.onResync(signal)
    }
    const flush = () => {
      timer = undefined
      if (closed) return
      for (const [topic, reason] of pendingLocal) {
        counters.resyncs++
        pendingRemote.set(topic, reason)
        signalLocal(topic, reason)
      }
      pendingLocal.clear()
      flushRemote()
    }
    const raise = (topic: string, reason: Backplane.ResyncReason) => {
      if (!pendingLocal.has(topic)) pendingLocal.set(topic, reason)
      if (timer === undefined && !closed) {
        timer = setTimeout(flush, coalesceMs)
        timer.unref?.()
      }
    }

    const onMessageFrame = (channelName: string, bytes: Buffer) => {
      const decoded = BackplaneFrame.decodeMessage(bytes)
      if (decoded._tag === "Invalid") return void counters.decodeFailures++
      if (decoded._tag === "UnknownVersion") return void counters.unknownVersion++
      const frame = decoded.frame
      if (channel(frame.topic) !== channelName) return void counters.decodeFailures++
      if (sent.has(frame.origin)) return
      const listeners = watched.get(frame.topic)
      if (listeners === undefined) return
      let origins = expected.get(frame.topic)
      if (origins === undefined) expected.set(frame.topic, origins = new Map())
      const next = origins.get(frame.origin)
      origins.set(frame.origin, frame.seq + 1)
      if (next !== undefined && frame.seq !== next && frame.seq !== 1) {
        counters.gaps++
        raise(frame.topic, "gap")
      }
      counters.received++
      const message: Backplane.BackplaneMessage = { origin: frame.origin, topic: frame.topic, message: frame.message }
      for (const receiver of listeners) receiver.onMessage(message)
    }
    const onResyncFrame = (bytes: Buffer) => {
      const decoded = BackplaneFrame.decodeResync(bytes)
      if (decoded._tag === "Invalid") return void counters.decodeFailures++
      if (decoded._tag === "UnknownVersion") return void counters.unknownVersion++
      if (decoded.frame.origin === nodeId) return
      counters.resyncRequests++
      signalLocal(decoded.frame.topic, decoded.frame.reason)
    }

    const onFrame = (channelBytes: Buffer, bytes: Buffer) => {
      const channelName = channelBytes.toString()
      if (channelName === resyncChannel) onResyncFrame(bytes)
      else if (channelName.startsWith(prefix)) onMessageFrame(channelName, bytes)
    }
    let listenedBefore = false
    const listen: Effect.Effect<never> = Effect.acquireRelease(
      Effect.sync(() => {
        subscriber.on("messageBuffer", onFrame)
        // Frames that came while nobody listened are lost: every watched topic is resynced.
        if (listenedBefore && !closed) {
          expected.clear()
          for (const topic of watched.keys()) raise(topic, "reconnect")
        }
        listenedBefore = true
      }),
      () => Effect.sync(() => void subscriber.off("messageBuffer", onFrame))
    ).pipe(Effect.zipRight(Effect.never), Effect.scoped)
    if (options.runLoop ?? true) yield* Effect.forkScoped(listen)
    let everReady = false
    subscriber.on("ready", () => {
      const again = everReady
      everReady = true
      if (again) {
        counters.reconnects++
        expected.clear()
      }
      const topics = [...watched.keys()]
      subscriber.subscribe(resyncChannel, ...topics.map(channel)).then(() => {
        if (again) for (const topic of topics) if (watched.has(topic)) raise(topic, "reconnect")
      }, noop)
    })
    let publisherEverReady = false
    publisher.on("ready", () => {
      if (publisherEverReady) for (const topic of droppedWhileDown) raise(topic, "reconnect")
      publisherEverReady = true
      droppedWhileDown.clear()
      flushRemote()
    })

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        if (timer !== undefined) clearTimeout(timer)
      })
    )

    const watch = (receiver: Backplane.Receiver, topic: string) => {
      if (closed || !receivers.has(receiver)) return
      let listeners = watched.get(topic)
      if (listeners === undefined) {
        watched.set(topic, listeners = new Set())
        if (subscriber.status === "ready") subscriber.subscribe(channel(topic)).catch(noop)
      }
      listeners.add(receiver)
    }
    const unwatch = (receiver: Backplane.Receiver, topic: string) => {
      const listeners = watched.get(topic)
      if (listeners === undefined || !listeners.delete(receiver) || listeners.size > 0) return
      watched.delete(topic)
      expected.delete(topic)
      if (!closed && subscriber.status === "ready") subscriber.unsubscribe(channel(topic)).catch(noop)
    }

    const unsafeStats = (): Stats => ({
      ...counters,
      connected: publisher.status === "ready" && subscriber.status === "ready"
    })

    return {
      publish: (message) =>
        Effect.sync(() => {
          let topics = sent.get(message.origin)
          if (topics === undefined) sent.set(message.origin, topics = new Map())
          const seq = (topics.get(message.topic) ?? 0) + 1
          topics.set(message.topic, seq)
          if (closed || publisher.status !== "ready" || counters.inFlight >= maxInFlight) {
            counters.publishDropped++
            if (publisher.status !== "ready") droppedWhileDown.add(message.topic)
            return
          }
          let bytes: Buffer
          try {
            bytes = BackplaneFrame.encodeMessage(message.origin, seq, message.topic, message.message)
          } catch {
            counters.publishDropped++
            return
          }
          counters.inFlight++
          publisher.publish(channel(message.topic), bytes).then(
            () => {
              counters.inFlight--
              counters.published++
            },
            () => {
              counters.inFlight--
              counters.publishDropped++
              droppedWhileDown.add(message.topic)
            }
          )
        }),
      subscribe: (receiver) =>
        Effect.acquireRelease(
          Effect.sync((): Backplane.Attachment => {
            receivers.add(receiver)
            return { watch: (topic) => watch(receiver, topic), unwatch: (topic) => unwatch(receiver, topic) }
          }),
          () =>
            Effect.sync(() => {
              for (const topic of [...watched.keys()]) unwatch(receiver, topic)
              receivers.delete(receiver)
            })
        ),
      resync: (topic) => Effect.sync(() => raise(topic, "requested")),
      stats: Effect.sync(unsafeStats),
      unsafeStats,
      channel,
      listen
    }
  })
