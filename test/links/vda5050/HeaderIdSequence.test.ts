/**
 * One `instantActions` sequence per AGV whoever sends: a link's counters continue after an id
 * another sender used (also across the uint32 wrap, and atomically on the stop channel's shared
 * counter), the ids heard are kept per AGV, and a stop is told apart from other instant actions.
 */
import * as Either from "effect/Either"
import { describe, expect, it } from "vitest"
import * as HeaderIds from "../../../src/links/vda5050/HeaderIds.js"
import * as HeardHeaderIds from "../../../src/links/vda5050/HeardHeaderIds.js"
import * as MessageCodec from "../../../src/links/vda5050/MessageCodec.js"
import * as SharedHeaderIds from "../../../src/links/vda5050/SharedHeaderIds.js"
import * as StopMessage from "../../../src/links/vda5050/StopMessage.js"

const agv = { manufacturer: "acme", serialNumber: "agv-1" }

describe("instantActions headerIds across senders", () => {
  it("a link's counter continues after a foreign id, never goes back", () => {
    const ids = HeaderIds.unsafeMake()
    ids.advance("instantActions", 41)
    expect(ids.next("instantActions")).toBe(42)
    ids.advance("instantActions", 10)
    expect(ids.next("instantActions")).toBe(43)
    expect(ids.next("order")).toBe(0)
    // Far behind on the uint32 circle: not after.
    ids.advance("instantActions", 0xffff_ffff)
    expect(ids.next("instantActions")).toBe(44)
  })

  it("continues across the uint32 wrap", () => {
    const ids = HeaderIds.unsafeMake()
    ids.advance("instantActions", 0xffff_fffe)
    ids.advance("instantActions", 0xffff_ffff)
    expect(ids.next("instantActions")).toBe(0)
    ids.advance("instantActions", 0xffff_fff0)
    expect(ids.next("instantActions")).toBe(1)
  })

  it("the shared counter of the stop channel advances too", () => {
    const table = SharedHeaderIds.make(4)
    const slot = table.slotOf(agv)!
    expect(slot.ids.next("instantActions")).toBe(0)
    slot.ids.advance("instantActions", 7)
    expect(slot.ids.next("instantActions")).toBe(8)
    slot.ids.advance("instantActions", 3)
    expect(slot.ids.next("instantActions")).toBe(9)
  })

  it("the ids heard are kept per AGV, and a node's own stop takes the next one", () => {
    const heard = HeardHeaderIds.make()
    expect(heard.next("acme/agv-1")).toBe(0)
    heard.heard("acme/agv-1", 5)
    heard.heard("acme/agv-1", 3)
    expect(heard.last("acme/agv-1")).toBe(5)
    expect(heard.next("acme/agv-1")).toBe(6)
    expect(heard.last("acme/agv-1")).toBe(6)
    heard.heard("acme/agv-2")
    expect(heard.has("acme/agv-2")).toBe(true)
    expect(heard.last("acme/agv-2")).toBeUndefined()
    expect([...heard.robots()]).toEqual(["acme/agv-1", "acme/agv-2"])
  })

  it("a stop is startPause + cancelOrder in one message, recognised when heard", () => {
    const stop = StopMessage.encode(agv, 12, Date.now(), "node-b-")
    const decoded = Either.getOrThrow(MessageCodec.decode("instantActions", new TextEncoder().encode(Either.getOrThrow(stop.payload))))
    expect(decoded.headerId).toBe(12)
    expect(decoded.actions.map((action) => [action.actionType, action.blockingType])).toEqual([["startPause", "HARD"], ["cancelOrder", "NONE"]])
    expect(StopMessage.cancelIdOf(decoded)).toBe(stop.cancelId)
    expect(stop.cancelId).toContain("node-b-")
    expect(StopMessage.cancelIdOf({ ...decoded, actions: decoded.actions.filter((action) => action.actionType === "cancelOrder") })).toBeUndefined()
  })
})
