/**
 * The `cluster` subtree: a node started `supervised` runs its membership, ownership and backplane
 * loops as actors under a `cluster` supervisor, visible in the actor tree; crashing one restarts
 * its loop from the node's own state and releases nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as TestKit from "../../src/actors/TestKit.js"
import * as ClusterNode from "../../src/cluster/ClusterNode.js"
import * as ChildSpec from "../../src/supervisors/ChildSpec.js"
import * as Supervisor from "../../src/supervisors/Supervisor.js"
import { eventually, redisServer } from "./fixtures.js"

const robots = ["arm-1", "arm-2", "agv-1", "agv-2"]
const ttl = 1_000

describe("the cluster subtree", () => {
  it.scopedLive("shows membership, ownership and backplane under cluster; a crash of ownership keeps every lease", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const cluster = yield* ClusterNode.start({ redisUrl: server.url, nodeId: "n1", ttl, supervised: true })
      const changes: Array<string> = []
      yield* Effect.forkScoped(Stream.runForEach(cluster.ownership.changes, (change) => Effect.sync(() => void changes.push(`${change._tag} ${change.robot}`))))
      const system = yield* TestKit.system()
      yield* system.spawn(Supervisor.make({
        children: [
          ChildSpec.make("cluster", Supervisor.make({
            strategy: "one_for_one",
            children: cluster.children.map((child) => ChildSpec.make(child.id, child.behaviour))
          }))
        ]
      }), { name: "root" })
      yield* cluster.manage(robots)
      // The first epoch's grace is one TTL.
      yield* eventually("every robot owned", () => cluster.owned().length === robots.length, ttl + 4_000)

      expect(yield* TestKit.renderTree(system)).toBe(TestKit.dedent(`
        root (one_for_one)
        └─ cluster (one_for_one)
           ├─ membership running mailbox=0 restarts=0
           ├─ ownership running mailbox=0 restarts=0
           └─ backplane running mailbox=0 restarts=0`))

      // Crash ownership: its loop runs again from the node's leases; nothing is lost or released.
      const tokens = robots.map((robot) => cluster.ownership.tokenOf(robot))
      const renewals = cluster.ownership.counts().renewals
      yield* system.crash(yield* TestKit.findActor(system, "ownership"), "chaos monkey")
      yield* TestKit.awaitUntil(Effect.map(TestKit.renderTree(system, { under: "cluster" }), (tree) => /ownership running mailbox=\d+ restarts=1/.test(tree)), {
        waitedFor: "ownership restarted"
      })
      // Past several deadlines: only renewals after the restart can have kept the claims.
      yield* Effect.sleep(2 * ttl)
      expect(cluster.ownership.counts().renewals).toBeGreaterThan(renewals + 2)
      expect(cluster.owned().length).toBe(robots.length)
      expect(robots.map((robot) => cluster.ownership.tokenOf(robot))).toEqual(tokens)
      expect(changes.filter((change) => !change.startsWith("Acquired"))).toEqual([])
      expect(cluster.ownership.counts()).toMatchObject({ lost: 0, released: 0 })
      expect(yield* TestKit.renderTree(system, { under: "cluster" })).toBe(TestKit.dedent(`
        cluster (one_for_one)
        ├─ membership running mailbox=0 restarts=0
        ├─ ownership running mailbox=0 restarts=1
        └─ backplane running mailbox=0 restarts=0`))
    }), { timeout: 30_000 })
})
