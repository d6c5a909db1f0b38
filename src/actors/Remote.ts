/**
 * Asking a service on another node: a remote ref with typed failures.
 *
 * A {@link RemoteService} names a service and the schemas of its request, its success and its
 * failure; what crosses the wire is each schema's encoded side (plain values: what MessagePack
 * carries). A node serves it with {@link serve}; any node asks it through a {@link RemoteRef}
 * built by {@link ref}:
 *
 * ```ts
 * class Busy extends Schema.TaggedError<Busy>()("Busy", { robot: Schema.String }) {}
 * const Move = Remote.service("fleet/move", {
 *   request: Schema.Struct({ robot: Schema.String, x: Schema.Number }),
 *   success: Schema.Struct({ accepted: Schema.Boolean }),
 *   failure: Busy
 * })
 * yield* Remote.serve(transport, Move, ({ robot, x }) => move(robot, x))        // on node B
 * const result = yield* Remote.ref(transport, "b", Move).ask({ robot: "arm-1", x: 2 }) // on node A
 * ```
 *
 * Besides the service's own failure, an ask fails with (see {@link RemoteError} for what each
 * promises): `NodeDown` (certainly not delivered, nothing done), `RemoteTimeout` (no reply in
 * time, or the connection dropped after the request was written: **outcome unknown**),
 * `IncompatibleNode` (no common node protocol version; not sent) and `RemoteDefect` (the handler
 * died, no such service, or the request or reply did not decode). A request is **never retried**
 * by this module or by a transport: whether to ask again after a `RemoteTimeout` is the caller's
 * decision, and for a motion it must be no.
 *
 * How requests travel is a {@link Transport}: the cluster's TCP links between nodes
 * (`src/cluster/NodeLink.ts`), or {@link memoryNetwork} for tests.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { IncompatibleNode, NodeDown, RemoteDefect, RemoteTimeout } from "./RemoteError.js"

export { IncompatibleNode, NodeDown, RemoteDefect, RemoteTimeout } from "./RemoteError.js"

/** How remote refs reach other nodes: implemented by the cluster (`src/cluster/NodeLink.ts`) and in memory for tests ({@link memoryNetwork}). */
export interface Transport {
  /** This node's id. */
  readonly node: string
  /**
   * Sends `payload` (a plain value: what MessagePack carries — objects, arrays, strings, numbers,
   * booleans, null, Uint8Array) to `service` on `node`, and waits for its reply. Never retried.
   * `NodeDown` only when the request was certainly not delivered; once its bytes may have left,
   * any failure is `RemoteTimeout` (outcome unknown). A node without `service` answers a `Defect`.
   */
  readonly request: (
    node: string,
    service: string,
    payload: unknown,
    options: RequestOptions
  ) => Effect.Effect<RemoteReply, NodeDown | RemoteTimeout | IncompatibleNode>
  /** Serves requests to `service` on this node until the scope closes (the newest registration of a name wins). */
  readonly serve: (
    service: string,
    handler: (payload: unknown, from: string) => Effect.Effect<RemoteReply>
  ) => Effect.Effect<void, never, Scope.Scope>
  /** Called by {@link serve} for each request that did not decode (the transport counts them). */
  readonly rejected?: ((service: string, from: string) => void) | undefined
}

/** Options of one request. */
export interface RequestOptions {
  /** How long to wait for the reply, ms; also bounds connecting. */
  readonly timeoutMillis: number
  /** An urgent request never waits behind normal ones on the receiving node (a stop). */
  readonly urgent?: boolean | undefined
}

/** What a remote handler answered. */
export type RemoteReply =
  | { readonly _tag: "Success"; readonly value: unknown }
  | { readonly _tag: "Failure"; readonly error: unknown }
  | { readonly _tag: "Defect"; readonly message: string }

/** A service others can ask: its name and the schemas of its request, success and failure (the wire form is the schemas' encoded side). */
export interface RemoteService<Req, A, E> {
  readonly name: string
  readonly request: Schema.Schema<Req, any>
  readonly success: Schema.Schema<A, any>
  readonly failure: Schema.Schema<E, any>
}

/** Declares a service: its name (unique in the cluster, `area/verb` by convention) and its schemas. */
export const service = <Req, ReqI, A, AI, E, EI>(
  name: string,
  schemas: {
    readonly request: Schema.Schema<Req, ReqI>
    readonly success: Schema.Schema<A, AI>
    readonly failure: Schema.Schema<E, EI>
  }
): RemoteService<Req, A, E> => ({ name, request: schemas.request, success: schemas.success, failure: schemas.failure })

