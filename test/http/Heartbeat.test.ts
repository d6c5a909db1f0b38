import { describe, expect, it } from "vitest"
import * as Heartbeat from "../../src/http/Heartbeat.js"

/** A connection whose peer answers pings (or not), recording what the heartbeat did to it. */
const member = (answers: boolean) => {
  const seen = { pings: 0, timedOut: 0 }
  const self: Heartbeat.Member & { readonly seen: typeof seen } = {
    prevBeat: undefined,
    nextBeat: undefined,
    pingRound: 0,
    socket: {
      readyState: 1,
      OPEN: 1,
      ping: () => {
        seen.pings++
        // The pong comes back a moment later, as over a socket.
        if (answers) setTimeout(() => (self.pingRound = 0), 1)
      }
    },
    timedOut: () => void seen.timedOut++,
    seen
  }
  return self
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe("Heartbeat", () => {
  it("pings every member each round on one timer; a member that never answers is told once, one that answers never", async () => {
    const heartbeat = Heartbeat.make(40, 40)
    const alive = Array.from({ length: 150 }, () => member(true))
    const silent = member(false)
    for (const m of [...alive, silent]) heartbeat.join(m)
    await sleep(200)
    // 150 members are pinged in slices of 64, every round.
    expect(alive.every((m) => m.seen.pings >= 2)).toBe(true)
    expect(alive.every((m) => m.seen.timedOut === 0)).toBe(true)
    // The silent one: pinged once, unanswered, told once; its next round pings it again.
    expect(silent.seen.timedOut).toBeGreaterThanOrEqual(1)
    expect(silent.seen.timedOut).toBeLessThanOrEqual(silent.seen.pings)
    for (const m of [...alive, silent]) heartbeat.leave(m)
  })

  it("a member that left is pinged no more, and the timer stops with the last one", async () => {
    const heartbeat = Heartbeat.make(20, 20)
    const a = member(true)
    const b = member(true)
    heartbeat.join(a)
    heartbeat.join(b)
    await sleep(70)
    heartbeat.leave(a)
    const pingsOfA = a.seen.pings
    expect(pingsOfA).toBeGreaterThanOrEqual(1)
    await sleep(70)
    expect(a.seen.pings).toBe(pingsOfA)
    expect(a.prevBeat).toBeUndefined()
    expect(a.nextBeat).toBeUndefined()
    expect(b.seen.pings).toBeGreaterThan(pingsOfA - 1)
    heartbeat.leave(b)
    const pingsOfB = b.seen.pings
    await sleep(70)
    expect(b.seen.pings).toBe(pingsOfB)
    // Leaving twice is harmless.
    heartbeat.leave(b)
  })
})
