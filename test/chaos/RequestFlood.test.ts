/**
 * The attack of issue 13, item 1, held by the default limits. For 5 s an attacker in another
 * process (`support/RequestFlooder.ts`) sends MessagePack frames of 1,000 `Ping`s at 40 frames a
 * second (reconnecting whenever it is closed), 2,000 `FleetSubscribe` in frames of 100, frames of
 * 50 `Ping`s at 40 a second, and, in one patient session within the rate limit, 200
 * `FleetSubscribe`. Meanwhile an operator holds a lease and pings every 100 ms.
 *
 * Every flooding session is closed with 1008 (none of the 1,000-request frames is served), the
 * patient one gets `MAX_STREAMS_PER_SESSION` streams and `Overloaded` for the rest and is still
 * served, the operator's pings stay fast, it keeps its lease, nothing in `fleet` restarts, and
 * the service process's resident memory stays bounded. The figures are printed as one JSON line.
 *
 * The machine is shared and has 2 cores: the operator's p99 must be at most 100 ms, or, when the
 * same pings just before the attack were already slower than 50 ms at p99 (the machine is busy
 * with other work), at most twice that. On a machine loaded far beyond its cores (load average
 * 14–16 on 2 cores) single runs miss it, so the whole measurement is retried once.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as os from "node:os"
import { monitorEventLoopDelay, performance } from "node:perf_hooks"
import { createInterface } from "node:readline"
import * as Inspection from "../../src/actors/Inspection.js"
import type { ActorNode } from "../../src/actors/Inspection.js"
import type * as Main from "../../src/main.js"
import * as FleetNode from "../service/support/FleetNode.js"
import { root } from "../service/support/ServiceProcess.js"
import { patientSubscribes, type Report, subscribesTotal } from "./support/RequestFlooder.js"

const attackMillis = 5_000
/** The defaults of MAX_STREAMS_PER_SESSION and RATE_LIMIT_BURST. */
const maxStreams = 16

const percentile = (values: ReadonlyArray<number>, p: number) =>
  values.length === 0 ? NaN : [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) * p)]
const round = (n: number) => Math.round(n * 10) / 10
const mb = (bytes: number) => Math.round(bytes / 1024 / 1024)

/** The attacker process, loaded and waiting; `go` starts the attack and resolves with its report. */
const flooder = (url: string) =>
  Effect.acquireRelease(
    Effect.async<{ readonly go: () => Promise<Report>; readonly kill: () => void }>((resume) => {
      const child = spawn(process.execPath, ["--import", "tsx", "test/chaos/support/RequestFlooder.ts", url, String(attackMillis)], {
        cwd: root,
        stdio: ["pipe", "pipe", "inherit"]
      })
      const lines = createInterface({ input: child.stdout! })
      let report: ((report: Report) => void) | undefined
      lines.on("line", (line) => {
        if (line === "ready") {
          resume(Effect.succeed({
            go: () =>
              new Promise<Report>((resolve) => {
                report = resolve
                child.stdin!.write("go\n")
              }),
            kill: () => child.kill("SIGKILL")
          }))
        } else if (line.startsWith("{")) report?.(JSON.parse(line))
      })
    }),
    (attacker) => Effect.sync(() => attacker.kill())
  )

const restartsIn = (node: ActorNode | undefined): number =>
  node === undefined ? NaN : node.restarts + node.children.reduce((sum, child) => sum + restartsIn(child), 0)

const counter = (service: Main.Service, name: string) =>
  Effect.map(service.metrics.text, (text) => Number(text.split("\n").find((l) => l.startsWith(name + " "))?.split(" ")[1] ?? 0))
const rejected = (service: Main.Service, reason: string) =>
  counter(service, `fleetvisor_ws_frames_rejected_total{reason="${reason}"}`)

/** How busy this process was over a window: its event loop's utilisation and CPU time per wall time, in %. */
const busyness = () => {
  const elu = performance.eventLoopUtilization()
  const cpu = process.cpuUsage()
  const at = performance.now()
  const delay = monitorEventLoopDelay({ resolution: 5 })
  delay.enable()
  return () => {
    const used = process.cpuUsage(cpu)
    delay.disable()
    return {
      elu: round(performance.eventLoopUtilization(elu).utilization * 100),
      cpu: round(((used.user + used.system) / 1000 / (performance.now() - at)) * 100),
      loopDelayMs: { p99: round(delay.percentile(99) / 1e6), max: round(delay.max / 1e6) },
      loadavg: round(os.loadavg()[0])
    }
  }
}

