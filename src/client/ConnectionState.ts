/**
 * The state of a client's WebSocket, for pages to show ("reconnecting…", "reload the page").
 *
 * A connection goes `Connecting` → `Open` → `Closed` → `Connecting` … until the client's scope
 * closes, or ends in `Refused` when the server does not speak the client's protocol version.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/** The state of a client's connection. */
export type ConnectionState = Data.TaggedEnum<{
  /** Opening a socket; `attempt` counts from 1 since the last time it was open. */
  Connecting: { readonly attempt: number }
  /** The socket is open and speaks `subprotocol`. */
  Open: { readonly subprotocol: string }
  /** The socket closed; the client reconnects after a backoff. 1006 means no close frame arrived. */
  Closed: { readonly code: number; readonly reason: string }
  /** The server refused the client's protocol version; the page must reload. Final. */
  Refused: { readonly code: number; readonly reason: string }
}>

/** Constructors of the states, and `$is` / `$match` over them. */
export const { $is, $match, Closed, Connecting, Open, Refused } = Data.taggedEnum<ConnectionState>()
