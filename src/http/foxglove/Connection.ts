/**
 * One Foxglove client as an actor, a child of `gateway/foxglove` (`foxglove:<n>`, temporary: a
 * client that goes away reconnects by itself; see `Connections`).
 *
 * Like a gateway session, it completes the WebSocket handshake in its `init`, so the socket is
 * its resource from the first byte and whatever stops the actor closes it. On connect it sends
 * `serverInfo` and advertises every robot of the catalog; it then subscribes a sink to the
 * fleet's views, which advertises robots as they appear and writes `messageData` for the state
 * channels the client subscribed. Subscribing to a robot's events channel subscribes another
 * sink to the robot's events topic (`robot:<id>`); unsubscribing removes it.
 *
 * Sinks write straight to the socket from the publisher's fiber, and the socket's unsent bytes
 * are their buffer: past `maxBufferedBytes` the `dropping` policy skips messages until the
 * client catches up, and `disconnect` stops the actor (close 1008). A slow client therefore
 * holds at most that many bytes, and never slows the fleet.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Scope from "effect/Scope"
import type { WebSocket } from "ws"
import type * as Actor from "../../actors/Actor.js"
import type { ActorRef } from "../../actors/ActorRef.js"
import * as ExitReason from "../../actors/ExitReason.js"
import * as PubSub from "../../actors/PubSub.js"
import * as CloseCode from "../../protocol/CloseCode.js"
import * as Connections from "../Connections.js"
import * as Heartbeat from "../Heartbeat.js"
import * as Catalog from "./Catalog.js"
import * as Wire from "./Wire.js"

/** What a connection accepts: its socket's events, and the endpoint's requests. */
export type ConnectionMessage =
  | { readonly _tag: "Frame"; readonly text: string }
  | { readonly _tag: "BinaryFrame" }
  | { readonly _tag: "SocketClosed" }
  /** The client sends faster than its mailbox drains. */
  | { readonly _tag: "Flooded" }
  | { readonly _tag: "HeartbeatTimeout" }
  /** The endpoint is closing: close with 1001 now. */
  | { readonly _tag: "GoAway" }
  /** The user's access ended (revoked, expired): close with `code` (4401) now. */
  | { readonly _tag: "Revoke"; readonly code: number; readonly reason: string }

/** The heartbeat of an endpoint's connections: a ping unanswered for an interval ends one. */
const heartbeatOf = (settings: ConnectionSettings): Heartbeat.Heartbeat =>
  Heartbeat.of(settings, settings.heartbeatIntervalMs, settings.heartbeatIntervalMs)

/** A running connection. */
export type ConnectionRef = ActorRef<ConnectionMessage>

/** Limits and identity of every connection of an endpoint. */
export interface ConnectionSettings {
  /** `serverInfo.name`. */
  readonly name: string
  /** `serverInfo.sessionId`: changes when the service restarts, so clients know to re-subscribe. */
  readonly sessionId: string
  readonly maxBufferedBytes: number
  readonly overflow: "dropping" | "disconnect"
  readonly heartbeatIntervalMs: number
}

/** What one connection needs. */
export interface ConnectionOptions {
  readonly id: string
  readonly subprotocol: string
  readonly address: string
  /** Completes the handshake; called once. */
  readonly upgrade: () => Effect.Effect<WebSocket, Error>
  readonly hub: PubSub.PubSub
  readonly viewsTopic: string
  readonly eventsTopic: (robot: string) => string
  readonly catalog: Catalog.Catalog
  readonly settings: ConnectionSettings
}

/** One subscription of the client. */
interface ClientSubscription {
  readonly channelId: number
  readonly channel: Catalog.ChannelRef
  /** The PubSub sink of an events channel. */
  readonly events: PubSub.Subscription | undefined
}

/** A connection's state, as `getState` and the admin view see it. */
export interface ConnectionState {
  readonly id: string
  readonly address: string
  readonly protocol: string
  readonly connectedAt: number
  readonly socket: WebSocket
  /** Robots whose channels this client was told about. */
  readonly advertised: Set<string>
  /** The client's subscriptions by its subscription id. */
  readonly subscriptions: Map<number, ClientSubscription>
  /** State-channel subscribers by robot: the client's subscription ids. */
  readonly stateSubscribers: Map<string, Set<number>>
  /** How the socket is closed when the actor stops. */
  close: { readonly code: number; readonly reason: string } | undefined
}

