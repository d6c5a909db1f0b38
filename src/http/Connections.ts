/**
 * The connection core of the gateway: one kind of client connection (`/ws` sessions, `/foxglove`
 * clients, event streams) as temporary children of a dynamic supervisor under `gateway`.
 *
 * ```text
 * gateway (rest_for_one)
 * ├─ listener running mailbox=0 restarts=0
 * ├─ sessions (dynamic, 1/20000)
 * │  └─ session:1 running mailbox=0 restarts=0
 * ├─ foxglove (dynamic, 1/64)
 * │  └─ foxglove:1 running mailbox=0 restarts=0
 * └─ streams (dynamic, 1/1000)
 *    └─ stream:1 running mailbox=0 restarts=0
 * ```
 *
 * What the three share is written here once:
 *
 * - **ownership**: each connection is an actor that owns its socket (or response) as a resource
 *   of its scope, so whatever ends the actor closes it;
 * - **counting and limits**: the supervisor's `maxChildren` is the kind's limit (one more fails
 *   with `MaxChildren`); every connection is registered by its client address (a duplicate-key
 *   `Registry`, whose entries leave with their actors), which is the per-address limit's count
 *   and the kind's one index;
 * - **draining**: `goAway` tells every connection `GoAway`, on which it closes at once (1001 for a
 *   WebSocket, the end of the body for an event stream); a WebSocket's actor lets go of its socket
 *   with `closeSocket` (the close, then at most a second for the peer's answer).
 *
 * What differs stays with each kind: the handshake and the refusals (a WebSocket's close codes,
 * HTTP statuses and their metrics), the heartbeat (sockets only: `Heartbeat`), and the
 * slow-consumer policy (a session's mailbox and write backlog, a Foxglove sink's `dropping` or
 * `disconnect`, an event stream's drop-to-latest and `SSE_STALL_TIMEOUT`).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { WebSocket } from "ws"
import type * as Actor from "../actors/Actor.js"
import type { ActorRef } from "../actors/ActorRef.js"
import type { ActorStopped, AlreadyRegistered, InitFailed } from "../actors/ActorError.js"
import type { MailboxOptions } from "../actors/Mailbox.js"
import * as Registry from "../actors/Registry.js"
import * as ChildSpec from "../supervisors/ChildSpec.js"
import * as DynamicSupervisor from "../supervisors/DynamicSupervisor.js"
import type { MaxChildren } from "../supervisors/SupervisorError.js"

/** What every connection accepts: the server is going away, close now. */
export interface GoAway {
  readonly _tag: "GoAway"
}

/** The one `GoAway` message. */
export const goAway: GoAway = { _tag: "GoAway" }

/**
 * How a connection's actor lets go of its WebSocket: closes it with `code` and `reason` and
 * waits for the peer's close frame, at most `waitMs` (then the socket is terminated).
 */
export const closeSocket = (socket: WebSocket, code: number, reason: string, waitMs: number): Effect.Effect<void> =>
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
    return Effect.sync(() => {
      clearTimeout(timer)
      socket.off("close", done)
    })
  })

/** The supervisor of a kind is not running (it is being restarted with the gateway). */
export class NotRunning extends Error {
  override readonly name = "NotRunning"
}

/** Options of `make`. */
export interface ConnectionsOptions {
  /** The supervisor's name under `gateway`: `sessions`, `foxglove`, `streams`. */
  readonly name: string
  /** Connections at once; one more is refused (`MaxChildren`). */
  readonly maxConnections: number
  /** Connections from one client address at once; 0: no limit. */
  readonly maxPerAddress: number
}

/** How to start one connection. */
export interface StartOptions<M> {
  /** Its client address, for the per-address limit. */
  readonly address: string
  readonly mailbox?: MailboxOptions | undefined
  /** Registers it elsewhere too, before its `init` (e.g. `session:<id>`); returns the error that refuses it. */
  readonly register?: ((ref: ActorRef<M>) => AlreadyRegistered | undefined) | undefined
}

