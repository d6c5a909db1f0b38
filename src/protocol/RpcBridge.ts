/**
 * The server end of the `/ws` protocol, for a gateway that owns the sockets.
 *
 * One @effect/rpc `RpcServer` serves the whole node. Each socket plugs in with `connect` and
 * becomes one of its clients: the gateway feeds every frame it receives to `onFrame`, and the
 * bridge writes frames back through the `send` it was given. Handlers see the client as
 * `{ clientId, headers }`, and, when the socket connected with a `caller`, as the `Caller`
 * service of each of its requests (provided in the context its handlers run in).
 *
 * Streams that many clients share take a fast path: a handler returns `directStream(run)`, and
 * `run` gets a `ChunkWriter` for that one request. The application encodes each stream item once
 * (`SharedFrame.encodeOnce`) and hands the same frame to every writer, which splices its request
 * id in and writes straight to the socket. The client still sees an ordinary @effect/rpc stream;
 * when it cancels, `run` is interrupted.
 *
 * Bad input is reported to `onReject` and handled as `Rejection.closeCode` says. Frame size and
 * the rate limit are the gateway's; the work of one socket is bounded here, by the
 * `RequestLimits` it connects with: a frame of more messages than `maxPerFrame` closes the socket
 * with 1008 (`TooManyRequests`), and a request past `maxInFlight` requests or `maxStreams`
 * streams is refused at once (`Overloaded`, an `Exit` whose defect `Rejection.isOverloaded`
 * recognises) without reaching its handler. A gateway that throttles decodes a frame first
 * (`decode`), counts its messages, and hands them over when their turn comes (`deliver`).
 *
 * @since 0.1.0
 */
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import { type FromClientEncoded, type FromServerEncoded, ResponseDefectEncoded } from "@effect/rpc/RpcMessage"
import * as RpcSchema from "@effect/rpc/RpcSchema"
import * as RpcServer from "@effect/rpc/RpcServer"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as FiberMap from "effect/FiberMap"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import { globalValue } from "effect/GlobalValue"
import * as HashSet from "effect/HashSet"
import * as Layer from "effect/Layer"
import * as Mailbox from "effect/Mailbox"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { Caller, type CallerInfo } from "./Caller.js"
import * as ClientFrame from "./ClientFrame.js"
import * as CloseCode from "./CloseCode.js"
import * as Priority from "./Priority.js"
import * as Rejection from "./Rejection.js"
import * as SharedFrame from "./SharedFrame.js"
import type { WireFormat } from "./Subprotocol.js"
import * as WireCodec from "./WireCodec.js"

/** What the gateway gives the bridge for one accepted socket. */
export interface ConnectOptions {
  /** The wire format of the negotiated subprotocol. */
  readonly wire: WireFormat
  /** Writes one frame: a string as a text frame, bytes as a binary frame. Must not throw. */
  readonly send: (frame: string | Uint8Array) => void
  /** Closes the socket with a close code and reason. */
  readonly close: (code: number, reason: string) => void
  /**
   * Headers every request of this socket carries, e.g. the authenticated user. They override the
   * client's. Read at each request (a getter may make them at the first).
   */
  readonly headers?: ReadonlyArray<readonly [string, string]> | undefined
  /** The bounds of this socket's work, read once when it connects; none without them. */
  readonly requestLimits?: RequestLimits | undefined
  /** Who calls through this socket, provided to its handlers as `Caller`; read at its first message. */
  readonly caller?: CallerInfo | undefined
}

/** The bounds of one socket's work (each may be `Infinity`). */
export interface RequestLimits {
  /** Most messages one frame may carry; a frame of more closes the socket with 1008 (`TooManyRequests`). */
  readonly maxPerFrame: number
  /** Most requests answered once that may be unanswered at once; past it a request is refused (`Overloaded`). */
  readonly maxInFlight: number
  /** Most streams that may be open at once; past it a streaming request is refused (`Overloaded`). */
  readonly maxStreams: number
}

