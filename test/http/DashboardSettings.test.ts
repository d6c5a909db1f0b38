import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as fs from "node:fs"
import * as ServiceConfig from "../../src/http/ServiceConfig.js"
import * as Setting from "../../src/node/Setting.js"
import * as Main from "../../src/main.js"

const load = (env: Record<string, string>) => ServiceConfig.loadConfig(Main.config, new Map(), env)

describe("settings of the dashboards", () => {
  it("CANVAS_COOLDOWN=0 turns the cooldown off; a duration still works; nonsense is one line naming it", () => {
    const cooldownOf = (value: string) =>
      Option.getOrThrow(Either.getOrThrow(load({ CANVAS_COOLDOWN: value })).canvas).cooldown
    expect(Duration.toMillis(cooldownOf("0"))).toBe(0)
    expect(Duration.toMillis(cooldownOf("0 millis"))).toBe(0)
    expect(Duration.toMillis(cooldownOf("2 seconds"))).toBe(2_000)
    const lines = Option.getOrThrow(Either.getLeft(load({ CANVAS_COOLDOWN: "soon" })))
    expect(lines.some((line) => line.startsWith("CANVAS_COOLDOWN:") && line.includes("or 0"))).toBe(true)
  })

  it("a bad canvas setting is one line naming its variable, as every other setting's", () => {
    const lines = Option.getOrThrow(Either.getLeft(load({ CANVAS_WIDTH: "0", CANVAS_PALETTE: "#fff", CANVAS_TICK: "0 millis" })))
    expect(lines).toEqual([
      "CANVAS_WIDTH: must be between 1 and 65536",
      "CANVAS_PALETTE: must list 2 to 256 colours as #rrggbb, separated by commas",
      "CANVAS_TICK: must be between 1 millisecond and 10 seconds"
    ])
  })

  it("FLEET_ARM_BASES places arms on the map; a bad entry is refused naming the variable", () => {
    const fleet = Option.getOrThrow(Either.getOrThrow(load({ FLEET_ARM_BASES: "arm-1=6,1.5; arm-2 = -3.25,0" })).fleet)
    expect([...fleet.armBases]).toEqual([["arm-1", { x: 6, y: 1.5 }], ["arm-2", { x: -3.25, y: 0 }]])
    const lines = Option.getOrThrow(Either.getLeft(load({ FLEET_ARM_BASES: "arm-1=6" })))
    expect(lines.some((line) => line.startsWith("FLEET_ARM_BASES:"))).toBe(true)
  })

  it("FLEET_ARM_BASES and FLEET_AGV_GRACE_MS are in --help, README and docs/service.md, and the grace text says the AGV stays listed", () => {
    const usage = Setting.usage(Main.allSettings)
    const readme = fs.readFileSync(new URL("../../README.md", import.meta.url), "utf8")
    const service = fs.readFileSync(new URL("../../docs/service.md", import.meta.url), "utf8")
    for (const name of ["FLEET_ARM_BASES", "FLEET_AGV_GRACE_MS"]) {
      const flag = `--${name.toLowerCase().replaceAll("_", "-")}`
      expect(usage, name).toContain(flag)
      expect(readme, name).toContain(`| \`${name}\` | \`${flag}\` |`)
      expect(service, name).toContain(`| \`${name}\` | \`${flag}\` |`)
    }
    expect(usage).toContain("stays listed, offline, until the service restarts")
  })
})
