/**
 * Mailbox options. Every actor has a bounded mailbox with two lanes: the
 * urgent lane (runtime signals and `tellUrgent`) is always drained before the
 * normal lane. Capacity bounds the normal lane; the urgent lane is for rare,
 * small, high-priority mail and is never refused, so a `Down` is never lost.
 *
 * @since 0.1.0
 */

/**
 * What a full mailbox does with one more message:
 * - `fail`: refuses it; `tell` fails with `MailboxFull`, the message goes to dead letters;
 * - `dropNewest`: refuses it silently (counted in dead letters);
 * - `dropOldest`: accepts it and evicts the oldest normal message to dead letters
 *   (a sliding window: right for telemetry, where only the latest matters).
 */
export type OverflowPolicy = "fail" | "dropNewest" | "dropOldest"

/** The mailbox of one actor. */
export interface MailboxOptions {
  /** Normal-lane capacity. */
  readonly capacity?: number | undefined
  /** What happens to mail beyond `capacity`. */
  readonly overflow?: OverflowPolicy | undefined
}

/**
 * Default capacity: 10,000 messages. That absorbs 100 s of a 100 Hz robot or a
 * burst from a thousand clients; a mailbox deeper than that means the actor
 * cannot keep up, and the sender should hear about it rather than the heap.
 */
export const defaultCapacity = 10_000

/** Default policy: refuse, so overload is visible to the sender as `MailboxFull`. */
export const defaultOverflow: OverflowPolicy = "fail"
