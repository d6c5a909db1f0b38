/**
 * A robot link that fails in a loop (its controller refuses every connection) is restarted with
 * exponential backoff, and the rest of the node does not notice: the other robots' links never
 * restart and other sessions' round trips stay short (the figure is printed).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as net from "node:net"
import * as Inspection from "../../src/actors/Inspection.js"
import * as Registry from "../../src/actors/Registry.js"
import * as TestKit from "../../src/actors/TestKit.js"
import * as FleetNode from "../service/support/FleetNode.js"

/** A port nothing listens on: bound, then closed. */
const closedPort = Effect.async<number>((resume) => {
  const server = net.createServer().listen(0, "127.0.0.1", () => {
    const port = (server.address() as net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

const percentile = (values: ReadonlyArray<number>, p: number) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) * p)]

describe("a link crashing in a loop", () => {
  it.scopedLive("is backed off; the other robots are untouched and other sessions keep a p99 round trip under 250 ms", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const node = yield* FleetNode.start({ arms: 1, agvs: 1, env: { FLEET_RMI_ROBOTS: `broken-arm=127.0.0.1:${port}` } })
      const client = yield* FleetNode.connect(node.service)
      const pings = (count: number) =>
        Effect.gen(function*() {
          const times: Array<number> = []
          for (let i = 0; i < count; i++) {
            const started = performance.now()
            yield* client.rpc.Ping()
            times.push(performance.now() - started)
            yield* Effect.sleep("10 millis")
          }
          return times
        })
      const restartsOf = Effect.map(node.service.system.snapshot, (nodes) => Inspection.find(nodes, "robot:broken-arm")?.restarts ?? 0)

      // The broken arm has been failing since the start; measure while it keeps failing.
      yield* TestKit.awaitUntil(Effect.map(restartsOf, (n) => n >= 2), { waitedFor: "the broken arm to be restarted twice" })
      const atStart = yield* restartsOf
      const during = yield* pings(150)
      const after = yield* restartsOf
      // Backoff (200 ms doubling) allows only a few restarts in the ~2 s of pings, not hundreds.
      expect(after - atStart).toBeLessThanOrEqual(5)

      // The healthy robots and sessions are untouched.
      const tree = Inspection.render([Inspection.find(yield* node.service.system.snapshot, "links")!])
      expect(tree).toMatch(/robot:demo-arm-1 running mailbox=\d+ restarts=0/)
      expect(tree).toMatch(/agv:fleetvisor\/demo-0001 running mailbox=\d+ restarts=0/)
      const p99 = percentile(during, 0.99)
      console.log(JSON.stringify({ test: "CrashLoop", restarts: after, pingP50: percentile(during, 0.5), pingP99: p99 }))
      expect(p99).toBeLessThan(250)
    }), { timeout: 30_000 })

  it.scopedLive("past FLEET_LINK_MAX_RESTARTS it escalates: fleet restarts its links; the gateway and its sessions are untouched", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const node = yield* FleetNode.start({
        arms: 1,
        agvs: 1,
        env: { FLEET_RMI_ROBOTS: `broken-arm=127.0.0.1:${port}`, FLEET_LINK_MAX_RESTARTS: "2" }
      })
      const client = yield* FleetNode.connect(node.service)
      const sessionsBefore = Registry.all(node.service.registries.sessions).map((e) => e.ref.id)
      const linksRestarts = Effect.map(node.service.system.snapshot, (nodes) => Inspection.find(nodes, "links")?.restarts ?? 0)
      yield* TestKit.awaitUntil(Effect.map(linksRestarts, (n) => n >= 1), {
        timeoutMillis: 15_000,
        waitedFor: "fleet to restart its links after they exceeded their intensity"
      })
      yield* client.rpc.Ping()
      const nodes = yield* node.service.system.snapshot
      expect(Inspection.find(nodes, "gateway")!.restarts).toBe(0)
      expect(Inspection.find(nodes, "listener")!.restarts).toBe(0)
      expect(Registry.all(node.service.registries.sessions).map((e) => e.ref.id)).toEqual(sessionsBefore)
    }), { timeout: 30_000 })
})
