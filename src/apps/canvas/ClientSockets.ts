/**
 * What the gateway tells the canvas about the socket behind an RPC client, so that the canvas
 * can hold a slow socket to its policy: the session actor that owns the socket (the
 * `disconnect` policy stops it, which closes the socket) and the socket's unsent bytes (what
 * the subscriber's buffer bounds).
 *
 * The gateway provides it, keyed by the `clientId` that `RpcBridge.connect` returned:
 *
 * ```ts
 * Layer.succeed(ClientSockets, {
 *   find: (clientId) => {
 *     const session = sessionsByClientId.get(clientId)
 *     return session && { owner: session.ref, backlog: () => session.socket.bufferedAmount }
 *   }
 * })
 * ```
 *
 * Without it (a test gateway), each `CanvasJoin` is owned by an actor of its own and its
 * backlog reads as zero: updates are still encoded once and bounded, but a slow socket is
 * only bounded by the transport.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type { ActorRef } from "../../actors/ActorRef.js"

/** The socket of one RPC client. */
export interface ClientSocket {
  /** The actor that owns the socket: its exit ends the client's subscriptions. */
  readonly owner: ActorRef<never>
  /** Bytes written to the socket and not yet sent (`ws`'s `bufferedAmount`). */
  readonly backlog: () => number
}

/** Finds the socket behind an RPC client. */
export class ClientSockets extends Context.Tag("fleetvisor/apps/canvas/ClientSockets")<ClientSockets, {
  readonly find: (clientId: number) => ClientSocket | undefined
}>() {}
