/**
 * The typed errors of asking a service on another node ({@link Remote}). Callers `catchTag` them
 * by name. What each one promises about the request matters more than its cause:
 *
 * - `NodeDown`: the request was **certainly not delivered**, so nothing was done: the node is not
 *   live (not in the address book), refused the connection, or the connection to it could not be
 *   opened (or its hello finished) before the request would have been written. Safe to report as
 *   "offline, nothing sent".
 * - `RemoteTimeout`: the request **may have been delivered and acted on**; its outcome is
 *   unknown. No reply within the timeout, or the connection dropped after the request's bytes
 *   were written. Never retry such a request blindly.
 * - `IncompatibleNode`: the node speaks no node-to-node protocol version this node does; the
 *   request was not sent.
 * - `RemoteDefect`: the remote handler died (or was interrupted), the node has no such service,
 *   the request did not decode there, or its reply did not decode here.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/** The request was certainly not delivered: the node is not live, not reachable, or refused the connection. */
export class NodeDown extends Data.TaggedError("NodeDown")<{
  readonly node: string
  readonly reason: string
}> {
  override get message() {
    return `node ${this.node} is down: ${this.reason} (nothing was sent)`
  }
}

/** No reply came within the timeout, or the connection dropped after the request was written: its outcome is unknown. */
export class RemoteTimeout extends Data.TaggedError("RemoteTimeout")<{
  readonly node: string
  readonly service: string
  readonly timeoutMillis: number
  readonly reason: string
}> {
  override get message() {
    return `${this.service} on node ${this.node}: outcome unknown, ${this.reason}`
  }
}

/** The node speaks a node-to-node protocol version outside this node's range; nothing was sent. */
export class IncompatibleNode extends Data.TaggedError("IncompatibleNode")<{
  readonly node: string
  /** The version range's top the other node announced (its `v`). */
  readonly theirs: number
  readonly ours: { readonly min: number; readonly max: number }
}> {
  override get message() {
    return `node ${this.node} speaks node protocol ${this.theirs}, this node ${this.ours.min}–${this.ours.max}`
  }
}

/** The remote handler died, the node has no such service, or the request or its reply did not decode. */
export class RemoteDefect extends Data.TaggedError("RemoteDefect")<{
  readonly node: string
  readonly service: string
  readonly message: string
}> {}
