/**
 * A node paused for real: a child process running one ownership node is SIGSTOPped for twice the
 * TTL while two nodes in this process take its robots. Its own log of deadlines shows that it
 * stopped claiming each robot before another node acquired it, and that after SIGCONT it claims
 * none of them.
 */
import { describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Effect, Stream } from "effect"
import { eventually, margin, redisServer, robotIds, startNode, ttl } from "./fixtures.js"

const robots = robotIds(30)
const root = fileURLToPath(new URL("../..", import.meta.url))

interface Line {
  readonly t: number
  readonly claims: Record<string, number>
  readonly counts?: { readonly lost: number; readonly lapsed: number }
  /** A change of the child's ownership instead of its claims. */
  readonly change?: string
  readonly robot?: string
}

/** The child node, killed when the scope closes; its lines as they come. */
const childNode = (url: string) =>
  Effect.gen(function*() {
    const lines: Array<Line> = []
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["--import", "tsx", "test/cluster/support/ownershipNode.ts", url, "n0", String(robots.length), String(ttl), String(margin)], {
          cwd: root,
          stdio: ["ignore", "pipe", "inherit"]
        })
      ),
      (child: ChildProcess) => Effect.sync(() => (child.kill("SIGCONT"), child.kill("SIGKILL")))
    )
    let rest = ""
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      const parts = (rest + chunk).split("\n")
      rest = parts.pop()!
      for (const part of parts) if (part !== "") lines.push(JSON.parse(part) as Line)
    })
    return { child, lines }
  })

describe("a paused node", () => {
  it.scopedLive("SIGSTOPped for 2 × TTL: it stops claiming before another node acquires, and claims nothing after", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      const { child, lines } = yield* childNode(server.url)
      // Alone at first, the child takes every robot; the others join after and leave them (sticky).
      const claimLines = () => lines.filter((line) => line.change === undefined)
      yield* eventually("the child owns every robot", () => Object.keys(claimLines().at(-1)?.claims ?? {}).length === robots.length, 15_000)
      const nodes = yield* Effect.forEach(["n1", "n2"], (id) => startNode(server, id, robots))
      const acquiredAt = new Map<string, number>()
      for (const node of nodes) {
        yield* Effect.forkScoped(Stream.runForEach(node.ownership.changes, (change) =>
          Effect.sync(() => {
            if (change._tag === "Acquired" && !acquiredAt.has(change.robot)) acquiredAt.set(change.robot, Date.now())
          })))
      }
      yield* Effect.sleep(ttl / 2)
      expect(acquiredAt.size).toBe(0)

      const stoppedAt = Date.now()
      child.kill("SIGSTOP")
      yield* Effect.sleep(2 * ttl)
      child.kill("SIGCONT")
      const resumedAt = Date.now()
      expect(acquiredAt.size).toBe(robots.length)
      const failover = Math.max(...acquiredAt.values()) - stoppedAt
      expect(failover).toBeLessThanOrEqual(ttl + 2_000)
      yield* eventually("the child speaks again", () => (claimLines().at(-1)?.t ?? 0) > resumedAt + 300, 3_000)

      const lastClaim = new Map<string, number>()
      for (const line of claimLines()) {
        for (const [robot, until] of Object.entries(line.claims)) lastClaim.set(robot, Math.max(lastClaim.get(robot) ?? 0, until))
      }
      const gaps = robots.map((robot) => acquiredAt.get(robot)! - lastClaim.get(robot)!)
      console.log(`paused node: fail-over ${failover} ms after SIGSTOP (TTL ${ttl} ms); acquisitions came ${Math.round(Math.min(...gaps))}–${Math.round(Math.max(...gaps))} ms after the paused node's own deadline`)
      expect(Math.min(...gaps)).toBeGreaterThanOrEqual(0)
      const after = claimLines().filter((line) => line.t >= resumedAt)
      expect(after.length).toBeGreaterThan(5)
      expect(after.filter((line) => Object.keys(line.claims).length > 0)).toEqual([])
      // Woken, it reported each robot lost once, at its deadline (its first timers), before any answer from Redis.
      const lost = lines.filter((line) => line.change === "Lost" && line.t >= resumedAt)
      expect(lost.map((line) => line.robot).sort()).toEqual([...robots].sort())
      expect(lines.filter((line) => line.change !== undefined && line.change !== "Acquired" && line.change !== "Lost")).toEqual([])
      expect(after.at(-1)!.counts).toEqual({ lost: robots.length, lapsed: robots.length })
      console.log(`paused node: woken, it reported its ${robots.length} robots lost ${Math.min(...lost.map((line) => line.t - resumedAt))}–${Math.max(...lost.map((line) => line.t - resumedAt))} ms after SIGCONT (the test's clock)`)
      expect(robots.filter((robot) => nodes.filter((node) => node.ownership.owns(robot)).length !== 1)).toEqual([])
    }), 30_000)
})
