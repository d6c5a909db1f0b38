import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { PubSub } from "../../../src/actors/index.js"
import * as Fleet from "../../../src/apps/fleet/Fleet.js"
import * as FleetConfig from "../../../src/apps/fleet/FleetConfig.js"

const read = (env: Record<string, string>) =>
  Effect.withConfigProvider(FleetConfig.config, ConfigProvider.fromMap(new Map(Object.entries(env))))

describe("FleetConfig", () => {
  it.effect("runs the demo when neither arms nor a broker are configured", () =>
    Effect.gen(function*() {
      const settings = yield* read({})
      expect(settings).toMatchObject({ demo: true, rmiRobots: [], mqttUrl: undefined, mqttPrefix: "uagv/v2", pollHz: 10 })
      expect((yield* read({ FLEET_MQTT_URL: "mqtt://broker:1883" })).demo).toBe(false)
      expect((yield* read({ FLEET_MQTT_URL: "mqtt://broker:1883", FLEET_DEMO: "true" })).demo).toBe(true)
    }))

  it.effect("reads arms as id=host[:port], 16001 by default", () =>
    Effect.gen(function*() {
      const settings = yield* read({ FLEET_RMI_ROBOTS: "arm-1=10.0.0.5:16011, arm-2=cell-2.local", FLEET_RMI_POLL_HZ: "125" })
      expect(settings.rmiRobots).toEqual([
        { id: "arm-1", host: "10.0.0.5", port: 16011 },
        { id: "arm-2", host: "cell-2.local", port: 16001 }
      ])
      expect(settings).toMatchObject({ demo: false, pollHz: 125 })
    }))

  it.effect("refuses what it cannot use, saying which variable and why", () =>
    Effect.gen(function*() {
      const ids = yield* Effect.flip(read({ FLEET_RMI_ROBOTS: "KIT/0001=10.0.0.5" }))
      expect(String(ids)).toMatch(/FLEET_RMI_ROBOTS.*id=host\[:port\]/s)
      const rate = yield* Effect.flip(read({ FLEET_RMI_POLL_HZ: "500" }))
      expect(String(rate)).toMatch(/FLEET_RMI_POLL_HZ.*between 10 and 125/s)
      expect(FleetConfig.parseRobots("a=h,a=g")).toEqual(Either.left("robot ids must be unique"))
      const realtime = yield* Effect.flip(read({ FLEET_CONTROL_LOOP_REALTIME_PRIORITY: "100" }))
      expect(String(realtime)).toMatch(/FLEET_CONTROL_LOOP_REALTIME_PRIORITY.*off or an integer from 1 to 99/s)
    }))

  it.effect("runs the control loop's thread under SCHED_FIFO only when a priority is set", () =>
    Effect.gen(function*() {
      expect((yield* read({})).controlLoopRealtimePriority).toBeUndefined()
      expect((yield* read({ FLEET_CONTROL_LOOP_REALTIME_PRIORITY: "off" })).controlLoopRealtimePriority).toBeUndefined()
      expect((yield* read({ FLEET_CONTROL_LOOP_REALTIME_PRIORITY: "20" })).controlLoopRealtimePriority).toBe(20)
    }))

  it.effect("reads the folder of the official VDA 5050 schemas; unset or empty, none", () =>
    Effect.gen(function*() {
      expect((yield* read({})).vda5050Schemas).toBeUndefined()
      expect((yield* read({ FLEET_VDA5050_SCHEMAS: "" })).vda5050Schemas).toBeUndefined()
      expect((yield* read({ FLEET_VDA5050_SCHEMAS: "/etc/fleetvisor/vda5050" })).vda5050Schemas).toBe("/etc/fleetvisor/vda5050")
    }))

  it.scoped("a folder of official schemas that cannot be loaded fails the fleet's start, naming it", () =>
    Effect.gen(function*() {
      const failed = yield* Effect.flip(Fleet.makeUnstarted({
        settings: FleetConfig.make({ vda5050Schemas: "/nonexistent/vda5050" }),
        hub: yield* PubSub.make()
      }))
      expect(failed).toMatchObject({ _tag: "OfficialSchemasInvalid", path: "/nonexistent/vda5050", reason: "no such folder" })
    }))

  it("the service exits 78 with one line when FLEET_VDA5050_SCHEMAS cannot be loaded", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-schemas-bad-"))
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      cwd: fileURLToPath(new URL("../../../", import.meta.url)),
      env: { ...process.env, PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir, CANVAS: "off", FLEET_DEMO: "off", FLEET_VDA5050_SCHEMAS: dataDir },
      stdio: ["ignore", "ignore", "pipe"]
    })
    let stderr = ""
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve))
    fs.rmSync(dataDir, { recursive: true, force: true })
    expect(code).toBe(78)
    expect(stderr).toBe(
      `fleetvisor: VDA 5050 schemas (FLEET_VDA5050_SCHEMAS): ${dataDir}: no schema files (<topic>.schema or <topic>.json)\n`
    )
  }, 30_000)
})
