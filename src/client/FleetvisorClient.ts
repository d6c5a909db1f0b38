/**
 * The typed client of a fleetvisor server, for browser pages (native WebSocket) and Node (`ws`).
 *
 * It opens `ws(s)://host/ws` offering the current subprotocol of the chosen wire format, speaks
 * @effect/rpc over it, reconnects with a jittered exponential backoff, and reports the socket's
 * state as a stream. Calls made while the socket is down fail with `RpcClientError`; streams
 * fail the same way when it drops, and `resubscribe` restarts them once it is open again (the
 * canvas and fleet streams begin with a snapshot, so nothing is missed). When the server refuses
 * the version, the state becomes `Refused`, reconnecting stops and `ready` fails with
 * `VersionRefused`: the page should ask the user to reload.
 *
 * Provide a `Socket.WebSocketConstructor`: `Socket.layerWebSocketConstructorGlobal` from
 * `@effect/platform` in browsers, `NodeSocket.layerWebSocketConstructor` from
 * `@effect/platform-node` in Node.
 *
 * @since 0.1.0
 */
import * as Socket from "@effect/platform/Socket"
import type * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as CloseCode from "../protocol/CloseCode.js"
import { FleetvisorRpcs } from "../protocol/FleetvisorRpcs.js"
import * as Subprotocol from "../protocol/Subprotocol.js"
import * as WireCodec from "../protocol/WireCodec.js"
import * as ConnectionState from "./ConnectionState.js"

/** Options of a client. */
export interface Options {
  /** The server's endpoint, `ws(s)://host/ws`. */
  readonly url: string
  /** The wire format; MessagePack by default (JSON is handy to read frames in devtools). */
  readonly wire?: Subprotocol.WireFormat | undefined
  /** Reconnect backoff: 250 ms doubling up to 10 s by default, ±20% jitter. */
  readonly reconnect?: {
    readonly initialDelay?: Duration.DurationInput | undefined
    readonly maxDelay?: Duration.DurationInput | undefined
  } | undefined
  /** How long an opening socket may take; 10 s by default. */
  readonly openTimeout?: Duration.DurationInput | undefined
  /** Turns off client spans, and the trace ids they add to every request. */
  readonly disableTracing?: boolean | undefined
  /**
   * The access token (`AUTH=tokens` or `jwt`), sent as a `fleetvisor.bearer.<token>` subprotocol
   * entry, which the server strips; a page signed in through `/login` needs none (its cookie goes).
   */
  readonly token?: string | undefined
}

/** A connected client of an RPC group. */
export interface Client<Rpcs extends Rpc.Any> {
  /** The typed RPCs: `client.rpc.CanvasPlace({ x, y, color })`. */
  readonly rpc: RpcClient.RpcClient<Rpcs, RpcClientError>
  /** The subprotocol the client offers. */
  readonly subprotocol: Subprotocol.Subprotocol
  /** The socket's state: the current one, then every change. */
  readonly state: Stream.Stream<ConnectionState.ConnectionState>
  /** Waits until the socket is open; fails if the server refuses the version. */
  readonly ready: Effect.Effect<void, Subprotocol.VersionRefused>
  /** Restarts `stream` whenever it fails with `RpcClientError`, once the socket is open again. */
  readonly resubscribe: <A, E, R>(
    stream: Stream.Stream<A, E | RpcClientError, R>
  ) => Stream.Stream<A, Exclude<E, RpcClientError> | Subprotocol.VersionRefused, R>
}

const reconnectSchedule = (options: Options["reconnect"]) =>
  Schedule.exponential(options?.initialDelay ?? "250 millis", 2).pipe(
    Schedule.union(Schedule.spaced(options?.maxDelay ?? "10 seconds")),
    Schedule.jittered,
    Schedule.resetAfter("1 minute"),
    Schedule.whileInput((error: Socket.SocketError) =>
      !(Socket.SocketCloseError.is(error) && error.code === CloseCode.VersionRefused)
    )
  )

const stateAfter = (exit: Exit.Exit<void, unknown>): ConnectionState.ConnectionState => {
  if (Exit.isSuccess(exit)) return ConnectionState.Closed({ code: CloseCode.Normal, reason: "" })
  const error = Cause.failureOption(exit.cause)
  if (Option.isSome(error) && Socket.SocketCloseError.is(error.value)) {
    const { closeReason = "", code } = error.value
    return code === CloseCode.VersionRefused
      ? ConnectionState.Refused({ code, reason: closeReason })
      : ConnectionState.Closed({ code, reason: closeReason })
  }
  if (Option.isSome(error) && Socket.isSocketError(error.value)) {
    return ConnectionState.Closed({ code: 1006, reason: `Could not connect (${error.value.reason})` })
  }
  return ConnectionState.Closed({ code: 1006, reason: "Connection lost" })
}

