/**
 * One WebSocket client as an actor, a child of `gateway/sessions` registered as `session:<id>`.
 *
 * The actor completes the upgrade in its `init`, so the socket is its resource from the first
 * byte: it lives in the actor's scope, is plugged into the `RpcBridge` there, and whatever ends
 * the actor (the peer closing, a network cut caught by the heartbeat, a flood, a crash, the
 * server shutting down) closes it, unplugs its requests and streams, and drops its Registry
 * entry. Nothing else keeps a list of sessions but the heartbeat, which a session leaves as it ends.
 *
 * It is also its requests' `Caller` (its id, its actor, its user and roles, its address and
 * backlog): the bridge provides it to the RPC handlers, which need no header or lookup to find it.
 *
 * Its state is the session's: who it is, the protocol version it speaks, its flood limit
 * (`TokenBucket`) and the frames that limit holds back.
 *
 * Limits count work, not frames: a frame is decoded (by the bridge) as it arrives, and takes one
 * token per message it carries. A frame of more messages than `RATE_LIMIT_BURST` closes the
 * session with 1008 at once (the bridge's `TooManyRequests`); the bridge also refuses a request
 * past `maxRequestsInFlight` or a stream past `maxStreams` (`Overloaded`), and the session stays.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import type { Duplex } from "node:stream"
import type { WebSocket } from "ws"
import type * as Actor from "../actors/Actor.js"
import * as ExitReason from "../actors/ExitReason.js"
import * as CloseCode from "../protocol/CloseCode.js"
import * as Priority from "../protocol/Priority.js"
import type * as RpcBridge from "../protocol/RpcBridge.js"
import type * as Subprotocol from "../protocol/Subprotocol.js"
import type * as Caller from "../protocol/Caller.js"
import type * as Authenticator from "./Authenticator.js"
import * as Connections from "./Connections.js"
import type { GatewayMetrics } from "./GatewayMetrics.js"
import * as Heartbeat from "./Heartbeat.js"
import * as TokenBucket from "./TokenBucket.js"
import * as WebSocketFrame from "./WebSocketFrame.js"
import * as WriteBatch from "./WriteBatch.js"

/** What a session accepts: its socket's events, and the gateway's requests. */
export type SessionMessage =
  | { readonly _tag: "Frame"; readonly data: string | Uint8Array; readonly urgent?: true }
  /** The throttle delay is over: handle the frames held back. */
  | { readonly _tag: "Release" }
  /** The socket closed (the peer closed it, or the network did). */
  | { readonly _tag: "SocketClosed"; readonly code: number }
  /** The mailbox refused a frame. */
  | { readonly _tag: "Flooded" }
  /** No pong within the heartbeat timeout. */
  | { readonly _tag: "HeartbeatTimeout" }
  /** The server is going away: close with 1001 now. */
  | { readonly _tag: "GoAway" }
  /** The user's access ended (revoked, expired): close with `code` (4401) now. */
  | { readonly _tag: "Revoke"; readonly code: number; readonly reason: string }

/** Limits of every session. */
export interface SessionLimits {
  /** Requests a second on average, and at once (a frame of more closes the session with 1008). */
  readonly rateLimit: { readonly perSecond: number; readonly burst: number }
  /** Requests answered once that a session may have unanswered; past it a request is refused (`Overloaded`). */
  readonly maxRequestsInFlight: number
  /** Streams a session may have open; past it a streaming request is refused (`Overloaded`). */
  readonly maxStreams: number
  readonly heartbeatIntervalMs: number
  readonly heartbeatTimeoutMs: number
  /**
   * Bytes a session may have queued unsent before it counts as too slow and is closed with
   * 1008: 4 MiB is seconds of canvas updates; a client that far behind will not catch up.
   */
  readonly maxBufferedBytes: number
}

