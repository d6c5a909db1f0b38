/**
 * A robot whose controller refuses every connection is the robot's status, not a crash: its link
 * stays up and tries again with a backoff of its own (200 ms doubling), the supervisor never
 * restarts it, so nothing counts toward the restart intensity of `links` (even a `links` that
 * would give up after 2 restarts keeps running), the other robots' links are untouched and other
 * sessions' round trips stay short (the figure is printed). A link that does crash in a loop (a
 * bug) is still restarted with backoff, and past `FLEET_LINK_MAX_RESTARTS` `fleet` restarts its
 * links while the gateway and its sessions stay.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as net from "node:net"
import type { ActorRef } from "../../src/actors/ActorRef.js"
import * as Inspection from "../../src/actors/Inspection.js"
import * as Registry from "../../src/actors/Registry.js"
import * as TestKit from "../../src/actors/TestKit.js"
import * as RmiLink from "../../src/links/rmi/RmiLink.js"
import * as FleetNode from "../service/support/FleetNode.js"

/** A port nothing listens on: bound, then closed. */
const closedPort = Effect.async<number>((resume) => {
  const server = net.createServer().listen(0, "127.0.0.1", () => {
    const port = (server.address() as net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

const percentile = (values: ReadonlyArray<number>, p: number) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) * p)]

describe("a robot that refuses every connection", () => {
  it.scopedLive("is retried inside its link with backoff, never restarted; nothing counts toward links' intensity; other sessions keep a p99 round trip under 250 ms", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const node = yield* FleetNode.start({
        arms: 1,
        agvs: 1,
        // A links supervisor that would give up after 2 restarts: refused connections must not count.
        env: { FLEET_RMI_ROBOTS: `broken-arm=127.0.0.1:${port}`, FLEET_LINK_MAX_RESTARTS: "2" }
      })
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
      const broken = Registry.unsafeLookup(node.fleet.registry, "robot:broken-arm")[0]!.ref as ActorRef<RmiLink.RmiLinkMessage>
      const attempts = Effect.map(broken.ask(RmiLink.getInfo), (info) => info.lost)

      // The broken arm has been refused since the start; measure while it keeps being refused.
      yield* TestKit.awaitUntil(Effect.map(Effect.orDie(attempts), (n) => n >= 2), { waitedFor: "the broken arm to be refused twice" })
      const atStart = yield* attempts
      const during = yield* pings(150)
      const after = yield* attempts
      // Backoff (200 ms doubling, ± 20 %) allows only a few attempts in the ~2 s of pings, not hundreds.
      expect(after - atStart).toBeLessThanOrEqual(5)
      const info = yield* broken.ask(RmiLink.getInfo)
      expect(info).toMatchObject({ connected: false, sessions: 0, reason: expect.stringMatching(/RmiConnectionLost/) })
      const view = (yield* node.fleet.state).robots.find((robot) => robot.id === "broken-arm")
      expect(view).toMatchObject({ status: "disconnected", connection: "broken" })

      // Nobody restarted: not the broken arm's link, not the healthy robots', not links (which gives up after 2).
      const nodes = yield* node.service.system.snapshot
      const tree = yield* TestKit.renderTree(node.service.system, { under: "links" })
      expect(tree).toMatch(/robot:broken-arm running mailbox=\d+ restarts=0/)
      expect(tree).toMatch(/robot:demo-arm-1 running mailbox=\d+ restarts=0/)
      expect(tree).toMatch(/agv:fleetvisor\/demo-0001 running mailbox=\d+ restarts=0/)
      expect(Inspection.find(nodes, "links")!.restarts).toBe(0)
      expect(Inspection.find(nodes, "fleet")!.restarts).toBe(0)
      const p99 = percentile(during, 0.99)
      console.log(JSON.stringify({ test: "CrashLoop", attempts: after, restarts: 0, pingP50: percentile(during, 0.5), pingP99: p99 }))
      expect(p99).toBeLessThan(250)
    }), { timeout: 30_000 })

  it.scopedLive("a link that crashes in a loop (a bug) is restarted; past FLEET_LINK_MAX_RESTARTS fleet restarts its links; the gateway and its sessions are untouched", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 1, env: { FLEET_LINK_MAX_RESTARTS: "2" } })
      const client = yield* FleetNode.connect(node.service)
      const sessionsBefore = Registry.all(node.service.registries.sessions).map((e) => e.ref.id)
      const linksRestarts = Effect.map(node.service.system.snapshot, (nodes) => Inspection.find(nodes, "links")?.restarts ?? 0)
      // A thrown exception in the arm's link, three times: a bug, which the supervisors handle.
      yield* Effect.gen(function*() {
        yield* TestKit.crashChild(node.service.system, "robot:demo-arm-1", "a bug")
        yield* Effect.sleep("50 millis")
      }).pipe(
        Effect.repeat({ until: () => Effect.runSync(linksRestarts) >= 1 }),
        Effect.timeout("15 seconds"),
        Effect.orDie
      )
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
