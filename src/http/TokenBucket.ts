/**
 * The flood limit of one session: a token bucket that throttles before it gives up.
 *
 * Each frame takes a token; tokens refill at `perSecond` up to `burst`. A frame that finds the
 * bucket empty is not refused: it goes into debt and waits until the refill pays it off (the
 * session stops reading its socket meanwhile, so TCP slows the sender). A client whose debt
 * reaches a whole `burst` is not slowing down: that frame is a `Flood`, and the session closes
 * with 1008.
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
  /** Takes a token for one frame at `now` (ms). */
  take(now: number): Verdict
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

  take(at: number): Verdict {
    this.refill(at)
    if (this.current - 1 < -this.options.burst) return flood
    this.current -= 1
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