describe("a request flood from one client", () => {
  it.scopedLive("is closed (1008) or refused; the operator's pings stay fast, its lease holds, fleet never restarts, RSS stays bounded", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 2 })
      const { service } = node
      const [arm] = node.arms
      const operator = yield* FleetNode.connect(service)
      yield* operator.rpc.FleetAcquire({ robot: arm })
      const attacker = yield* flooder(FleetNode.wsUrl(service))
      const ping = Effect.gen(function*() {
        const started = performance.now()
        yield* operator.rpc.Ping()
        return performance.now() - started
      })
      /** The operator's pings, 100 ms apart, until `until`. */
      const pings = (until: number) =>
        Effect.gen(function*() {
          const times: Array<number> = []
          while (performance.now() < until) {
            times.push(yield* ping)
            yield* Effect.sleep("100 millis")
          }
          return times
        })

      // Warm up, then the baseline: 3 s of the same pings without the attack.
      for (let i = 0; i < 5; i++) yield* ping
      const quiet = busyness()
      const baseline = yield* pings(performance.now() + 3_000)
      const before = quiet()
      const fleetRestartsBefore = restartsIn(Inspection.find(yield* service.system.snapshot, "fleet"))
      const rssBefore = process.memoryUsage.rss()

      let rssPeak = rssBefore
      const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())), 50)
      const busy = busyness()
      const started = performance.now()
      const attack = attacker.go()
      const during = yield* pings(started + attackMillis)
      const report = yield* Effect.promise(() => attack)
      const attackMs = performance.now() - started
      const load = busy()
      clearInterval(sampler)
      // The lease is still the operator's: it renews it and commands the arm.
      yield* operator.rpc.FleetRenew({ robot: arm })
      yield* operator.rpc.FleetCommand({ robot: arm, command: { _tag: "Pause" } })
      yield* Effect.sleep("500 millis")
      const rssAfter = process.memoryUsage.rss()
      const fleetRestarts = restartsIn(Inspection.find(yield* service.system.snapshot, "fleet")) - fleetRestartsBefore
      const refused = {
        requestsPerFrame: yield* rejected(service, "requests_per_frame"),
        openStreams: yield* rejected(service, "open_streams"),
        requestsInFlight: yield* rejected(service, "requests_in_flight"),
        flood: yield* rejected(service, "flood"),
        throttled: yield* rejected(service, "throttled"),
        sessionsEndedFlood: yield* counter(service, "fleetvisor_sessions_ended_total{reason=\"flood\"}")
      }
      const baselineP99 = percentile(baseline, 0.99)
      const bound = baselineP99 > 50 ? 2 * baselineP99 : 100
      const { batches, bursts, patient, subscribes } = report
      const figures = {
        test: "RequestFlood",
        attackMs: Math.round(attackMs),
        operatorPing: {
          before: { n: baseline.length, p50: round(percentile(baseline, 0.5)), p99: round(baselineP99) },
          during: { n: during.length, p50: round(percentile(during, 0.5)), p99: round(percentile(during, 0.99)), max: round(Math.max(...during)) },
          bound: round(bound)
        },
        serviceProcess: { before, during: load },
        attackerRequests: batches.requests + subscribes.requests + patient.requests + bursts.requests,
        ...report,
        refused,
        rssMb: { before: mb(rssBefore), peak: mb(rssPeak), after: mb(rssAfter) },
        fleetRestarts
      }
      console.log(JSON.stringify(figures))

      // The 1,000-request frames: every session closed with 1008 at its first frame (what the
      // client had sent meanwhile is never read), nothing served.
      // (200 frames when the attacker gets the CPU it asks for; far fewer on an overloaded machine.)
      expect(batches.frames).toBeGreaterThan(20)
      expect(batches.answered).toBe(0)
      expect(batches.closes).toEqual({ 1008: batches.sessions - batches.cut })
      expect(batches.cut).toBeLessThanOrEqual(1)
      // (A session the attacker cut as the attack ended may have been refused too.)
      expect(refused.requestsPerFrame - batches.closes["1008"]).toBeGreaterThanOrEqual(0)
      expect(refused.requestsPerFrame - batches.closes["1008"]).toBeLessThanOrEqual(batches.cut)
      // Frames of 100 FleetSubscribe: at most 16 streams a session, the rest refused, then
      // throttled and closed for flooding. (The last session, which stops sending while
      // throttled, is not flooding: it may live until the attack ends and the attacker cuts it.)
      expect(subscribes.requests).toBe(subscribesTotal)
      expect(subscribes.closes).toEqual({ 1008: subscribes.sessions - subscribes.cut })
      expect(subscribes.cut).toBeLessThanOrEqual(1)
      expect(subscribes.streams).toBeLessThanOrEqual(maxStreams * subscribes.sessions)
      expect(subscribes.overloaded).toBeGreaterThan(0)
      expect(subscribes.answered).toBeLessThan(subscribesTotal / 4)
      // Within the rate: 16 streams, 184 refusals, and the session is still served.
      expect(patient.requests).toBe(patientSubscribes)
      expect(patient.streams).toBe(maxStreams)
      expect(patient.overloaded).toBe(patientSubscribes - maxStreams)
      expect(patient.closes).toEqual({})
      expect(patient.open).toBe(true)
      // Frames within the burst at 2,000 requests a second: throttled, then closed with 1008
      // (the 50 Pings of a frame are in flight together: past 32 of them, refused).
      expect(bursts.closes).toEqual({ 1008: bursts.sessions - bursts.cut })
      expect(bursts.cut).toBeLessThanOrEqual(1)
      expect(bursts.answered).toBeLessThan(bursts.requests / 4)
      expect(refused.throttled).toBeGreaterThan(0)
      // Every refusal a client saw was counted (a session the attacker cut may have had more).
      expect(refused.openStreams).toBeGreaterThanOrEqual(subscribes.overloaded + patient.overloaded)
      expect(refused.requestsInFlight).toBeGreaterThanOrEqual(bursts.overloaded)
      // The operator did not notice.
      expect(figures.operatorPing.during.p99).toBeLessThanOrEqual(bound)
      expect(fleetRestarts).toBe(0)
      expect(rssPeak - rssBefore).toBeLessThan(200 * 1024 * 1024)
    }), { timeout: 40_000, retry: 1 })
})