/** The client messages of one frame, decoded and checked, not yet handed over. */
export type Decoded = ReadonlyArray<FromClientEncoded>

/** One socket plugged into the bridge. */
export interface Connection {
  /** The RPC handlers' `clientId` for this socket. */
  readonly clientId: number
  /** Feeds one received frame: text frames as a string, binary frames as bytes (`deliver(decode(frame))`). */
  readonly onFrame: (frame: string | Uint8Array) => void
  /**
   * Decodes one received frame into its messages, or rejects it (reported, and the socket closed
   * as the rejection says): `undefined` then, and when the socket is unplugged.
   */
  readonly decode: (frame: string | Uint8Array) => Decoded | undefined
  /** Hands decoded messages to their handlers, in order; a request past a limit is refused instead. */
  readonly deliver: (messages: Decoded) => void
  /** Unplugs the socket and interrupts its running requests. Idempotent; runs when the `connect` scope closes. */
  readonly disconnect: Effect.Effect<void>
}

/** Writes the chunks of one streaming request straight to its socket. */
export interface ChunkWriter {
  readonly clientId: number
  readonly requestId: string
  /** Writes one shared frame as a chunk of this request; `false` once the stream or the socket has ended. */
  readonly write: (frame: SharedFrame.SharedFrame) => boolean
}

/** Options of `make`. */
export interface Options {
  /** Called for every rejected input, to count it. */
  readonly onReject?: ((clientId: number, rejection: Rejection.Rejection) => void) | undefined
  /** Turns off RpcServer's spans (one per request). */
  readonly disableTracing?: boolean | undefined
  /** How many requests run at once across the node; unbounded by default. */
  readonly concurrency?: number | "unbounded" | undefined
}

/** The bridge of a node. */
export class RpcBridge extends Context.Tag("fleetvisor/protocol/RpcBridge")<RpcBridge, {
  /**
   * Plugs a socket in; it is unplugged when the scope closes. `send` and `close` are called as
   * methods of `options`, which the bridge keeps while the socket is plugged in.
   */
  readonly connect: (options: ConnectOptions) => Effect.Effect<Connection, never, Scope.Scope>
  /** Plugs a socket in until its `disconnect` runs, for a caller whose own release runs it. */
  readonly connectUnscoped: (options: ConnectOptions) => Effect.Effect<Connection>
  /** Writes a shared frame as a chunk of a direct stream; `false` if that stream is not open. */
  readonly writeChunk: (clientId: number, requestId: string, frame: SharedFrame.SharedFrame) => boolean
}>() {}

const urgentTags: ReadonlySet<string> = new Set(Priority.urgentTags)

/** What a client's `Connection` calls back into. */
interface Plugs {
  readonly decode: (client: Client, frame: string | Uint8Array) => Decoded | undefined
  readonly deliver: (client: Client, messages: Decoded) => void
  readonly disconnect: (client: Client) => void
}

/**
 * The requests of one client that its handlers are serving, made at its first request. Each
 * request handed to RpcServer counts in `inFlight` or `streams` until an `Exit` of its id goes
 * out; the maps hold how many of each id are out (a client may reuse an id: RpcServer then runs
 * the second after the first, and each `Exit` takes one off). An `Exit` of an id not in them (a
 * refused request, an `Interrupt` of an unknown id) changes nothing, so a count never drops
 * below what is being served.
 */
class Load {
  inFlight = 0
  streams = 0
  private requestIds: Map<string, number> | undefined = undefined
  private streamIds: Map<string, number> | undefined = undefined

  add(requestId: string, stream: boolean): void {
    const ids = stream ? (this.streamIds ??= new Map()) : (this.requestIds ??= new Map())
    ids.set(requestId, (ids.get(requestId) ?? 0) + 1)
    if (stream) this.streams++
    else this.inFlight++
  }

  answered(requestId: string): void {
    if (take(this.requestIds, requestId)) this.inFlight--
    else if (take(this.streamIds, requestId)) this.streams--
  }
}