const closeFor = (reason: ExitReason.ExitReason): { code: number; reason: string } => {
  switch (reason._tag) {
    case "Normal":
      return { code: CloseCode.Normal, reason: "" }
    case "Shutdown":
      return reason.reason?.startsWith("slow consumer") === true
        ? { code: CloseCode.PolicyViolation, reason: "Too slow: messages are queued faster than you read them" }
        : { code: CloseCode.GoingAway, reason: "Server shutting down" }
    case "Killed":
      return { code: CloseCode.GoingAway, reason: "Server shutting down" }
    case "Failure":
      return { code: CloseCode.InternalError, reason: "Connection failed; reconnect" }
  }
}

const binaryRefused =
  "Binary client messages need the clientPublish or services capability, which this server does not declare"

const sendText = (state: ConnectionState, text: string): void => {
  if (state.socket.readyState === state.socket.OPEN) state.socket.send(text)
}

const sendData = (state: ConnectionState, subscriptionId: number, payload: Catalog.Payload): void => {
  if (state.socket.readyState === state.socket.OPEN) {
    state.socket.send(Wire.messageData(subscriptionId, payload.timestampNs, payload.bytes))
  }
}

const advertiseNew = (state: ConnectionState, robots: Iterable<Catalog.RobotChannels>): void => {
  const channels: Array<Wire.Channel> = []
  for (const entry of robots) {
    if (state.advertised.has(entry.robot)) continue
    state.advertised.add(entry.robot)
    channels.push(entry.state, entry.events)
  }
  if (channels.length > 0) sendText(state, Wire.advertise(channels))
}

