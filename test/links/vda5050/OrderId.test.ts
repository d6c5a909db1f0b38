import { describe, expect, it } from "vitest"
import * as OrderId from "../../../src/links/vda5050/OrderId.js"

describe("OrderId", () => {
  it("names the sending node, whatever `-` its id holds, and reads it back", () => {
    const at = Date.UTC(2026, 11, 7)
    for (const node of ["node-a", "fleet-a.plant", "a", "x--y-", "ünïcode node"]) {
      const id = OrderId.make(node, at)
      expect(id).toBe(`fleetvisor-${node}-${at.toString(36)}`)
      expect(OrderId.senderOf(id)).toBe(node)
    }
  })

  it("keeps a single node's form, which names no node, and ignores other senders' ids", () => {
    const id = OrderId.make(undefined, 1_765_000_000_000)
    expect(id).toBe(`fleetvisor-${(1_765_000_000_000).toString(36)}`)
    expect(OrderId.senderOf(id)).toBeUndefined()
    for (const other of ["order-1", "nowhere", "fleetvisor-", "fleetvisor--abc", "fleetvisor-node-a-NOT36"]) {
      expect(OrderId.senderOf(other)).toBeUndefined()
    }
  })
})