/** Takes one of `id` off `ids`; whether there was one. */
const take = (ids: Map<string, number> | undefined, id: string): boolean => {
  const count = ids?.get(id)
  if (count === undefined) return false
  if (count > 1) ids!.set(id, count - 1)
  else ids!.delete(id)
  return true
}

/** One socket plugged in; it is its own `Connection`, so that an idle socket costs one object. */
class Client implements Connection {
  readonly codec: WireCodec.WireCodec
  /** Messages for RpcServer, and the fiber that hands them over: both made at the first message, so an idle socket costs neither. */
  inbox: Mailbox.Mailbox<FromClientEncoded> | undefined = undefined
  /** Request ids of this client's open direct streams. */
  directStreams: Set<string> | undefined = undefined
  /** The requests being served. */
  load: Load | undefined = undefined
  readonly limits: RequestLimits | undefined
  connected = true
  constructor(
    readonly id: number,
    readonly options: ConnectOptions,
    /**
     * The context (less its `Scope`) and fiber refs of the fiber that connected the socket: its
     * intake fiber and its handlers run with them.
     */
    readonly context: Context.Context<never>,
    readonly fiberRefs: FiberRefs.FiberRefs,
    private readonly plugs: Plugs
  ) {
    this.codec = WireCodec.of(options.wire)
    this.limits = options.requestLimits
  }

  get clientId(): number {
    return this.id
  }

  onFrame(frame: string | Uint8Array): void {
    const messages = this.plugs.decode(this, frame)
    if (messages !== undefined) this.plugs.deliver(this, messages)
  }

  decode(frame: string | Uint8Array): Decoded | undefined {
    return this.plugs.decode(this, frame)
  }

  deliver(messages: Decoded): void {
    this.plugs.deliver(this, messages)
  }

  get disconnect(): Effect.Effect<void> {
    return Effect.sync(() => this.plugs.disconnect(this))
  }
}

interface CurrentRequest {
  readonly client: Client
  readonly requestId: string
}

// Set around each request handed to RpcServer; its handler fiber inherits it.
const currentRequest = globalValue(
  "fleetvisor/protocol/RpcBridge/currentRequest",
  () => FiberRef.unsafeMake(Option.none<CurrentRequest>())
)

const writeChunk = (client: Client, requestId: string, frame: SharedFrame.SharedFrame): boolean => {
  if (!client.connected || client.directStreams?.has(requestId) !== true) return false
  client.options.send(SharedFrame.chunkFrame(frame, client.codec.wire, requestId))
  return true
}

const send = (client: Client, message: FromServerEncoded): void => {
  if (!client.connected) return
  let frame: string | Uint8Array
  try {
    frame = client.codec.encode(message)
  } catch (cause) {
    frame = client.codec.encode(ResponseDefectEncoded(cause))
  }
  client.options.send(frame)
}

/** Whether two fiber-ref sets hold the same value of every ref but the context (whichever fiber set it). */
const sameValues = (a: FiberRefs.FiberRefs, b: FiberRefs.FiberRefs): boolean => {
  const refs = FiberRefs.fiberRefs(a)
  if (HashSet.size(refs) !== HashSet.size(FiberRefs.fiberRefs(b))) return false
  for (const ref of refs) {
    // The context is the runtime's own, not the refs'.
    if (ref !== FiberRef.currentContext && FiberRefs.getOrDefault(a, ref) !== FiberRefs.getOrDefault(b, ref)) return false
  }
  return true
}

/** Whether two contexts hold the same services. */
const sameServices = (a: Context.Context<never>, b: Context.Context<never>): boolean => {
  if (a.unsafeMap.size !== b.unsafeMap.size) return false
  for (const [key, service] of a.unsafeMap) if (b.unsafeMap.get(key) !== service) return false
  return true
}