/** Options of one ask. */
export interface AskOptions {
  /** How long to wait for the reply (connecting included). Default: 5 seconds, as a local `ask`. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Handle it ahead of normal requests on the receiving node (a stop). */
  readonly urgent?: boolean | undefined
}

/** A handle to a service on another node. */
export interface RemoteRef<Req, A, E> {
  readonly node: string
  readonly service: string
  /** Asks once (never retried); see the module's documentation for the failures. */
  ask(request: Req, options?: AskOptions): Effect.Effect<A, E | NodeDown | RemoteTimeout | IncompatibleNode | RemoteDefect>
}

/** The default timeout of an ask, ms. */
export const defaultTimeoutMillis = 5_000

/** The longest defect message sent back to the asking node. */
const maxDefectMessage = 2_000

const defect = (message: string): RemoteReply => ({
  _tag: "Defect",
  message: message.length > maxDefectMessage ? `${message.slice(0, maxDefectMessage)}…` : message
})

/** A handle to `service` on `node`, reached through `transport` (`node` may be this node). */
export const ref = <Req, A, E>(transport: Transport, node: string, service: RemoteService<Req, A, E>): RemoteRef<Req, A, E> => {
  const encodeRequest = Schema.encode(service.request)
  const decodeSuccess = Schema.decodeUnknown(service.success)
  const decodeFailure = Schema.decodeUnknown(service.failure)
  const broken = (what: string) => (error: { readonly message: string }) =>
    Effect.fail(new RemoteDefect({ node, service: service.name, message: `${what} did not decode: ${error.message}` }))
  return {
    node,
    service: service.name,
    ask: (request, options) =>
      Effect.gen(function*() {
        const timeoutMillis = options?.timeout === undefined
          ? defaultTimeoutMillis
          : Math.max(1, Duration.toMillis(Duration.decode(options.timeout)))
        // A request its own schema cannot encode is the caller's bug: nothing is sent.
        const payload = yield* Effect.orDie(encodeRequest(request))
        const reply = yield* transport.request(node, service.name, payload, { timeoutMillis, urgent: options?.urgent })
        switch (reply._tag) {
          case "Success":
            return yield* Effect.catchAll(decodeSuccess(reply.value), broken("the reply"))
          case "Failure": {
            const error = yield* Effect.catchAll(decodeFailure(reply.error), broken("the failure"))
            return yield* Effect.fail(error)
          }
          case "Defect":
            return yield* Effect.fail(new RemoteDefect({ node, service: service.name, message: reply.message }))
        }
      })
  }
}

const causeMessage = (cause: Cause.Cause<unknown>): string => {
  if (Cause.isInterruptedOnly(cause)) return "the handler was interrupted"
  const error = Cause.squash(cause)
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
}

/**
 * Serves `service` with `handler` on this node until the scope closes. A request that does not
 * decode is answered with a Defect and counted (`transport.rejected`), and never reaches the
 * handler; the handler's success and failure are encoded with the service's schemas (one that
 * does not encode is a Defect), and its defects and interruptions are logged here and answered
 * as a Defect.
 */
export const serve = <Req, A, E, R>(
  transport: Transport,
  service: RemoteService<Req, A, E>,
  handler: (request: Req, from: string) => Effect.Effect<A, E, R>
): Effect.Effect<void, never, Scope.Scope | R> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<R>()
    const decodeRequest = Schema.decodeUnknown(service.request)
    const encodeSuccess = Schema.encode(service.success)
    const encodeFailure = Schema.encode(service.failure)
    const unencodable = (what: string) => (error: { readonly message: string }) =>
      Effect.succeed(defect(`the ${what} of ${service.name} did not encode: ${error.message}`))
    yield* transport.serve(service.name, (payload, from) =>
      decodeRequest(payload).pipe(
        Effect.matchEffect({
          onFailure: (error) =>
            Effect.sync(() => {
              transport.rejected?.(service.name, from)
              return defect(`the request to ${service.name} did not decode: ${error.message}`)
            }),
          onSuccess: (request) =>
            handler(request, from).pipe(
              Effect.provide(context),
              Effect.matchCauseEffect({
                onSuccess: (value) =>
                  encodeSuccess(value).pipe(
                    Effect.map((encoded): RemoteReply => ({ _tag: "Success", value: encoded })),
                    Effect.catchAll(unencodable("reply"))
                  ),
                onFailure: (cause) =>
                  Option.match(Cause.failureOption(cause), {
                    onSome: (error) =>
                      encodeFailure(error).pipe(
                        Effect.map((encoded): RemoteReply => ({ _tag: "Failure", error: encoded })),
                        Effect.catchAll(unencodable("failure"))
                      ),
                    onNone: () =>
                      Effect.as(
                        Effect.logWarning("a remote request's handler died").pipe(
                          Effect.annotateLogs({ service: service.name, from, cause: Cause.pretty(cause) })
                        ),
                        defect(causeMessage(cause))
                      )
                  })
              })
            )
        })
      ))
  })

