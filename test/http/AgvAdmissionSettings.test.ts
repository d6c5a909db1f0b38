import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as fs from "node:fs"
import * as ServiceConfig from "../../src/http/ServiceConfig.js"
import * as Setting from "../../src/node/Setting.js"
import * as Main from "../../src/main.js"

const load = (env: Record<string, string>, flags: ReadonlyArray<string> = []) => {
  const parsed = Setting.parseFlags(flags, Main.allSettings)
  if (parsed === "help") throw new Error("help")
  return ServiceConfig.loadConfig(Main.config, parsed, env)
}

const admissionSettings = ["FLEET_MAX_AGVS", "FLEET_AGV_DISCOVERY_RATE", "FLEET_AGV_MANUFACTURERS"]

describe("the AGV admission settings", () => {
  it("default to a cap of 2,000 AGV links, 50 new AGVs a second and any manufacturer", () => {
    const fleet = Option.getOrThrow(Either.getOrThrow(load({})).fleet)
    expect(fleet).toMatchObject({ maxAgvs: 2_000, agvDiscoveryRate: 50, agvManufacturers: undefined })
  })

  it("are read from the environment and from flags, the allow-list trimmed", () => {
    const fleet = Option.getOrThrow(Either.getOrThrow(load(
      { FLEET_MAX_AGVS: "300", FLEET_AGV_MANUFACTURERS: " acme, kit ,," },
      ["--fleet-agv-discovery-rate", "5"]
    )).fleet)
    expect(fleet).toMatchObject({ maxAgvs: 300, agvDiscoveryRate: 5, agvManufacturers: ["acme", "kit"] })
  })

  it("refuse bad values with one line naming the variable", () => {
    const loaded = load({ FLEET_MAX_AGVS: "0", FLEET_AGV_DISCOVERY_RATE: "fast", FLEET_AGV_MANUFACTURERS: "acme/kit" })
    const lines = Option.getOrThrow(Either.getLeft(loaded))
    for (const name of admissionSettings) expect(lines.some((line) => line.startsWith(`${name}:`)), name).toBe(true)
  })

  it("are listed by --help and documented in README and docs/service.md", () => {
    const usage = Setting.usage(Main.allSettings)
    const readme = fs.readFileSync(new URL("../../README.md", import.meta.url), "utf8")
    const service = fs.readFileSync(new URL("../../docs/service.md", import.meta.url), "utf8")
    for (const name of admissionSettings) {
      const flag = `--${name.toLowerCase().replaceAll("_", "-")}`
      expect(usage, name).toContain(flag)
      expect(readme, name).toContain(`| \`${name}\` | \`${flag}\` |`)
      expect(service, name).toContain(`| \`${name}\` | \`${flag}\` |`)
    }
  })
})
