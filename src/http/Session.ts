/**
 * One WebSocket client as an actor, a child of `gateway/sessions` registered as `session:<id>`.
 *
 * The actor completes the upgrade in its `init`, so the socket is its resource from the first
 * byte: it lives in the actor's scope, is plugged into the `RpcBridge` there, and whatever ends
 * the actor (the peer closing, a network cut caught by the heartbeat, a flood, a crash, the
 * server shutting down) closes it, unplugs its requests and streams, and drops its Registry
 * entry. Nothing else keeps a list of sessions.
 *
 * Its state is the session's: who it is, the protocol version it speaks, its flood limit
 * (`TokenBucket`) and the frames that limit holds back.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import type { WebSocket } from "ws"
import type * as Actor from "../actors/Actor.js"
import * as ExitReason from "../actors/ExitReason.js"
import * as CloseCode from "../protocol/CloseCode.js"
import type * as RpcBridge from "../protocol/RpcBridge.js"
import type * as Subprotocol from "../protocol/Subprotocol.js"
import type { GatewayMetrics } from "./GatewayMetrics.js"
import * as TokenBucket from "./TokenBucket.js"

/** What a session accepts: its socket's events, and the gateway's requests. */
export type SessionMessage =
  | { readonly _tag: "Frame"; readonly data: string | Uint8Array }
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

/** Limits of every session. */
export interface SessionLimits {
  readonly rateLimit: { readonly perSecond: number; readonly burst: number }
  readonly heartbeatIntervalMs: number
  readonly heartbeatTimeoutMs: number
  /**
   * Bytes a session may have queued unsent before it counts as too slow and is closed with
   * 1008: 4 MiB is seconds of canvas updates; a client that far behind will not catch up.
   */
  readonly maxBufferedBytes: number
}

/** A session as the RPC handlers find it from their `clientId`. */
export interface SessionClient {
  /** The session actor: its exit ends everything the client subscribed to. */
  readonly owner: Actor.ActorContext<SessionMessage>["self"]
  readonly socket: WebSocket
}

/** What one session needs from the gateway. */
export interface SessionOptions {
  readonly id: string
  /** Who the client is, read from the upgrade request (which the session does not keep). */
  readonly who: SessionState["who"]
  readonly subprotocol: Subprotocol.Subprotocol
  /** Completes the WebSocket handshake; fails if the socket goes away first. Called once. */
  readonly upgrade: () => Effect.Effect<WebSocket, Error>
  readonly bridge: RpcBridge.RpcBridge["Type"]
  readonly metrics: GatewayMetrics
  readonly limits: SessionLimits
  /** Headers every request of the session carries besides `x-session-id` and `x-remote-address` (e.g. the user). */
  readonly headers: ReadonlyArray<readonly [string, string]>
  /** The node's sessions by bridge client id; the session is in it while it lives. */
  readonly clients: Map<number, SessionClient>
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
  readonly bucket: TokenBucket.TokenBucket
  /** Frames held back by the throttle, oldest first. */
  readonly held: Array<string | Uint8Array>
  /** When the held frames are released. */
  releaseTimer: ReturnType<typeof setTimeout> | undefined
  /** How the socket is closed when the actor stops, unless it is closed already. */
  close: { code: number; reason: string } | undefined
  /** Why the session ended, for `fleetvisor_sessions_ended_total`. */
  ended: string | undefined
}

const closeAndWait = (socket: WebSocket, code: number, reason: string, waitMs: number) =>
  Effect.async<void>((resume) => {
    if (socket.readyState === socket.CLOSED) return resume(Effect.void)
    const done = () => {
      clearTimeout(timer)
      resume(Effect.void)
    }
    const timer = setTimeout(() => {
      socket.terminate()
      done()
    }, waitMs)
    socket.once("close", done)
    if (socket.readyState === socket.OPEN) socket.close(code, reason)
    return Effect.sync(() => socket.off("close", done))
  })

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

const release = (state: SessionState): void => {
  const frames = state.held.splice(0)
  for (const frame of frames) state.connection.onFrame(frame)
  if (state.socket.isPaused) state.socket.resume()
}

const flooded = (
  options: SessionOptions,
  state: SessionState,
  ctx: Actor.ActorContext<SessionMessage>
): SessionState => {
  if (state.ended === "flood") return state
  options.metrics.rejected("flood")
  state.ended = "flood"
  const { burst, perSecond } = options.limits.rateLimit
  state.close = {
    code: CloseCode.PolicyViolation,
    reason: CloseCode.reason(`Too many frames: the limit is ${perSecond}/s with bursts of ${burst}`)
  }
  ctx.stop(ExitReason.normal)
  return state
}

/**
 * The behaviour of one session.
 *
 * Its functions are methods, and its finalizers go straight to the scope: tens of thousands of
 * idle sessions are mostly these objects. (Under tsx, esbuild's `keepNames` gives every arrow
 * function with an inferred name its own property table; methods keep their names for free.
 * `Effect.addFinalizer` and `acquireRelease` keep a copy of the fiber's refs per finalizer,
 * which these plain finalizers do not need.)
 */