/** What one session needs from the gateway. */
export interface SessionOptions {
  readonly id: string
  /** Who the client is, read from the upgrade request (which the session does not keep). */
  readonly who: SessionState["who"]
  readonly subprotocol: Subprotocol.Subprotocol
  /** Completes the WebSocket handshake; fails if the socket goes away first. Called once. */
  readonly upgrade: () => Effect.Effect<WebSocket, Error>
  /** The connection being upgraded; frames written to it in one turn of the event loop leave together. */
  readonly transport: Duplex
  readonly bridge: RpcBridge.RpcBridge["Type"]
  readonly metrics: GatewayMetrics
  readonly limits: SessionLimits
  /** Who the user is, as the listener authenticated them. */
  readonly identity: Authenticator.Identity
}

/** A session's state, as `getState` and the admin view see it. */
export interface SessionState {
  readonly id: string
  /** The client's address and user agent. */
  readonly who: { readonly address: string; readonly userAgent: string | undefined }
  readonly protocol: string
  readonly connectedAt: number
  /** The bridge's client id, which RPC handlers see. */
  readonly clientId: number
  readonly socket: WebSocket
  readonly connection: RpcBridge.Connection
  /** The flood limit, made at the first frame (a full bucket then, as it would be after any idle time). */
  readonly bucket: TokenBucket.TokenBucket | undefined
  /** The messages of the frames held back by the throttle, oldest first (made when the first one is). */
  readonly held: Array<RpcBridge.Decoded> | undefined
  /** When the held frames are released. */
  readonly releaseTimer: ReturnType<typeof setTimeout> | undefined
  /** How the socket is closed when the actor stops, unless it is closed already. */
  readonly closeWith: { readonly code: number; readonly reason: string } | undefined
  /** Why the session ended, for `fleetvisor_sessions_ended_total`. */
  readonly ended: string | undefined
}

const closeFor = (reason: ExitReason.ExitReason): { code: number; reason: string } => {
  switch (reason._tag) {
    case "Normal":
      return { code: CloseCode.Normal, reason: "" }
    case "Shutdown":
    case "Killed":
      return { code: CloseCode.GoingAway, reason: "Server shutting down" }
    case "Failure":
      return { code: CloseCode.InternalError, reason: "Session failed; reconnect" }
  }
}

const endedFor = (reason: ExitReason.ExitReason): string => {
  switch (reason._tag) {
    case "Normal":
      return "closed"
    case "Shutdown":
      return "shutdown"
    case "Killed":
      return "killed"
    case "Failure":
      return "crash"
  }
}

const goingAway = { code: CloseCode.GoingAway, reason: "Server shutting down" } as const
/** Urgent frames a session may have on its urgent lane at once; more wait in its mailbox like any frame. */
const maxExpedited = 2

const releaseMessage: SessionMessage = { _tag: "Release" }
const floodedMessage: SessionMessage = { _tag: "Flooded" }
const heartbeatTimeout: SessionMessage = { _tag: "HeartbeatTimeout" }

/** The property of a `ws` socket that leads its event listeners (shared functions) to its session. */
const sessionOf = Symbol.for("fleetvisor/http/Session")

interface SessionSocket extends WebSocket {
  [sessionOf]?: Session
}

function onMessage(this: SessionSocket, data: Buffer, isBinary: boolean): void {
  const session = this[sessionOf]!
  const traffic = session.metrics.traffic
  traffic.framesIn++
  traffic.bytesIn += data.length
  const frame = isBinary ? data : data.toString("utf8")
  // An emergency stop overtakes the session's mail, and the session the other actors; a few at a time.
  if (session.expedited < maxExpedited && Priority.isUrgent(frame)) {
    session.expedited++
    session.owner.unsafeTellUrgent({ _tag: "Frame", data: frame, urgent: true })
    return
  }
  // A full mailbox means the client sends far beyond its throttle: a flood.
  if (!session.owner.unsafeTell({ _tag: "Frame", data: frame })) {
    session.owner.unsafeTellUrgent(floodedMessage)
  }
}

function onClose(this: SessionSocket, code: number): void {
  this[sessionOf]!.owner.unsafeTellUrgent({ _tag: "SocketClosed", code })
}

