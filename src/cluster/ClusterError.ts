/**
 * The typed failures of the cluster layer.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/** Redis did not answer (down, paused past the command timeout, connection lost) or refused a command. */
export class RedisUnavailable extends Data.TaggedError("RedisUnavailable")<{
  /** What was being done: `heartbeat`, `acquire`, `renew`, `release`, … */
  readonly operation: string
  readonly reason: string
}> {
  override get message() {
    return `Redis unavailable during ${this.operation}: ${this.reason}`
  }
}

/** A node id that cannot be used: empty, or containing `|` (the separator of a lease's value). */
export class InvalidNodeId extends Data.TaggedError("InvalidNodeId")<{
  readonly node: string
}> {
  override get message() {
    return `invalid node id ${JSON.stringify(this.node)}: it must be non-empty and contain no "|"`
  }
}

/** Settings that cannot work, such as a margin not smaller than the TTL. */
export class InvalidSettings extends Data.TaggedError("InvalidSettings")<{
  readonly reason: string
}> {
  override get message() {
    return `invalid cluster settings: ${this.reason}`
  }
}

/** The node link could not listen (the port is taken, the address is not this host's, …). */
export class ListenFailed extends Data.TaggedError("ListenFailed")<{
  readonly bind: string
  readonly port: number
  readonly reason: string
}> {
  override get message() {
    return `the node link cannot listen on ${this.bind}:${this.port}: ${this.reason}`
  }
}
