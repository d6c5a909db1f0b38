import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ServiceConfig from "../../src/http/ServiceConfig.js"
import * as Setting from "../../src/node/Setting.js"
import * as Main from "../../src/main.js"

const load = (env: Record<string, string>, flags: ReadonlyArray<string> = []) => {
  const parsed = Setting.parseFlags(flags, Main.allSettings)
  if (parsed === "help") throw new Error("help")
  return ServiceConfig.loadConfig(Main.config, parsed, env)
}

describe("the fleet's settings in the service", () => {
  it("nothing configured: the demo; a broker or arms configured: no demo; FLEET=off: no fleet", () => {
    const fleetOf = (env: Record<string, string>) => Option.getOrUndefined(Either.getOrThrow(load(env)).fleet)
    expect(fleetOf({})).toMatchObject({ demo: true, demoArms: 3, demoAgvs: 12, mqttUrl: undefined, rmiRobots: [] })
    expect(fleetOf({ FLEET_MQTT_URL: "mqtt://broker:1883" })).toMatchObject({ demo: false, mqttUrl: "mqtt://broker:1883" })
    expect(fleetOf({ FLEET_RMI_ROBOTS: "arm-1=10.0.0.5" })).toMatchObject({
      demo: false,
      rmiRobots: [{ id: "arm-1", host: "10.0.0.5", port: 16001 }]
    })
    expect(fleetOf({ FLEET_MQTT_URL: "mqtt://broker:1883", FLEET_DEMO: "on" })).toMatchObject({ demo: true })
    expect(fleetOf({ FLEET: "off" })).toBeUndefined()
  })

  it("flags set them too, and win over the environment", () => {
    const loaded = Either.getOrThrow(load({ FLEET_DEMO_AGVS: "4" }, ["--fleet-demo-agvs", "7", "--fleet-lease-ttl-ms=5000"]))
    expect(Option.getOrThrow(loaded.fleet)).toMatchObject({ demoAgvs: 7, leaseTtlMs: 5000 })
  })

  it("a bad value is one line naming the variable", () => {
    const loaded = load({ FLEET_RMI_POLL_HZ: "5", FLEET_RMI_ROBOTS: "arm 1" })
    expect(Either.isLeft(loaded)).toBe(true)
    const lines = Either.getLeft(loaded).pipe(Option.getOrThrow)
    expect(lines.some((line) => line.startsWith("FLEET_RMI_POLL_HZ:"))).toBe(true)
    expect(lines.some((line) => line.startsWith("FLEET_RMI_ROBOTS:"))).toBe(true)
  })
})