function onError(this: SessionSocket, error: Error & { code?: string }): void {
  const session = this[sessionOf]!
  if (error.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") {
    session.metrics.rejected("too_big")
    session.ended = "too_big"
  } else session.ended ??= "protocol_error"
}

function onPong(this: SessionSocket): void {
  this[sessionOf]!.pingRound = 0
}

/** The bridge's bounds of each set of limits (one per gateway). */
const requestLimits = new WeakMap<SessionLimits, RpcBridge.RequestLimits>()

const requestLimitsOf = (limits: SessionLimits): RpcBridge.RequestLimits => {
  let bounds = requestLimits.get(limits)
  if (bounds === undefined) {
    bounds = {
      maxPerFrame: limits.rateLimit.burst,
      maxInFlight: limits.maxRequestsInFlight,
      maxStreams: limits.maxStreams
    }
    requestLimits.set(limits, bounds)
  }
  return bounds
}

/** The heartbeat of a gateway's sessions (one per set of limits). */
const heartbeatOf = (limits: SessionLimits): Heartbeat.Heartbeat =>
  Heartbeat.of(limits, limits.heartbeatIntervalMs, limits.heartbeatTimeoutMs)

/**
 * One session: the actor's behaviour, and, once `init` has upgraded the socket, its state too
 * (a behaviour made for one socket, whose handshake it completes once). It is also the `Caller`
 * of its requests and the bridge's view of the socket (`send`, `close`), so that tens of
 * thousands of idle sessions are mostly one object each: the socket's listeners are functions
 * shared by all sessions, and whatever an idle session never uses (its flood limit, the frames
 * held back) is made when first needed.
 */