/**
 * The stream a streaming handler returns to serve its request through the fast path. `run`
 * receives the request's `ChunkWriter`, registers it wherever the items come from, and keeps
 * running while the subscription lasts: the stream ends when `run` ends (failing if it fails),
 * and `run` is interrupted when the client cancels or disconnects.
 */
export const directStream = <E, R>(
  run: (writer: ChunkWriter) => Effect.Effect<void, E, R>
): Stream.Stream<never, E, Exclude<R, Scope.Scope>> =>
  Stream.fromEffect(
    Effect.scoped(
      Effect.flatMap(
        FiberRef.get(currentRequest),
        Option.match({
          onNone: () => Effect.dieMessage("RpcBridge.directStream must be returned by a handler served by an RpcBridge"),
          onSome: ({ client, requestId }) =>
            Effect.acquireRelease(
              Effect.sync((): ChunkWriter => {
                ;(client.directStreams ??= new Set()).add(requestId)
                return { clientId: client.id, requestId, write: (frame) => writeChunk(client, requestId, frame) }
              }),
              () => Effect.sync(() => client.directStreams?.delete(requestId))
            ).pipe(Effect.flatMap(run))
        })
      )
    )
  ).pipe(Stream.drain)

/** Starts the node's RpcServer for `group`, served to the sockets that `connect`. */
export const make = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options: Options = {}
): Effect.Effect<
  RpcBridge["Type"],
  never,
  Scope.Scope | Rpc.ToHandler<Rpcs> | Rpc.Middleware<Rpcs> | Rpc.Context<Rpcs>
