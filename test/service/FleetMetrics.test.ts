import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFileSync, spawnSync } from "node:child_process"
import * as TestKit from "../../src/actors/TestKit.js"
import * as FleetNode from "./support/FleetNode.js"

const metrics = (url: string) => Effect.promise(() => fetch(`${url}/metrics`).then((response) => response.text()))

const value = (body: string, name: string) =>
  Number(body.split("\n").find((line) => line.startsWith(`${name} `))?.split(" ")[1])

/** promtool from Debian's prometheus package; installed here if missing. */
const promtool = (): string => {
  const found = spawnSync("sh", ["-c", "command -v promtool"], { encoding: "utf8" }).stdout.trim()
  if (found !== "") return found
  execFileSync("apt-get", ["install", "-y", "-q", "prometheus"], { stdio: "ignore", timeout: 120_000 })
  return "promtool"
}

describe("the fleet's metrics", () => {
  it.scopedLive("/metrics shows the control loop, the MQTT link and the telemetry log as they run", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 2 })
      const first = yield* metrics(node.service.url)
      expect(value(first, "fleetvisor_fleet_links")).toBe(3)
      expect(value(first, "fleetvisor_mqtt_connected")).toBe(1)
      expect(value(first, "fleetvisor_mqtt_messages_invalid_total")).toBe(0)
      expect(first).toMatch(/^fleetvisor_control_loop_jitter_p99_seconds [0-9.e-]+$/m)
      // Counters move while the demo fleet runs: ticks at 100 Hz, AGV messages, telemetry rows.
      yield* TestKit.awaitUntil(
        Effect.map(metrics(node.service.url), (later) =>
          value(later, "fleetvisor_control_loop_ticks_total") > value(first, "fleetvisor_control_loop_ticks_total") + 20 &&
          value(later, "fleetvisor_mqtt_messages_received_total") > value(first, "fleetvisor_mqtt_messages_received_total") &&
          value(later, "fleetvisor_telemetry_rows_committed_total") > value(first, "fleetvisor_telemetry_rows_committed_total")),
        { timeoutMillis: 10_000, waitedFor: "loop ticks, MQTT messages and telemetry rows to be counted" }
      )
      // A stop of every robot latches the three, and the gauges say so.
      expect(value(first, "fleetvisor_fleet_latched_robots")).toBe(0)
      yield* node.fleet.emergencyStop(undefined, "metrics-test")
      const stopped = yield* TestKit.awaitUntil(
        Effect.map(metrics(node.service.url), (body) => value(body, "fleetvisor_fleet_latched_robots") === 3),
        { waitedFor: "three latched robots counted" }
      ).pipe(Effect.zipRight(metrics(node.service.url)))
      expect(value(stopped, "fleetvisor_fleet_emergency_stops_total")).toBe(3)
      expect(value(stopped, "fleetvisor_fleet_latch_write_failures_total")).toBe(0)
      const checked = spawnSync(promtool(), ["check", "metrics"], { input: stopped, encoding: "utf8" })
      expect(checked.stderr + checked.stdout).toBe("")
      expect(checked.status).toBe(0)
    }), 30_000)
})