export class Session
  implements
    Actor.Behaviour<SessionMessage, Session>,
    SessionState,
    Caller.CallerInfo,
    RpcBridge.ConnectOptions,
    WriteBatch.Batched,
    Heartbeat.Member
{
  readonly id: string
  readonly who: SessionState["who"]
  readonly subprotocol: Subprotocol.Subprotocol
  readonly bridge: RpcBridge.RpcBridge["Type"]
  readonly metrics: GatewayMetrics
  readonly limits: SessionLimits
  readonly identity: Authenticator.Identity
  readonly transport: Duplex
  writesThisTurn = 0
  /** No extension was negotiated: frames can be written to the transport as `ws` would write them. */
  rawFrames = false
  /** Cleared once called: the handshake's inputs are not kept. */
  private upgrade: SessionOptions["upgrade"] | undefined
  owner: Actor.ActorContext<SessionMessage>["self"] = undefined as unknown as Actor.ActorContext<SessionMessage>["self"]
  socket: SessionSocket = undefined as unknown as SessionSocket
  connection: RpcBridge.Connection = undefined as unknown as RpcBridge.Connection
  connectedAt = 0
  bucket: TokenBucket.TokenBucket | undefined = undefined
  held: Array<RpcBridge.Decoded> | undefined = undefined
  /** Urgent frames on the urgent lane, not yet handled. */
  expedited = 0
  releaseTimer: ReturnType<typeof setTimeout> | undefined = undefined
  closeWith: { readonly code: number; readonly reason: string } | undefined = undefined
  ended: string | undefined = undefined
  /** The heartbeat round of the unanswered ping, 0 when none is (`Heartbeat.Member`). */
  pingRound = 0
  prevBeat: Heartbeat.Member | undefined = undefined
  nextBeat: Heartbeat.Member | undefined = undefined

  constructor(options: SessionOptions) {
    this.id = options.id
    this.who = options.who
    this.subprotocol = options.subprotocol
    this.bridge = options.bridge
    this.metrics = options.metrics
    this.limits = options.limits
    this.identity = options.identity
    this.upgrade = options.upgrade
    this.transport = options.transport
  }

  get name(): string {
    return "session"
  }

  /** Closing waits at most a second for the peer's close frame. */
  get shutdown(): Actor.ShutdownPolicy {
    return "3 seconds"
  }

  get protocol(): string {
    return this.subprotocol.name
  }

  get clientId(): number {
    return this.connection === undefined ? -1 : this.connection.clientId
  }

  // RpcBridge.ConnectOptions

  get wire(): Subprotocol.WireFormat {
    return this.subprotocol.wire
  }

  get requestLimits(): RpcBridge.RequestLimits {
    return requestLimitsOf(this.limits)
  }

  get caller(): Caller.CallerInfo {
    return this
  }

  // Caller.CallerInfo

  get session(): string {
    return this.id
  }

  get user(): string {
    return this.identity.user
  }

  get roles(): ReadonlyArray<string> | undefined {
    return this.identity.via === "none" ? undefined : this.identity.roles
  }

  get expiresAt(): number | undefined {
    return this.identity.expiresAt
  }

  get address(): string {
    return this.who.address
  }

  backlog(): number {
    return this.socket.bufferedAmount
  }

  send(frame: string | Uint8Array): void {
    const socket = this.socket
    if (socket.readyState !== socket.OPEN) return this.metrics.dropped("closed")
    if (socket.bufferedAmount > this.limits.maxBufferedBytes) {
      this.metrics.dropped("slow_consumer")
      this.ended = "slow_consumer"
      return socket.close(CloseCode.PolicyViolation, "Too slow: frames are queued faster than you read them")
    }
    const traffic = this.metrics.traffic
    traffic.framesOut++
    traffic.bytesOut += typeof frame === "string" ? Buffer.byteLength(frame) : frame.length
    WriteBatch.beforeWrite(this)
    if (this.rawFrames) this.transport.write(WebSocketFrame.of(frame))
    else socket.send(frame)
  }

  timedOut(): void {
    this.owner.unsafeTellUrgent(heartbeatTimeout)
  }

  close(code: number, reason: string): void {
    // The bridge closes with 1008 a frame of more requests than the burst.
    if (code === CloseCode.PolicyViolation) this.ended ??= "flood"
    this.socket.close(code, reason)
  }

  // Actor.Behaviour

  init(ctx: Actor.ActorContext<SessionMessage>): Effect.Effect<Session, Error, Scope.Scope> {
    const upgrade = this.upgrade
    this.upgrade = undefined
    if (upgrade === undefined) return Effect.fail(new Error("a session's handshake is completed once"))
    this.owner = ctx.self
    return Effect.flatMap(Effect.scope, (scope) =>
      Effect.uninterruptible(Effect.flatMap(upgrade(), (socket) => {
        this.socket = socket
        this.socket[sessionOf] = this
        this.rawFrames = socket.extensions === ""
        // The one finalizer of the session undoes whatever part of what follows was done.
        return Effect.zipRight(
          Scope.addFinalizerExit(scope, finalizerOf(this)),
          Effect.map(this.bridge.connectUnscoped(this), (connection) => this.connected(connection))
        )
      })))
  }

  receive(state: Session, message: SessionMessage, ctx: Actor.ActorContext<SessionMessage>): Session {
    switch (message._tag) {
      case "Frame": {
        if (message.urgent === true) state.expedited--
        // Decoded as it comes (it is decoded once either way), so that it is counted by its requests.
        const messages = state.connection.decode(message.data)
        if (messages === undefined) return state
        state.metrics.traffic.requestsIn += messages.length
        const now = Date.now()
        const bucket = (state.bucket ??= TokenBucket.make(state.limits.rateLimit, now))
        const verdict = bucket.take(now, messages.length > 1 ? messages.length : 1)
        if (verdict._tag === "Accept" && (state.held === undefined || state.held.length === 0)) {
          state.connection.deliver(messages)
          return state
        }
        if (verdict._tag === "Flood") return state.flooded(ctx)
        ;(state.held ??= []).push(messages)
        if (verdict._tag === "Throttle") state.metrics.rejected("throttled")
        if (!state.socket.isPaused) {
          state.socket.pause()
          state.releaseLater(ctx, bucket.delayMs(now))
        }
        return state
      }
      case "Flooded":
        return state.flooded(ctx)
      case "Release": {
        const wait = state.bucket!.delayMs(Date.now())
        if (wait > 0) state.releaseLater(ctx, wait)
        else state.releaseHeld()
        return state
      }
      case "SocketClosed":
        state.ended ??= "closed"
        ctx.stop(ExitReason.normal)
        return state
      case "HeartbeatTimeout":
        state.ended = "heartbeat"
        state.socket.terminate()
        ctx.stop(ExitReason.shutdown("heartbeat timeout"))
        return state
      case "GoAway":
        state.closeWith = goingAway
        ctx.stop(ExitReason.shutdown("server shutting down"))
        return state
      case "Revoke":
        state.closeWith = { code: message.code, reason: message.reason }
        state.ended = "revoked"
        ctx.stop(ExitReason.normal)
        return state
    }
  }

  terminate(state: Session, reason: ExitReason.ExitReason) {
    state.closeWith ??= closeFor(reason)
    const ended = state.ended ?? endedFor(reason)
    state.metrics.sessionEnded(ended)
    return Effect.annotateLogs(Effect.logDebug("session ended"), {
      session: state.id,
      address: state.who.address,
      reason: ended,
      seconds: Math.round((Date.now() - state.connectedAt) / 1000)
    })
  }

  private connected(connection: RpcBridge.Connection): Session {
    const socket = this.socket
    this.connection = connection
    this.connectedAt = Date.now()
    socket.on("message", onMessage)
    socket.on("close", onClose)
    socket.on("error", onError)
    socket.on("pong", onPong)
    heartbeatOf(this.limits).join(this)
    return this
  }

  private releaseLater(ctx: Actor.ActorContext<SessionMessage>, delayMs: number): void {
    const self = ctx.self
    this.releaseTimer = setTimeout(() => self.unsafeTellUrgent(releaseMessage), delayMs)
  }

  private releaseHeld(): void {
    const connection = this.connection
    for (const messages of this.held?.splice(0) ?? []) connection.deliver(messages)
    if (this.socket.isPaused) this.socket.resume()
  }

  private flooded(ctx: Actor.ActorContext<SessionMessage>): Session {
    if (this.ended === "flood") return this
    this.metrics.rejected("flood")
    this.ended = "flood"
    const { burst, perSecond } = this.limits.rateLimit
    this.closeWith = {
      code: CloseCode.PolicyViolation,
      reason: CloseCode.reason(`Too many requests: the limit is ${perSecond}/s with bursts of ${burst}`)
    }
    ctx.stop(ExitReason.normal)
    return this
  }

  /** Undoes `init`: leaves the heartbeat, unplugs the bridge, closes the socket. */
  release(): Effect.Effect<void> {
    const socket = this.socket
    heartbeatOf(this.limits).leave(this)
    clearTimeout(this.releaseTimer)
    const connection = this.connection
    const close = this.closeWith ?? goingAway
    const closeSocket = socket === undefined ? Effect.void : Connections.closeSocket(socket, close.code, close.reason, 1000)
    if (connection === undefined) return closeSocket
    return Effect.zipRight(connection.disconnect, closeSocket)
  }
}

/** The finalizer of a session's scope (made here, so that it keeps the session and nothing else). */
const finalizerOf = (session: Session) => () => session.release()

/**
 * The behaviour of one session, for one socket.
 *
 * Its functions are methods and its one finalizer goes straight to the scope: tens of thousands
 * of idle sessions are mostly these objects. (Under tsx, esbuild's `keepNames` gives every arrow
 * function with an inferred name its own property table; methods keep their names for free.
 * `Effect.addFinalizer` and `acquireRelease` keep a copy of the fiber's refs per finalizer,
 * which this plain finalizer does not need.)
 */
export const make = (options: SessionOptions): Actor.Behaviour<SessionMessage, Session> => new Session(options)