> =>
  Effect.gen(function*() {
    const clients = new Map<number, Client>()
    const disconnects = yield* Mailbox.make<number>()
    const intakes = yield* FiberMap.make<number>()
    const serverReady = yield* Deferred.make<(clientId: number, message: FromClientEncoded) => Effect.Effect<void>>()
    let nextClientId = 0
    let shuttingDown = false

    const disconnect = (client: Client): void => {
      if (!client.connected) return
      client.connected = false
      clients.delete(client.id)
      client.directStreams = undefined
      client.inbox?.unsafeDone(Exit.void)
      Option.map(FiberMap.unsafeGet(intakes, client.id), (fiber) => fiber.unsafeInterruptAsFork(FiberId.none))
      disconnects.unsafeOffer(client.id)
    }

    const protocol: RpcServer.Protocol["Type"] = {
      run: (writeRequest) => Effect.zipRight(Deferred.succeed(serverReady, writeRequest), Effect.never),
      disconnects,
      send: (clientId, message) =>
        Effect.sync(() => {
          const client = clients.get(clientId)
          if (client === undefined) return
          if (message._tag === "Exit") client.load?.answered(message.requestId)
          send(client, message)
        }),
      // RpcServer ends a client when the server shuts down, or after the client sent Eof.
      end: (clientId) =>
        Effect.sync(() => {
          const client = clients.get(clientId)
          if (client === undefined) return
          disconnect(client)
          if (shuttingDown) client.options.close(CloseCode.GoingAway, "Server shutting down")
          else client.options.close(CloseCode.Normal, "")
        }),
      clientIds: Effect.sync(() => new Set(clients.keys())),
      initialMessage: Effect.succeedNone,
      // Acks would cost every client a frame per chunk; flow control is the gateway's.
      supportsAck: false,
      supportsTransferables: false,
      supportsSpanPropagation: true
    }

    yield* RpcServer.make(group, {
      disableTracing: options.disableTracing,
      concurrency: options.concurrency,
      // A handler's defect fails its own request instead of every request of the client.
      disableFatalDefects: true
    }).pipe(
      Effect.provideService(RpcServer.Protocol, protocol),
      Effect.interruptible,
      Effect.forkScoped
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => (shuttingDown = true)))
    const writeRequest = yield* Deferred.await(serverReady)

    const reject = (client: Client, rejection: Rejection.Rejection): void => {
      options.onReject?.(client.id, rejection)
      const code = Rejection.closeCode(rejection)
      if (code === undefined) return
      disconnect(client)
      client.options.close(code, CloseCode.reason(Rejection.describe(rejection)))
    }

    const payloadDecoders = new Map<string, (payload: unknown) => Either.Either<unknown, ParseResult.ParseError>>()
    const payloadProblem = (rpc: Rpc.AnyWithProps, payload: unknown): string | undefined => {
      let decode = payloadDecoders.get(rpc._tag)
      if (decode === undefined) {
        decode = Schema.decodeUnknownEither(rpc.payloadSchema as Schema.Schema<unknown, unknown>)
        payloadDecoders.set(rpc._tag, decode)
      }
      try {
        const result = decode(payload)
        return Either.isLeft(result) ? ParseResult.TreeFormatter.formatErrorSync(result.left) : undefined
      } catch (error) {
        // A payload nested thousands of levels deep overflows the decoder's stack.
        return error instanceof RangeError ? `payload nested too deeply (${error.message})` : String(error)
      }
    }

    const decode = (client: Client, frame: string | Uint8Array): Decoded | undefined => {
      if (!client.connected) return undefined
      const decoded = ClientFrame.decode(client.codec, frame, client.limits?.maxPerFrame)
      if (Either.isRight(decoded)) return decoded.right
      reject(client, decoded.left)
      return undefined
    }

    /**
     * Refuses a request past a limit, or counts it in; `true` if refused. An emergency stop is
     * never refused for the requests in flight (it counts among them): a session waiting on slow
     * commands must still be able to stop its robots. The rate limit still applies to it.
     */
    const overloaded = (client: Client, limits: RequestLimits, rpc: Rpc.AnyWithProps, requestId: string): boolean => {
      const load = (client.load ??= new Load())
      const stream = RpcSchema.isStreamSchema(rpc.successSchema)
      const max = stream ? limits.maxStreams : limits.maxInFlight
      if ((stream ? load.streams : load.inFlight) < max || (!stream && urgentTags.has(rpc._tag))) {
        load.add(requestId, stream)
        return false
      }
      const rejection = Rejection.Overloaded({
        tag: rpc._tag,
        requestId,
        limit: stream ? "open_streams" : "requests_in_flight",
        max
      })
      reject(client, rejection)
      send(client, {
        _tag: "Exit",
        requestId,
        exit: { _tag: "Failure", cause: { _tag: "Die", defect: Rejection.overloadedDefect(rejection) } }
      })
      return true
    }

    const deliver = (client: Client, messages: Decoded): void => {
      if (!client.connected) return
      for (const message of messages) {
        if (message._tag !== "Request") {
          inboxOf(client).unsafeOffer(message)
          continue
        }
        const rpc = group.requests.get(message.tag) as Rpc.AnyWithProps | undefined
        if (rpc === undefined) {
          // RpcServer would answer with a Defect, which fails every request of the client;
          // a client newer than this server must only lose the call it made.
          reject(client, Rejection.UnknownRpc({ tag: message.tag, requestId: message.id }))
          send(client, {
            _tag: "Exit",
            requestId: message.id,
            exit: { _tag: "Failure", cause: { _tag: "Die", defect: `Unknown RPC: ${message.tag}` } }
          })
          continue
        }
        // Answered here, as RpcServer would (a Die exit for that request), so that a payload it
        // cannot even decode (nested too deeply) never reaches it.
        const problem = payloadProblem(rpc, message.payload)
        if (problem !== undefined) {
          reject(client, Rejection.InvalidPayload({ tag: message.tag, requestId: message.id, message: problem }))
          send(client, {
            _tag: "Exit",
            requestId: message.id,
            exit: { _tag: "Failure", cause: { _tag: "Die", defect: `Invalid payload for ${message.tag}: ${problem}` } }
          })
          continue
        }
        if (client.limits !== undefined && overloaded(client, client.limits, rpc, message.id)) continue
        inboxOf(client).unsafeOffer({
          ...message,
          headers: [...message.headers, ...(client.options.headers ?? []) as ReadonlyArray<[string, string]>]
        })
      }
    }

    const intake = (client: Client, inbox: Mailbox.Mailbox<FromClientEncoded>) =>
      Effect.gen(function*() {
        while (true) {
          const [messages, done] = yield* inbox.takeAll
          for (const message of messages) {
            if (!client.connected) return
            yield* message._tag === "Request"
              ? Effect.locally(
                writeRequest(client.id, message),
                currentRequest,
                Option.some({ client, requestId: message.id })
              )
              : writeRequest(client.id, message)
          }
          if (done) return
        }
      })

    // Sockets connected from alike fibers (every session's `init`) share one copy of their fiber
    // refs, and one of their context without its `Scope` (each session's own).
    let lastFiberRefs: FiberRefs.FiberRefs | undefined
    const sharedFiberRefs = (fiberRefs: FiberRefs.FiberRefs): FiberRefs.FiberRefs => {
      if (lastFiberRefs === undefined || !sameValues(lastFiberRefs, fiberRefs)) lastFiberRefs = fiberRefs
      return lastFiberRefs
    }
    let lastContext: Context.Context<never> | undefined
    const sharedContext = (context: Context.Context<never>): Context.Context<never> => {
      const unscoped = context.unsafeMap.has(Scope.Scope.key) ? Context.omit(Scope.Scope)(context) : context
      if (lastContext === undefined || !sameServices(lastContext, unscoped)) lastContext = unscoped
      return lastContext
    }

    /** The client's inbox, made with its intake fiber (as `FiberMap.run` would fork it) at the first message. */
    const inboxOf = (client: Client): Mailbox.Mailbox<FromClientEncoded> => {
      if (client.inbox !== undefined) return client.inbox
      // RpcServer runs each request with the context of the fiber that handed it over: this one's.
      const caller = client.options.caller
      const runtime = Runtime.make({
        context: caller === undefined ? client.context : Context.add(client.context, Caller, caller),
        fiberRefs: client.fiberRefs,
        runtimeFlags: Runtime.defaultRuntime.runtimeFlags
      })
      const inbox = Runtime.runSync(runtime)(Mailbox.make<FromClientEncoded>())
      client.inbox = inbox
      FiberMap.unsafeSet(intakes, client.id, Runtime.runFork(runtime)(intake(client, inbox)))
      return inbox
    }

    const plugs: Plugs = { decode, deliver, disconnect }
    const connectUnscoped = (connectOptions: ConnectOptions): Effect.Effect<Connection> =>
      Effect.withFiberRuntime<Connection>((fiber) => {
        const client = new Client(
          nextClientId++,
          connectOptions,
          sharedContext(fiber.currentContext as Context.Context<never>),
          sharedFiberRefs(fiber.getFiberRefs()),
          plugs
        )
        clients.set(client.id, client)
        return Effect.succeed(client)
      })

    // The release is added to the scope directly: `acquireRelease` would keep a copy of the
    // fiber's refs per socket, which `disconnect` does not need.
    const connect = (connectOptions: ConnectOptions): Effect.Effect<Connection, never, Scope.Scope> =>
      Effect.uninterruptible(Effect.flatMap(
        Effect.scope,
        (scope) =>
          Effect.tap(connectUnscoped(connectOptions), (connection) => Scope.addFinalizer(scope, connection.disconnect))
      ))

    return RpcBridge.of({
      connect,
      connectUnscoped,
      writeChunk: (clientId, requestId, frame) => {
        const client = clients.get(clientId)
        return client !== undefined && writeChunk(client, requestId, frame)
      }
    })
  })

/** A layer of the node's bridge for `group`; needs the group's handlers. */
export const layer = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options?: Options
): Layer.Layer<RpcBridge, never, Rpc.ToHandler<Rpcs> | Rpc.Middleware<Rpcs> | Rpc.Context<Rpcs>> =>
  Layer.scoped(RpcBridge, make(group, options))