export const make = (options: SessionOptions): Actor.Behaviour<SessionMessage, SessionState> => {
  return {
    name: "session",
    // Closing waits at most a second for the peer's close frame.
    shutdown: "3 seconds",
    init(ctx): Effect.Effect<SessionState, Error, Scope.Scope> {
      return Effect.gen(function*() {
        const { limits, metrics } = options
        const scope = yield* Effect.scope
        let state: SessionState | undefined
        const socket = yield* Effect.uninterruptible(Effect.tap(Effect.suspend(options.upgrade), (socket) =>
          Scope.addFinalizer(
            scope,
            Effect.suspend(() => {
              const close = state?.close ?? { code: CloseCode.GoingAway, reason: "Server shutting down" }
              return closeAndWait(socket, close.code, close.reason, 1000)
            })
          )))
        const connection = yield* options.bridge.connect({
          wire: options.subprotocol.wire,
          // `concat` allocates the exact length; a spread leaves room to grow in every session.
          headers: ([
            ["x-session-id", options.id],
            ["x-remote-address", options.who.address]
          ] as Array<readonly [string, string]>).concat(options.headers),
          send(frame) {
            if (socket.readyState !== socket.OPEN) return metrics.dropped("closed")
            if (socket.bufferedAmount > limits.maxBufferedBytes) {
              metrics.dropped("slow_consumer")
              if (state !== undefined) state.ended = "slow_consumer"
              return socket.close(CloseCode.PolicyViolation, "Too slow: frames are queued faster than you read them")
            }
            metrics.traffic.framesOut++
            metrics.traffic.bytesOut += typeof frame === "string" ? Buffer.byteLength(frame) : frame.length
            socket.send(frame)
          },
          close(code, reason) {
            socket.close(code, reason)
          }
        })
        options.clients.set(connection.clientId, { owner: ctx.self, socket })
        state = {
          id: options.id,
          who: options.who,
          protocol: options.subprotocol.name,
          connectedAt: Date.now(),
          clientId: connection.clientId,
          socket,
          connection,
          bucket: TokenBucket.make(limits.rateLimit, Date.now()),
          held: [],
          releaseTimer: undefined,
          close: undefined,
          ended: undefined
        }

        const self = ctx.self
        socket.on("message", (data: Buffer, isBinary) => {
          metrics.traffic.framesIn++
          metrics.traffic.bytesIn += data.length
          // A full mailbox means the client sends far beyond its throttle: a flood.
          if (!self.unsafeTell({ _tag: "Frame", data: isBinary ? data : data.toString("utf8") })) {
            self.unsafeTellUrgent({ _tag: "Flooded" })
          }
        })
        socket.once("close", (code) => self.unsafeTellUrgent({ _tag: "SocketClosed", code }))
        socket.on("error", (error: Error & { code?: string }) => {
          if (error.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") {
            metrics.rejected("too_big")
            if (state !== undefined) state.ended = "too_big"
          } else if (state !== undefined) state.ended ??= "protocol_error"
        })

        let pongTimer: ReturnType<typeof setTimeout> | undefined
        socket.on("pong", () => {
          clearTimeout(pongTimer)
          pongTimer = undefined
        })
        const pinger = setInterval(() => {
          if (socket.readyState !== socket.OPEN || pongTimer !== undefined) return
          socket.ping()
          pongTimer = setTimeout(() => self.unsafeTellUrgent({ _tag: "HeartbeatTimeout" }), limits.heartbeatTimeoutMs)
        }, limits.heartbeatIntervalMs)
        yield* Scope.addFinalizer(
          scope,
          Effect.sync(() => {
            options.clients.delete(connection.clientId)
            clearInterval(pinger)
            clearTimeout(pongTimer)
            clearTimeout(state?.releaseTimer)
          })
        )
        return state
      })
    },

    receive(state, message, ctx) {
      switch (message._tag) {
        case "Frame": {
          const verdict = state.bucket.take(Date.now())
          if (verdict._tag === "Accept" && state.held.length === 0) {
            state.connection.onFrame(message.data)
            return state
          }
          if (verdict._tag === "Flood") return flooded(options, state, ctx)
          state.held.push(message.data)
          if (verdict._tag === "Throttle") options.metrics.rejected("throttled")
          if (!state.socket.isPaused) {
            state.socket.pause()
            const self = ctx.self
            state.releaseTimer = setTimeout(() => self.unsafeTellUrgent({ _tag: "Release" }), state.bucket.delayMs(Date.now()))
          }
          return state
        }
        case "Flooded":
          return flooded(options, state, ctx)
        case "Release": {
          const wait = state.bucket.delayMs(Date.now())
          if (wait > 0) {
            const self = ctx.self
            state.releaseTimer = setTimeout(() => self.unsafeTellUrgent({ _tag: "Release" }), wait)
          } else {
            release(state)
          }
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
          state.close = { code: CloseCode.GoingAway, reason: "Server shutting down" }
          ctx.stop(ExitReason.shutdown("server shutting down"))
          return state
      }
    },

    terminate(state, reason) {
      state.close ??= closeFor(reason)
      const ended = state.ended ?? endedFor(reason)
      options.metrics.sessionEnded(ended)
      return Effect.annotateLogs(Effect.logDebug("session ended"), {
        session: state.id,
        address: state.who.address,
        reason: ended,
        seconds: Math.round((Date.now() - state.connectedAt) / 1000)
      })
    }
  }
}