/** The connection's behaviour. */
export const make = (options: ConnectionOptions): Actor.Behaviour<ConnectionMessage, ConnectionState> => {
  const { catalog, settings } = options
  const sinkOptions = { bufferSize: settings.maxBufferedBytes, overflow: settings.overflow } as const

  /** Guards a sink: a throw here would crash the publisher (the fleet's state actor). */
  const guarded = (state: ConnectionState, deliver: (message: unknown) => void): PubSub.Sink => ({
    deliver: (message) => {
      try {
        deliver(message)
      } catch {
        state.close = { code: CloseCode.InternalError, reason: "Connection failed; reconnect" }
        state.socket.terminate()
      }
    },
    backlog: () => state.socket.bufferedAmount
  })

  const onUpdate = (state: ConnectionState) => (message: unknown) => {
    if (!Catalog.isFleetUpdate(message)) return
    const { payloads } = catalog.observe(message)
    const fresh: Array<Catalog.RobotChannels> = []
    for (const [robot] of payloads) {
      if (!state.advertised.has(robot)) {
        const entry = catalog.robots.get(robot)
        if (entry !== undefined) fresh.push(entry)
      }
    }
    advertiseNew(state, fresh)
    for (const [robot, payload] of payloads) {
      const subscribers = state.stateSubscribers.get(robot)
      if (subscribers !== undefined) for (const id of subscribers) sendData(state, id, payload)
    }
  }

  const subscribe = (
    state: ConnectionState,
    request: { readonly id: number; readonly channelId: number },
    ctx: Actor.ActorContext<ConnectionMessage>
  ): Effect.Effect<void> =>
    Effect.gen(function*() {
      if (state.subscriptions.has(request.id)) {
        return sendText(state, Wire.status("error", `Subscription id ${request.id} is already in use`))
      }
      const channel = catalog.channel(request.channelId)
      if (channel === undefined || !state.advertised.has(channel.robot)) {
        return sendText(state, Wire.status("warning", `Channel ${request.channelId} is not advertised`))
      }
      if (channel.kind === "state") {
        state.subscriptions.set(request.id, { channelId: request.channelId, channel, events: undefined })
        let subscribers = state.stateSubscribers.get(channel.robot)
        if (subscribers === undefined) state.stateSubscribers.set(channel.robot, subscribers = new Set())
        subscribers.add(request.id)
        const latest = catalog.robots.get(channel.robot)?.latest
        if (latest !== undefined) sendData(state, request.id, latest)
        return
      }
      const events = yield* PubSub.subscribeSink(
        options.hub,
        options.eventsTopic(channel.robot),
        ctx.self,
        guarded(state, (message) => sendData(state, request.id, Catalog.eventPayload(message))),
        sinkOptions
      )
      state.subscriptions.set(request.id, { channelId: request.channelId, channel, events })
    })

  const unsubscribe = (state: ConnectionState, id: number): Effect.Effect<void> => {
    const subscription = state.subscriptions.get(id)
    if (subscription === undefined) return Effect.void
    state.subscriptions.delete(id)
    const subscribers = state.stateSubscribers.get(subscription.channel.robot)
    subscribers?.delete(id)
    if (subscribers?.size === 0) state.stateSubscribers.delete(subscription.channel.robot)
    return subscription.events?.unsubscribe ?? Effect.void
  }

  return {
    name: "foxglove_connection",
    shutdown: "3 seconds",
    init: (ctx): Effect.Effect<ConnectionState, Error, Scope.Scope> =>
      Effect.gen(function*() {
        let state: ConnectionState | undefined
        const socket = yield* Effect.acquireRelease(Effect.suspend(options.upgrade), (socket) =>
          Effect.suspend(() => {
            const close = state?.close ?? { code: CloseCode.GoingAway, reason: "Server shutting down" }
            return Connections.closeSocket(socket, close.code, close.reason, 1000)
          }))
        state = {
          id: options.id,
          address: options.address,
          protocol: options.subprotocol,
          connectedAt: Date.now(),
          socket,
          advertised: new Set(),
          subscriptions: new Map(),
          stateSubscribers: new Map(),
          close: undefined
        }
        const self = ctx.self
        socket.on("message", (data: Buffer, isBinary) => {
          if (!self.unsafeTell(isBinary ? { _tag: "BinaryFrame" } : { _tag: "Frame", text: data.toString("utf8") })) {
            self.unsafeTellUrgent({ _tag: "Flooded" })
          }
        })
        socket.once("close", () => self.unsafeTellUrgent({ _tag: "SocketClosed" }))
        socket.on("error", () => {})

        // Pinged with the endpoint's other connections on one timer; a ping unanswered for an interval ends it.
        const beat: Heartbeat.Member = {
          prevBeat: undefined,
          nextBeat: undefined,
          pingRound: 0,
          socket,
          timedOut: () => self.unsafeTellUrgent({ _tag: "HeartbeatTimeout" })
        }
        socket.on("pong", () => {
          beat.pingRound = 0
        })
        const heartbeat = heartbeatOf(settings)
        heartbeat.join(beat)
        yield* Effect.addFinalizer(() => Effect.sync(() => heartbeat.leave(beat)))

        sendText(
          state,
          Wire.serverInfo({
            name: settings.name,
            sessionId: settings.sessionId,
            metadata: { protocol: options.subprotocol }
          })
        )
        // Subscribed before the catalog is read: a robot appearing in between is advertised by the sink.
        yield* PubSub.subscribeSink(options.hub, options.viewsTopic, self, guarded(state, onUpdate(state)), sinkOptions)
        advertiseNew(state, catalog.robots.values())
        return state
      }),

    receive: (state, message, ctx) => {
      switch (message._tag) {
        case "BinaryFrame":
          sendText(state, Wire.status("error", binaryRefused))
          return state
        case "Frame": {
          const request = Wire.parseClient(message.text)
          if (Either.isLeft(request)) {
            sendText(state, Wire.status("error", request.left))
            return state
          }
          const r = request.right
          return Effect.as(
            r.op === "subscribe"
              ? Effect.forEach(r.subscriptions, (s) => subscribe(state, s, ctx), { discard: true })
              : Effect.forEach(r.subscriptionIds, (id) => unsubscribe(state, id), { discard: true }),
            state
          )
        }
        case "SocketClosed":
          ctx.stop(ExitReason.normal)
          return state
        case "Flooded":
          state.close = { code: CloseCode.PolicyViolation, reason: "Too many messages" }
          ctx.stop(ExitReason.normal)
          return state
        case "HeartbeatTimeout":
          state.socket.terminate()
          ctx.stop(ExitReason.shutdown("heartbeat timeout"))
          return state
        case "GoAway":
          state.close = { code: CloseCode.GoingAway, reason: "Server shutting down" }
          ctx.stop(ExitReason.shutdown("endpoint closing"))
          return state
        case "Revoke":
          state.close = { code: message.code, reason: message.reason }
          ctx.stop(ExitReason.normal)
          return state
      }
    },

    terminate: (state, reason) => {
      state.close ??= closeFor(reason)
      return Effect.annotateLogs(Effect.logDebug("foxglove connection ended"), {
        connection: state.id,
        address: state.address,
        reason: ExitReason.format(reason),
        seconds: Math.round((Date.now() - state.connectedAt) / 1000)
      })
    }
  }
}
