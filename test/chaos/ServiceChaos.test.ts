/**
 * Random kills in the running service: while dashboard clients watch the fleet and the
 * simulators keep publishing, session actors and robot links are crashed at random. Afterwards
 * the tree has its shape again, the registries and the hub hold nothing of dead actors, and
 * every client receives updates again (it reconnects and resubscribes by itself).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Inspection from "../../src/actors/Inspection.js"
import * as PubSub from "../../src/actors/PubSub.js"
import * as Registry from "../../src/actors/Registry.js"
import * as TestKit from "../../src/actors/TestKit.js"
import * as FleetNode from "../service/support/FleetNode.js"

const clients = 6
const chaosMillis = 3_000

describe("service chaos", () => {
  it.scopedLive("random crashes of sessions and robot links: the tree heals, nothing of the dead remains, every client receives again", () =>
    Effect.gen(function*() {
      const nodeScope = yield* Scope.make()
      const node = yield* Scope.extend(FleetNode.start({ arms: 2, agvs: 3 }), nodeScope)
      const { system } = node.service
      const received = Array.from({ length: clients }, () => 0)
      for (let i = 0; i < clients; i++) {
        const client = yield* Scope.extend(FleetNode.connect(node.service), nodeScope)
        yield* client.resubscribe(client.rpc.FleetSubscribe({})).pipe(
          Stream.runForEach(() => Effect.sync(() => received[i]++)),
          Effect.forkIn(nodeScope)
        )
      }
      yield* TestKit.awaitUntil(Effect.sync(() => received.every((n) => n > 0)), { waitedFor: "every client's first view" })
      // The tree's shape: who is where and running, whatever the restart counts, session ids and sibling order.
      const shape = (tree: string) =>
        tree.split("\n")
          .map((line) => line.replace(/[├└│─]/g, " ").replace(/ (mailbox|restarts)=\d+/g, "").replace(/session:\d+/g, "session"))
          .sort()
          .join("\n")
      const before = shape(yield* system.render)

      let crashes = 0
      const deadline = Date.now() + chaosMillis
      while (Date.now() < deadline) {
        const nodes = yield* system.snapshot
        const live: Array<Inspection.ActorNode> = []
        const visit = (list: ReadonlyArray<Inspection.ActorNode>) =>
          list.forEach((n) => {
            if (n.id !== null && n.status === "running" && /^(session:|robot:|agv:)/.test(n.name)) live.push(n)
            visit(n.children)
          })
        visit(nodes)
        if (live.length > 0) {
          const victim = system.lookup(live[Math.floor(Math.random() * live.length)].id!)
          if (victim._tag === "Some") {
            yield* system.crash(victim.value, "chaos")
            crashes++
          }
        }
        yield* Effect.sleep("40 millis")
      }
      expect(crashes).toBeGreaterThan(20)

      yield* TestKit.awaitUntil(Effect.map(system.render, (tree) => shape(tree) === before), {
        timeoutMillis: 15_000,
        describe: system.render,
        waitedFor: "the tree to heal"
      })
      for (const entry of Registry.all(node.service.registries.sessions)) expect(entry.ref.isAlive()).toBe(true)
      for (const ref of PubSub.subscribers(node.fleet.hub)) expect(ref.isAlive()).toBe(true)
      expect(Registry.all(node.service.registries.sessions).length).toBe(clients)

      const after = [...received]
      yield* TestKit.awaitUntil(Effect.sync(() => received.every((n, i) => n > after[i])), {
        timeoutMillis: 10_000,
        waitedFor: "every client to receive again"
      })

      // The node shuts down gracefully: no actor and no fiber of its system is left.
      yield* Scope.close(nodeScope, Exit.void)
      const stats = yield* system.stats
      expect([stats.actors, stats.fibers]).toEqual([0, 0])
    }), { timeout: 40_000 })
})
