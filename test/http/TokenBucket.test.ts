import { describe, expect, it } from "vitest"
import * as TokenBucket from "../../src/http/TokenBucket.js"

describe("TokenBucket", () => {
  it("accepts a burst, throttles beyond it with the wait that pays the debt, and calls a full burst of debt a flood", () => {
    const bucket = TokenBucket.make({ perSecond: 10, burst: 3 }, 0)
    expect([bucket.take(0), bucket.take(0), bucket.take(0)].map((v) => v._tag)).toEqual(["Accept", "Accept", "Accept"])
    expect(bucket.take(0)).toEqual({ _tag: "Throttle", delayMs: 100 })
    expect(bucket.take(0)).toEqual({ _tag: "Throttle", delayMs: 200 })
    expect(bucket.take(0)).toEqual({ _tag: "Throttle", delayMs: 300 })
    expect(bucket.take(0)).toEqual({ _tag: "Flood" })
    // The refused frame took nothing: the debt is still paid off in 300 ms.
    expect(bucket.delayMs(0)).toBe(300)
    expect(bucket.delayMs(300)).toBe(0)
    expect(bucket.take(400)._tag).toBe("Accept")
  })

  it("takes one token per request of a frame: a frame of many requests costs as much as as many frames", () => {
    const bucket = TokenBucket.make({ perSecond: 10, burst: 10 }, 0)
    expect(bucket.take(0, 7)._tag).toBe("Accept")
    expect(bucket.tokens(0)).toBe(3)
    // 7 more: 4 in debt, paid off in 400 ms.
    expect(bucket.take(0, 7)).toEqual({ _tag: "Throttle", delayMs: 400 })
    // Debt past a whole burst is a flood, and the refused frame takes nothing.
    expect(bucket.take(0, 7)._tag).toBe("Flood")
    expect(bucket.tokens(0)).toBe(-4)
    expect(bucket.take(0, 6)).toEqual({ _tag: "Throttle", delayMs: 1_000 })
    expect(bucket.take(2_000, 10)._tag).toBe("Accept")
  })

  it("refills at the rate up to the burst, never beyond", () => {
    const bucket = TokenBucket.make({ perSecond: 2, burst: 4 }, 0)
    for (let i = 0; i < 4; i++) bucket.take(0)
    expect(bucket.tokens(0)).toBe(0)
    expect(bucket.tokens(1_000)).toBe(2)
    expect(bucket.tokens(60_000)).toBe(4)
  })
})
