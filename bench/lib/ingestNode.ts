/**
 * The service side of the ingest benchmark, run as a child process: the real service of
 * `src/main.ts` with its fleet (no demo robots, no canvas) on the broker given, a SQLite file in
 * a temp directory (telemetry logged), HTTP on an ephemeral port of 127.0.0.1.
 *
 * It greets with `{ url }`; `{ op: "stats" }` answers with the fleet's own measurements
 * (`FleetService.stats`), this process' CPU time, event-loop busy and idle time and
 * garbage-collection pauses so far; `{ op: "stop" }` shuts the service down gracefully and answers.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { performance, PerformanceObserver } from "node:perf_hooks"
import * as ServiceConfig from "../../src/http/ServiceConfig.js"
import * as Main from "../../src/main.js"

const [brokerUrl, prefix] = [process.argv[2], process.argv[3]]

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-ingest-"))
const loaded = ServiceConfig.loadConfig(Main.config, new Map(), {
  PORT: "0",
  HOST: "127.0.0.1",
  DATA_DIR: dir,
  CANVAS: "off",
  FLEET_DEMO: "off",
  FLEET_MQTT_URL: brokerUrl,
  FLEET_MQTT_PREFIX: prefix,
  // The whole fleet comes online at once, as a plant's does after a broker restart: admit it in one go
  // (the default, 50 new AGVs a second, is for AGVs nobody announced).
  FLEET_AGV_DISCOVERY_RATE: process.env.FLEET_AGV_DISCOVERY_RATE ?? "10000",
  MAX_CONNECTIONS_PER_ADDRESS: "10000",
  FLEET_CONTROL_LOOP_REALTIME_PRIORITY: process.env.FLEET_CONTROL_LOOP_REALTIME_PRIORITY,
  FLEET_STOP_PORT: "0",
  FLEET_MQTT_INGEST_THREAD: process.env.FLEET_MQTT_INGEST_THREAD ?? "on",
  FLEET_MQTT_INGEST_THREADS: process.env.FLEET_MQTT_INGEST_THREADS,
  FLEET_VDA5050_SCHEMAS: process.env.FLEET_VDA5050_SCHEMAS,
  FLEET_STOP_REALTIME_PRIORITY: process.env.FLEET_STOP_REALTIME_PRIORITY
})
if (Either.isLeft(loaded)) throw new Error(loaded.left.join("; "))
const { canvas, fleet: fleetSettings, service: settings } = loaded.right

const quiet = Logger.minimumLogLevel(LogLevel.Warning)
const scope = Effect.runSync(Scope.make())
const service = await Effect.runPromise(
  Main.start(settings, canvas, fleetSettings).pipe(Scope.extend(scope), Effect.provide(quiet))
)
const fleet = Option.getOrThrow(service.fleet)

/** Garbage-collection pauses: how many, how long in all, and how many over 5 ms. */
const gc = { pauses: 0, totalMs: 0, over5Ms: 0, maxMs: 0 }
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gc.pauses++
    gc.totalMs += entry.duration
    if (entry.duration > 5) gc.over5Ms++
    gc.maxMs = Math.max(gc.maxMs, entry.duration)
  }
}).observe({ entryTypes: ["gc"] })

process.on("message", async (message: { op: "stats" } | { op: "stop" }) => {
  if (message.op === "stats") {
    const stats = await Effect.runPromise(fleet.stats)
    const used = process.cpuUsage()
    const { active, idle } = performance.eventLoopUtilization()
    process.send!({
      ...stats,
      process: {
        cpuMs: (used.user + used.system) / 1000,
        eventLoop: { active, idle },
        rssMb: Math.round(process.memoryUsage().rss / 1e6),
        gc: { ...gc }
      }
    })
  } else {
    await Effect.runPromise(Effect.provide(service.shutdown, quiet))
    await Effect.runPromise(Effect.provide(Scope.close(scope, Exit.void), quiet))
    fs.rmSync(dir, { recursive: true, force: true })
    process.send!({})
  }
})
process.on("disconnect", () => process.exit(0))
process.send!({ url: service.url })
