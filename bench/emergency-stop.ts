/**
 * Emergency stop latency of an arm's link: from `tellUrgent(EmergencyStop)` to the
 * controller's reply to the FRC_Abort it caused (an upper bound of "the command leaving the
 * link"), idle and under load, beside a baseline measured in the same run: one FRC_GetStatus
 * round trip on a bare `RmiClient` (the protocol's floor on this machine).
 *
 *   npx tsx bench/emergency-stop.ts      → one JSON object on stdout
 *
 * Under load, `arms` other links poll their simulators at 125 Hz (3 commands per poll), the
 * measured link polls at 125 Hz too, and its mailbox holds `queued` motions that the stop must
 * overtake. Simulators run in the same process, so their work is part of the load.
 *
 * `fleetStopAnswered` is the whole service-side stop, idle: `Fleet.emergencyStop` latches the
 * arm, sends the stop, waits for the controller's reply and commits the latch to a SQLite file
 * before it answers (what the `FleetEmergencyStop` RPC waits for), then the holder's Reset.
 */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { performance } from "node:perf_hooks"
import { ActorSystem, PubSub } from "../src/actors/index.js"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Fleet from "../src/apps/fleet/Fleet.js"
import * as FleetConfig from "../src/apps/fleet/FleetConfig.js"
import * as Database from "../src/store/Database.js"
import { StopLatchStore, layer as latchLayer } from "../src/store/StopLatchStore.js"
import * as RmiClient from "../src/links/rmi/RmiClient.js"
import * as RmiLink from "../src/links/rmi/RmiLink.js"
import * as RmiPacket from "../src/links/rmi/RmiPacket.js"
import * as RmiSimulator from "../src/links/rmi/RmiSimulator.js"
import * as percentiles from "./lib/percentiles.js"

const samples = 200
const arms = 20
const queued = 500
const summary = (values: ReadonlyArray<number>) => percentiles.summary(values, 3)

const nudge: RmiPacket.InstructionBody = {
  Instruction: "FRC_LinearRelative",
  Configuration: RmiPacket.DefaultConfiguration,
  Position: { X: 1, Y: 0, Z: 0, W: 0, P: 0, R: 0 },
  SpeedType: "mmSec",
  Speed: 100,
  TermType: "FINE",
  TermValue: 1
}

const baseline = Effect.scoped(
  Effect.gen(function*() {
    const sim = yield* RmiSimulator.make({ port: 0 })
    const client = yield* RmiClient.connect({ host: "127.0.0.1", port: sim.port })
    const times: Array<number> = []
    for (let i = 0; i < samples; i++) {
      const t0 = performance.now()
      yield* client.readStatus
      times.push(performance.now() - t0)
    }
    return summary(times)
  })
)

const stops = (load: boolean) =>
  Effect.scoped(
    Effect.gen(function*() {
      const system = yield* ActorSystem.make({ logFailures: false })
      const hub = yield* PubSub.make()
      const link = (id: string) =>
        Effect.flatMap(RmiSimulator.make({ port: 0 }), (sim) =>
          system.spawn(RmiLink.make({ id, host: "127.0.0.1", port: sim.port, hub, pollHz: 125 }), { name: `robot:${id}` }))
      const arm = yield* link("arm-0")
      if (load) for (let i = 1; i <= arms; i++) yield* link(`arm-${i}`)
      yield* Effect.repeat(arm.ask(RmiLink.getInfo), { until: (info) => info.connected, schedule: Schedule.spaced("5 millis") })
      const times: Array<number> = []
      for (let i = 0; i < samples; i++) {
        if (load) for (let j = 0; j < queued; j++) arm.unsafeTell({ _tag: "Instruct", instruction: nudge })
        const t0 = performance.now()
        yield* arm.ask(RmiLink.emergencyStop, { urgent: true })
        times.push(performance.now() - t0)
        yield* arm.ask(RmiLink.operate("Reset"))
      }
      return summary(times)
    })
  )

const fleetStops = Effect.scoped(
  Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-bench-stop-"))),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )
    const store = yield* Layer.build(latchLayer.pipe(Layer.provide(Database.layer({ filename: path.join(dir, "bench.db") }))))
    const sim = yield* RmiSimulator.make({ port: 0 })
    const system = yield* ActorSystem.make({ logFailures: false })
    const fleet = yield* Fleet.make({
      settings: FleetConfig.make({ rmiRobots: [{ id: "arm-1", host: "127.0.0.1", port: sim.port }] }),
      hub: yield* PubSub.make(),
      system,
      latchStore: Context.get(store, StopLatchStore)
    })
    yield* Effect.repeat(fleet.state, {
      until: (state) => state.robots.some((robot) => robot.id === "arm-1" && robot.connection === "online"),
      schedule: Schedule.spaced("5 millis")
    })
    const holder = { session: "bench", user: "bench" }
    yield* fleet.acquire("arm-1", holder, 600_000)
    const times: Array<number> = []
    for (let i = 0; i < samples; i++) {
      const t0 = performance.now()
      yield* fleet.emergencyStop("arm-1", "bench")
      times.push(performance.now() - t0)
      yield* fleet.command("arm-1", holder, { _tag: "Reset" })
    }
    return summary(times)
  })
)

const main = async () => {
  const result = {
    benchmark: "emergency-stop",
    baselineGetStatusRoundTrip: await Effect.runPromise(baseline),
    stopIdle: await Effect.runPromise(stops(false)),
    stopUnderLoad: { otherArmsPolling125Hz: arms, queuedMotions: queued, ...(await Effect.runPromise(stops(true))) },
    fleetStopAnswered: await Effect.runPromise(fleetStops)
  }
  console.log(JSON.stringify(result, null, 2))
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
