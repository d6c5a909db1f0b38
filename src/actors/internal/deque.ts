/**
 * An array-backed ring buffer: O(1) push at the back, shift at the front and
 * peek, growing by doubling. Mailboxes and the dispatcher's run queue use it
 * because a JavaScript array's `shift` is O(n) once it is large.
 *
 * @internal
 */
export class Deque<A> {
  private buffer: Array<A | undefined>
  private head = 0
  private mask: number
  length = 0

  constructor(initialCapacity = 8) {
    let capacity = 8
    while (capacity < initialCapacity) capacity <<= 1
    this.buffer = new Array(capacity)
    this.mask = capacity - 1
  }

  push(value: A): void {
    if (this.length === this.buffer.length) this.grow()
    this.buffer[(this.head + this.length) & this.mask] = value
    this.length++
  }

  shift(): A | undefined {
    if (this.length === 0) return undefined
    const value = this.buffer[this.head]
    this.buffer[this.head] = undefined
    this.head = (this.head + 1) & this.mask
    this.length--
    return value
  }

  peek(): A | undefined {
    return this.length === 0 ? undefined : this.buffer[this.head]
  }

  /** Removes every element, passing each (oldest first) to `f`. */
  drain(f: (value: A) => void): void {
    while (this.length > 0) f(this.shift() as A)
  }

  private grow(): void {
    const old = this.buffer
    const next = new Array<A | undefined>(old.length * 2)
    for (let i = 0; i < this.length; i++) next[i] = old[(this.head + i) & this.mask]
    this.buffer = next
    this.head = 0
    this.mask = next.length - 1
  }
}
