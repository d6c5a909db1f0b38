/**
 * Who calls an RPC handler: the connection a request came in on, as a service. The `RpcBridge`
 * provides it to every request of a socket that connected with a `caller` (a gateway's session
 * does; it is its own caller), so handlers read it instead of request headers and registries:
 *
 * ```ts
 * FleetAcquire: ({ robot }) => Effect.flatMap(Caller, (caller) => fleet.acquire(robot, holderOf(caller)))
 * ```
 *
 * A client cannot name another caller: nothing of it comes from the wire. Without a gateway in
 * front (tests, embedding) there is none (`Effect.serviceOption(Caller)`).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type { ActorRef } from "../actors/ActorRef.js"

/** One connected caller. */
export interface CallerInfo {
  /** The session's id (`session:<id>` in the gateway's registry). */
  readonly session: string
  /** The actor that owns the socket: its exit ends what the caller subscribed to and holds. */
  readonly owner: ActorRef<never>
  /** The authenticated user (without authentication, the client's address). */
  readonly user: string
  /** The user's roles; `undefined` when nothing is checked (no authentication: everyone is an admin). */
  readonly roles: ReadonlyArray<string> | undefined
  /** When the caller's credential stops working, ms since the epoch; `undefined`: never. */
  readonly expiresAt: number | undefined
  /** The client's address (behind a trusted proxy, the forwarded one). */
  readonly address: string
  /** Bytes written to the caller's socket and not yet sent. */
  backlog(): number
}

/** The caller of the current request. */
export class Caller extends Context.Tag("fleetvisor/protocol/Caller")<Caller, CallerInfo>() {}
