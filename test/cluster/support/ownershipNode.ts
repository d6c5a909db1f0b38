/**
 * One ownership node in a process of its own, for the tests that pause a node for real (SIGSTOP).
 *
 *   node --import tsx test/cluster/support/ownershipNode.ts <redis url> <node id> <robots> <ttl> <margin>
 *
 * Every 20 ms it writes a line `{"t": <ms since the epoch>, "claims": {<robot>: <ms since the
 * epoch until which it claims the robot>}}`, computed from its own `owns` deadline, so that the
 * test can compare its claims with other nodes' acquisitions on the same clock, and its counts
 * (`lost`, `lapsed`); and a line `{"t": …, "change": <tag>, "robot": <robot>}` at each change of its ownership.
 */
import { Effect, Stream } from "effect"
import * as Membership from "../../../src/cluster/Membership.js"
import * as Ownership from "../../../src/cluster/Ownership.js"
import * as RedisConnection from "../../../src/cluster/RedisConnection.js"

const [url, node, count, ttlText, marginText] = process.argv.slice(2)
const robots = Array.from({ length: Number(count) }, (_, i) => `robot-${i}`)
const ttl = Number(ttlText)
const margin = Number(marginText)

const program = Effect.scoped(Effect.gen(function*() {
  const redis = yield* RedisConnection.connect(url, { commandTimeout: 300, maxReconnectDelay: 100 })
  const membership = yield* Membership.make({ redis, node, protocol: 1, ttl, pollInterval: 50 })
  const ownership = yield* Ownership.make({ redis, membership, robots, ttl, margin, pollInterval: 100, settle: 500 })
  yield* Effect.forkScoped(Stream.runForEach(ownership.changes, (change) =>
    Effect.sync(() => void process.stdout.write(`${JSON.stringify({ t: Date.now(), change: change._tag, robot: change.robot })}\n`))))
  return yield* Effect.forever(Effect.zipRight(
    Effect.sync(() => {
      const now = Date.now()
      const claims: Record<string, number> = {}
      for (const robot of robots) {
        const left = ownership.remaining(robot)
        if (left > 0) claims[robot] = now + left
      }
      const { lost, lapsed } = ownership.counts()
      process.stdout.write(`${JSON.stringify({ t: now, claims, counts: { lost, lapsed } })}\n`)
    }),
    Effect.sleep(20)
  ))
}))

process.on("SIGTERM", () => process.exit(0))
Effect.runFork(program)
