import { describe, expect, it } from "@effect/vitest"
import * as Rendezvous from "../../src/cluster/Rendezvous.js"

const keys = Array.from({ length: 3_000 }, (_, i) => `robot-${i}`)
const nodes = ["node-a", "node-b", "node-c"]

const placement = (among: ReadonlyArray<string>) => new Map(keys.map((key) => [key, Rendezvous.ownerOf(key, among)!]))

describe("Rendezvous", () => {
  it("is deterministic: the same owner whatever the order of the nodes, and fixed weights", () => {
    for (const key of keys.slice(0, 200)) {
      const owner = Rendezvous.ownerOf(key, nodes)
      expect(Rendezvous.ownerOf(key, [...nodes].reverse())).toBe(owner)
      expect(Rendezvous.ownerOf(key, [nodes[1], nodes[2], nodes[0]])).toBe(owner)
      expect(Rendezvous.rank(key, nodes)[0]).toBe(owner)
    }
    // Frozen values: a change of the hash would move every robot of a running cluster.
    expect([Rendezvous.weight("robot-1", "node-a"), Rendezvous.weight("", ""), Rendezvous.weight("agv/7", "n1")])
      .toMatchInlineSnapshot(`
        [
          3769091397,
          91794203,
          1286723277,
        ]
      `)
  })

  it("has no owner among no nodes, and the only node among one", () => {
    expect(Rendezvous.ownerOf("robot-1", [])).toBeUndefined()
    expect(Rendezvous.ownerOf("robot-1", ["solo"])).toBe("solo")
  })

  it("balances 3,000 keys over 3 nodes within 10 % of the even share", () => {
    const counts = new Map<string, number>()
    for (const owner of placement(nodes).values()) counts.set(owner, (counts.get(owner) ?? 0) + 1)
    expect([...counts.keys()].sort()).toEqual(nodes)
    for (const count of counts.values()) expect(Math.abs(count - 1_000)).toBeLessThan(100)
  })

  it("moves only the removed node's keys, and a new node takes keys only for itself", () => {
    const before = placement(nodes)
    const after = placement(["node-a", "node-c"])
    for (const key of keys) {
      if (before.get(key) !== "node-b") expect(after.get(key)).toBe(before.get(key))
      else expect(after.get(key)).not.toBe("node-b")
    }
    const grown = placement([...nodes, "node-d"])
    let moved = 0
    for (const key of keys) {
      if (grown.get(key) !== before.get(key)) {
        expect(grown.get(key)).toBe("node-d")
        moved++
      }
    }
    expect(Math.abs(moved - 750)).toBeLessThan(100)
  })

  it("ranks every node once, owner first", () => {
    const ranked = Rendezvous.rank("robot-9", nodes)
    expect([...ranked].sort()).toEqual(nodes)
    expect(Rendezvous.ownerOf("robot-9", ranked.slice(1))).toBe(ranked[1])
  })
})
