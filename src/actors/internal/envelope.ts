/**
 * Mail that needs bookkeeping when it is taken out of a mailbox or thrown
 * away, such as a PubSub delivery counting against its subscriber's buffer.
 * The cell opens it just before `receive`; a cancelled envelope is skipped.
 *
 * @internal
 */
export abstract class Envelope {
  /** Returns the message to handle, or `skip` when the envelope was cancelled. */
  abstract open(): unknown
  /** Called instead of `open` when the envelope goes to dead letters. */
  abstract discard(): unknown
}

/** What `Envelope.open` returns for a cancelled envelope. */
export const skip: unique symbol = Symbol.for("fleetvisor/Envelope/skip")