// Reports every run of the socket as states, and hands binary frames over as Uint8Array.
const reportingState = (
  socket: Socket.Socket,
  subprotocol: Subprotocol.Subprotocol,
  report: (state: ConnectionState.ConnectionState) => Effect.Effect<void>
): Socket.Socket => {
  let attempt = 0
  const runRaw: Socket.Socket["runRaw"] = (handler, options) =>
    Effect.suspend(() => report(ConnectionState.Connecting({ attempt: ++attempt }))).pipe(
      Effect.zipRight(
        socket.runRaw(
          (data) => handler((data as unknown) instanceof ArrayBuffer ? new Uint8Array(data as unknown as ArrayBuffer) : data),
          {
            onOpen: Effect.suspend(() => {
              attempt = 0
              return report(ConnectionState.Open({ subprotocol: subprotocol.name }))
            }).pipe(Effect.zipRight(options?.onOpen ?? Effect.void))
          }
        )
      ),
      Effect.onExit((exit) => report(stateAfter(exit)))
    )
  return { ...socket, runRaw }
}

/** Connects a client of any RPC group (an older or newer definition than the current one, in tests). */
export const makeWith = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options: Options
): Effect.Effect<Client<Rpcs>, never, Scope.Scope | Socket.WebSocketConstructor | Rpc.MiddlewareClient<Rpcs>> =>
  Effect.gen(function*() {
    const subprotocol = Subprotocol.current(options.wire ?? "msgpack")
    const state = yield* SubscriptionRef.make<ConnectionState.ConnectionState>(
      ConnectionState.Connecting({ attempt: 1 })
    )
    const construct = yield* Socket.WebSocketConstructor
    const socket = yield* Socket.makeWebSocket(options.url, {
      protocols: options.token === undefined ? [subprotocol.name] : [subprotocol.name, `${Subprotocol.bearerPrefix}${options.token}`],
      closeCodeIsError: () => true,
      openTimeout: options.openTimeout
    }).pipe(
      Effect.provideService(Socket.WebSocketConstructor, (url, protocols) => {
        const webSocket = construct(url, protocols)
        webSocket.binaryType = "arraybuffer"
        return webSocket
      })
    )
    const protocol = yield* RpcClient.makeProtocolSocket({ retrySchedule: reconnectSchedule(options.reconnect) }).pipe(
      Effect.provideService(Socket.Socket, reportingState(socket, subprotocol, (next) => SubscriptionRef.set(state, next))),
      Effect.provideService(RpcSerialization.RpcSerialization, WireCodec.of(subprotocol.wire).serialization)
    )
    const rpc = yield* RpcClient.make(group, { disableTracing: options.disableTracing }).pipe(
      // The server does not wait for acks (see RpcBridge), so the client sends none.
      Effect.provideService(RpcClient.Protocol, { ...protocol, supportsAck: false })
    )

    const ready: Effect.Effect<void, Subprotocol.VersionRefused> = state.changes.pipe(
      Stream.filter((current) => current._tag === "Open" || current._tag === "Refused"),
      Stream.runHead,
      Effect.flatMap(Option.match({
        onNone: () => Effect.never,
        onSome: (current) =>
          current._tag === "Refused"
            ? Effect.fail(
              new Subprotocol.VersionRefused({ code: current.code, reason: current.reason, offered: [subprotocol.name] })
            )
            : Effect.void
      }))
    )

    const resubscribe = <A, E, R>(
      stream: Stream.Stream<A, E | RpcClientError, R>
    ): Stream.Stream<A, Exclude<E, RpcClientError> | Subprotocol.VersionRefused, R> => {
      const subscribed: Stream.Stream<A, Exclude<E, RpcClientError> | Subprotocol.VersionRefused, R> = Stream.unwrap(
        Effect.as(ready, stream)
      ).pipe(
        Stream.catchAll((error) =>
          error instanceof RpcClientError
            ? Stream.unwrap(Effect.as(Effect.sleep("100 millis"), subscribed))
            : Stream.fail(error as Exclude<E, RpcClientError> | Subprotocol.VersionRefused)
        )
      )
      return subscribed
    }

    return { rpc, subprotocol, state: state.changes, ready, resubscribe }
  })

/** The client of the current fleetvisor RPCs. */
export class FleetvisorClient extends Context.Tag("fleetvisor/client/FleetvisorClient")<
  FleetvisorClient,
  Client<RpcGroup.Rpcs<typeof FleetvisorRpcs>>
>() {}

/** Connects a client of the current fleetvisor RPCs; it disconnects when the scope closes. */
export const make = (
  options: Options
): Effect.Effect<FleetvisorClient["Type"], never, Scope.Scope | Socket.WebSocketConstructor> =>
  makeWith(FleetvisorRpcs, options)

/** A layer of the client. */
export const layer = (options: Options): Layer.Layer<FleetvisorClient, never, Socket.WebSocketConstructor> =>
  Layer.scoped(FleetvisorClient, make(options))