interface MemoryNode {
  up: boolean
  readonly services: Map<string, { readonly run: (payload: unknown, from: string, done: (reply: RemoteReply) => void) => void }>
  /** Fails the requests in flight to this node (it went down after they were delivered). */
  readonly inFlight: Set<() => void>
  rejected: number
}

/** A copy of `value` as a wire would carry it (no prototypes, no functions); throws when it cannot be copied. */
const overTheWire = (value: unknown): unknown => structuredClone(value)

/**
 * Transports of several nodes in one process, for tests of code that uses remote refs. `down`
 * cuts a node off like a network partition: requests to it (and from it) fail with `NodeDown`,
 * and requests already delivered to it fail at once with `RemoteTimeout` (their handlers go on;
 * their replies are lost). `up` brings it back. Payloads and replies are copied as a wire would
 * (`structuredClone`). `rejected(node)` counts the requests to `node` that did not decode.
 */
export const memoryNetwork = (): {
  transport(node: string): Transport
  down(node: string): void
  up(node: string): void
  rejected(node: string): number
} => {
  const nodes = new Map<string, MemoryNode>()
  const stateOf = (node: string): MemoryNode => {
    let state = nodes.get(node)
    if (state === undefined) {
      state = { up: true, services: new Map(), inFlight: new Set(), rejected: 0 }
      nodes.set(node, state)
    }
    return state
  }
  const transport = (node: string): Transport => {
    const self = stateOf(node)
    return {
      node,
      rejected: () => void self.rejected++,
      request: (target, service, payload, options) =>
        Effect.suspend((): Effect.Effect<RemoteReply, NodeDown | RemoteTimeout> => {
          const peer = nodes.get(target)
          if (!self.up) return Effect.fail(new NodeDown({ node: target, reason: `this node (${node}) is cut off` }))
          if (peer === undefined || !peer.up) return Effect.fail(new NodeDown({ node: target, reason: "not live" }))
          const registered = peer.services.get(service)
          if (registered === undefined) return Effect.succeed(defect(`node ${target} has no service ${service}`))
          const wire = overTheWire(payload)
          return Effect.async<RemoteReply, RemoteTimeout>((resume) => {
            let finished = false
            const finish = (outcome: Effect.Effect<RemoteReply, RemoteTimeout>) => {
              if (finished) return
              finished = true
              clearTimeout(timer)
              peer.inFlight.delete(dropped)
              resume(outcome)
            }
            const unknown = (reason: string) =>
              Effect.fail(new RemoteTimeout({ node: target, service, timeoutMillis: options.timeoutMillis, reason }))
            const dropped = () => finish(unknown("the node went down after the request was delivered"))
            const timer = setTimeout(() => finish(unknown(`no reply within ${options.timeoutMillis} ms`)), options.timeoutMillis)
            peer.inFlight.add(dropped)
            registered.run(wire, node, (reply) => {
              if (!peer.up || !self.up) return
              let copy: RemoteReply
              try {
                copy = overTheWire(reply) as RemoteReply
              } catch (error) {
                copy = defect(`the reply could not be sent: ${String(error)}`)
              }
              finish(Effect.succeed(copy))
            })
            return Effect.sync(() => {
              finished = true
              clearTimeout(timer)
              peer.inFlight.delete(dropped)
            })
          })
        }),
      serve: (service, handler) =>
        Effect.gen(function*() {
          const run = yield* FiberSet.makeRuntime<never>()
          const entry = {
            run: (payload: unknown, from: string, done: (reply: RemoteReply) => void) => {
              const fiber = run(handler(payload, from))
              fiber.addObserver((exit) =>
                done(Exit.isSuccess(exit) ? exit.value : defect(causeMessage(exit.cause)))
              )
            }
          }
          self.services.set(service, entry)
          yield* Effect.addFinalizer(() =>
            Effect.sync(() => {
              if (self.services.get(service) === entry) self.services.delete(service)
            })
          )
        })
    }
  }
  return {
    transport,
    down: (node) => {
      const state = stateOf(node)
      state.up = false
      for (const drop of [...state.inFlight]) drop()
    },
    up: (node) => void (stateOf(node).up = true),
    rejected: (node) => stateOf(node).rejected
  }
}
