/**
 * The flood limit of one session: a token bucket that throttles before it gives up.
 *
 * It counts work, not frames: a frame takes one token per request it carries (at least one, so
 * that empty frames are not free); tokens refill at `perSecond` up to `burst`. A frame that
 * finds too few tokens is not refused: it goes into debt and waits until the refill pays it off
 * (the session stops reading its socket meanwhile, so TCP slows the sender). A client whose debt
 * would pass a whole `burst` is not slowing down: that frame is a `Flood`, and the session
 * closes with 1008. (A frame carrying more than `burst` requests never gets here: the bridge
 * closes the session on it at once.)
 *
 * @since 0.1.0
 */

/** What to do with one frame. */
export type Verdict =
  /** Handle it now. */
  | { readonly _tag: "Accept" }
  /** Handle it after `delayMs`, in order after other delayed frames. */
  | { readonly _tag: "Throttle"; readonly delayMs: number }
  /** The client ignores throttling: close the session. */
  | { readonly _tag: "Flood" }

/** A token bucket; `take` and `delayMs` read the clock they are given, so it is testable without timers. */
export interface TokenBucket {
  /** Takes `count` tokens (1 by default) for one frame of `count` requests at `now` (ms). */
  take(now: number, count?: number): Verdict
  /** How long from `now` until the debt is paid (0 when there is none). */
  delayMs(now: number): number
  /** Tokens now (negative while in debt). */
  tokens(now: number): number
}

const accept: Verdict = { _tag: "Accept" }
const flood: Verdict = { _tag: "Flood" }

class Bucket implements TokenBucket {
  private current: number
  private readonly perMs: number
  constructor(readonly options: { readonly perSecond: number; readonly burst: number }, private updated: number) {
    this.current = options.burst
    this.perMs = options.perSecond / 1000
  }

  private refill(at: number): void {
    if (at > this.updated) {
      this.current = Math.min(this.options.burst, this.current + (at - this.updated) * this.perMs)
      this.updated = at
    }
  }

  take(at: number, count = 1): Verdict {
    this.refill(at)
    if (this.current - count < -this.options.burst) return flood
    this.current -= count
    return this.current >= 0 ? accept : { _tag: "Throttle", delayMs: this.delayMs(at) }
  }

  delayMs(at: number): number {
    this.refill(at)
    return this.current >= 0 ? 0 : Math.ceil(-this.current / this.perMs)
  }

  tokens(at: number): number {
    this.refill(at)
    return this.current
  }
}

/**
 * A full bucket of `burst` tokens refilled at `perSecond`. Its functions are methods (call them
 * on the bucket): every session holds one.
 */
export const make = (options: { readonly perSecond: number; readonly burst: number }, now: number): TokenBucket =>
  new Bucket(options, now)