/** One kind of connection of a gateway. */
export interface Connections<M extends { readonly _tag: string }> {
  readonly name: string
  /** Most connections at once. */
  readonly maxConnections: number
  /** The supervisor as a child of the gateway, registered by name so that it is found after a restart. */
  readonly childSpec: ChildSpec.ChildSpec
  /** The live supervisor, if it runs. */
  readonly supervisor: () => Option.Option<DynamicSupervisor.DynamicSupervisorRef>
  /** The connections by client address (duplicate keys). */
  readonly byAddress: Registry.Registry<string, M>
  /** Connections now. */
  readonly count: () => number
  /** Whether one more from `address` would pass the per-address limit. */
  readonly addressFull: (address: string) => boolean
  /**
   * Starts `key` with `behaviour` (temporary: a client that goes away reconnects by itself) and
   * waits for its `init`.
   */
  readonly start: (
    key: string,
    behaviour: Actor.Behaviour<M, any, any>,
    options: StartOptions<M>
  ) => Effect.Effect<ActorRef<M>, MaxChildren | InitFailed | AlreadyRegistered | ActorStopped | NotRunning>
  /** Tells every connection `GoAway`. */
  readonly goAway: () => void
}

/**
 * How one connection registers (its `via`): by address, and elsewhere if asked; one object per
 * connection, no closure, since tens of thousands of idle sessions each keep theirs.
 */
class Admission<M extends { readonly _tag: string }> implements Actor.Via {
  private pending = true
  constructor(
    readonly name: string,
    private readonly kind: Kind<M>,
    private readonly address: string,
    private readonly extra: StartOptions<M>["register"]
  ) {}

  register(ref: ActorRef<never>): AlreadyRegistered | undefined {
    this.settle()
    const connection = ref as unknown as ActorRef<M>
    return this.extra?.(connection) ?? Registry.unsafeRegister(this.kind.byAddress, this.address, connection)
  }

  /** It is registered, or will never be: it no longer counts as starting. */
  settle(): void {
    if (!this.pending) return
    this.pending = false
    this.kind.started(this.address)
  }
}

class Kind<M extends { readonly _tag: string }> implements Connections<M> {
  readonly byAddress = Registry.unsafeMake<string, M>({ keys: "duplicate" })
  readonly childSpec: ChildSpec.ChildSpec
  /** Accepted but not registered yet, by address: a burst cannot pass the per-address limit together. */
  private readonly starting = new Map<string, number>()

  constructor(private readonly names: Registry.Registry<string, never>, private readonly options: ConnectionsOptions) {
    this.childSpec = ChildSpec.make(
      options.name,
      DynamicSupervisor.make({ maxChildren: options.maxConnections }),
      { via: Registry.via(names, options.name), shutdown: "infinity" }
    )
  }

  get name(): string {
    return this.options.name
  }

  get maxConnections(): number {
    return this.options.maxConnections
  }

  supervisor(): Option.Option<DynamicSupervisor.DynamicSupervisorRef> {
    return Option.fromNullable(
      Registry.unsafeWhereis(this.names, this.options.name) as DynamicSupervisor.DynamicSupervisorRef | undefined
    )
  }

  count(): number {
    const supervisor = this.supervisor()
    return Option.isSome(supervisor) ? DynamicSupervisor.unsafeCount(supervisor.value) : 0
  }

  addressFull(address: string): boolean {
    const perAddress = this.options.maxPerAddress
    return perAddress > 0 &&
      Registry.unsafeLookup(this.byAddress, address).length + (this.starting.get(address) ?? 0) >= perAddress
  }

  started(address: string): void {
    const left = (this.starting.get(address) ?? 1) - 1
    if (left <= 0) this.starting.delete(address)
    else this.starting.set(address, left)
  }

  start(
    key: string,
    behaviour: Actor.Behaviour<M, any, any>,
    options: StartOptions<M>
  ): Effect.Effect<ActorRef<M>, MaxChildren | InitFailed | AlreadyRegistered | ActorStopped | NotRunning> {
    const supervisor = this.supervisor()
    if (Option.isNone(supervisor)) return Effect.fail(new NotRunning(`${this.options.name} is restarting`))
    this.starting.set(options.address, (this.starting.get(options.address) ?? 0) + 1)
    const admission = new Admission(key, this, options.address, options.register)
    return Effect.ensuring(
      DynamicSupervisor.startChild(
        supervisor.value,
        ChildSpec.make(key, behaviour, { restart: "temporary", mailbox: options.mailbox, via: admission })
      ),
      Effect.sync(() => admission.settle())
    )
  }

  goAway(): void {
    for (const { ref } of Registry.all(this.byAddress)) ref.unsafeTellUrgent(goAway as unknown as M)
  }
}

/** One kind of connection, whose supervisor registers in `names` (the gateway's registry of its own actors). */
export const make = <M extends { readonly _tag: string }>(
  names: Registry.Registry<string, never>,
  options: ConnectionsOptions
): Connections<M> => new Kind<M>(names, options)
