import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as OfficialSchemas from "../../../src/links/vda5050/OfficialSchemas.js"
import * as Topic from "../../../src/links/vda5050/Topic.js"
import { examples, fixturesDir } from "./support/officialSchemas.js"

const loaded = (folder: string) =>
  Either.getOrThrowWith(OfficialSchemas.load(folder), (error) => new Error(error.message))

const failure = (folder: string) =>
  Either.getOrThrowWith(Either.flip(OfficialSchemas.load(folder)), () => new Error(`expected ${folder} to be refused`))

const schemas = loaded(fixturesDir)
const state = JSON.parse(examples().find((e) => e.topic === "state")!.json)

/** A visualization as an AGV sends it, every field filled in. */
const visualization = {
  headerId: 7,
  timestamp: "2024-05-14T09:31:07.42Z",
  version: "2.0.0",
  manufacturer: "ExampleRobotics",
  serialNumber: "AMR-0042",
  agvPosition: { x: 23.4, y: 7.05, theta: 1.57, mapId: "hall-3", positionInitialized: true, localizationScore: 0.9 },
  velocity: { vx: 0.8, vy: 0, omega: 0.02 }
}

const temporary: Array<string> = []
afterAll(() => temporary.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })))

/** A folder `name` under a temporary one, with links to `files` (name in the folder → target). */
const folderWith = (name: string, files: Record<string, string>): string => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-schemas-"))
  temporary.push(root)
  const dir = path.join(root, name)
  fs.mkdirSync(dir)
  for (const [file, target] of Object.entries(files)) fs.symlinkSync(target, path.join(dir, file))
  return dir
}

const version210 = (extension: string) =>
  Object.fromEntries(Topic.TopicName.literals.map((topic) => [`${topic}${extension}`, `${fixturesDir}schemas-2.1.0/${topic}.schema`]))

describe("OfficialSchemas.load", () => {
  it("loads a folder of version folders, oldest first", () => {
    expect(schemas.versions).toEqual(["2.0.0", "2.1.0"])
    expect(schemas.folder).toBe(fixturesDir)
  })

  it("loads one version's folder, its version read from its name", () => {
    const one = loaded(`${fixturesDir}schemas-2.0.0`)
    expect(one.versions).toEqual(["2.0.0"])
    expect(one.validate("state", state)).toBeUndefined()
    expect(one.validate("state", { ...state, version: "2.1.0" })).toBe("no schema for version 2.1.0 (loaded: 2.0.0)")
  })

  it("takes <topic>.json files too, and serves every version from a folder that names none", () => {
    const one = loaded(folderWith("json_schemas", version210(".json")))
    expect(one.versions).toEqual(["json_schemas"])
    expect(one.validate("state", { ...state, version: "2.0.0" })).toBeUndefined()
    expect(one.validate("visualization", { ...visualization, timestamp: "now" })).toMatch(/^visualization json_schemas: /)
  })

  it("refuses a missing folder, a file, an empty folder, a missing topic and a file that is not JSON, naming the path", () => {
    const missing = failure("/nonexistent/vda5050")
    expect(missing).toBeInstanceOf(OfficialSchemas.OfficialSchemasInvalid)
    expect(missing._tag).toBe("OfficialSchemasInvalid")
    expect(missing.path).toBe("/nonexistent/vda5050")
    expect(missing.reason).toBe("no such folder")
    expect(missing.message).toBe("VDA 5050 schemas (FLEET_VDA5050_SCHEMAS): /nonexistent/vda5050: no such folder")

    expect(failure(`${fixturesDir}state.example.json`).reason).toBe("not a folder")

    const empty = folderWith("empty", {})
    expect(failure(empty)).toMatchObject({ path: empty, reason: "no schema files (<topic>.schema or <topic>.json)" })

    const { "factsheet.schema": _, ...five } = version210(".schema")
    const partial = folderWith("2.1.0", five)
    expect(failure(partial)).toMatchObject({ path: partial, reason: "missing factsheet.schema" })

    const broken = folderWith("2.1.0", five)
    fs.writeFileSync(path.join(broken, "factsheet.schema"), "{ not json")
    expect(failure(broken)).toMatchObject({ path: path.join(broken, "factsheet.schema"), reason: expect.stringMatching(/^not JSON/) })
  })
})

describe("OfficialSchemas.validate", () => {
  it("passes the example messages shipped with the schemas, in both versions", () => {
    expect(examples().length).toBeGreaterThan(0)
    for (const { json, topic } of examples()) {
      const message = JSON.parse(json)
      expect(schemas.validate(topic, message)).toBeUndefined()
      expect(schemas.validate(topic, { ...message, version: "2.1.0" })).toBeUndefined()
    }
    expect(schemas.validate("visualization", visualization)).toBeUndefined()
    expect(schemas.validate("visualization", {})).toBeUndefined()
  })

  it("refuses a timestamp that is not a date-time, checking a visualization without a version with the newest schema", () => {
    const { version: _, ...unversioned } = visualization
    expect(schemas.validate("visualization", { ...unversioned, timestamp: "2024-05-14 09:31" })).toBe(
      `visualization 2.1.0: /timestamp must match format "date-time"`
    )
    expect(schemas.validate("visualization", { ...visualization, timestamp: "2024-02-30T09:31:07Z" })).toBe(
      `visualization 2.0.0: /timestamp must match format "date-time"`
    )
  })

  it("refuses a wrong type and a missing required header field, saying where", () => {
    expect(
      schemas.validate("visualization", { ...visualization, agvPosition: { ...visualization.agvPosition, x: "23.4" } })
    ).toBe("visualization 2.0.0: /agvPosition/x must be number")
    const { serialNumber: _, ...anonymous } = state
    expect(schemas.validate("state", anonymous)).toBe("state 2.0.0: (root) must have required property 'serialNumber'")
    expect(schemas.validate("state", { ...state, batteryState: { ...state.batteryState, charging: "no" } })).toBe(
      "state 2.0.0: /batteryState/charging must be boolean"
    )
  })

  it("refuses a version it has no schema for, and one that is not a version", () => {
    expect(schemas.validate("state", { ...state, version: "3.0.0" })).toBe("no schema for version 3.0.0 (loaded: 2.0.0, 2.1.0)")
    expect(schemas.validate("visualization", { ...visualization, version: "two" })).toBe(
      `version "two" is not [Major].[Minor].[Patch]`
    )
  })

  it("checks a message with the schema of its version: maps exist from 2.1 on", () => {
    const maps = { ...state, maps: [{ mapId: "hall-3" }] }
    // 2.0.0 does not know `maps` (and lets unknown fields be); 2.1 requires mapVersion and mapStatus of each.
    expect(schemas.validate("state", { ...maps, version: "2.0.0" })).toBeUndefined()
    expect(schemas.validate("state", { ...maps, version: "2.1.0" })).toBe(
      "state 2.1.0: /maps/0 must have required property 'mapVersion'"
    )
    expect(schemas.validate("state", { ...maps, version: "2.1.3" })).toMatch(/^state 2\.1\.0: /)
    expect(
      schemas.validate("state", { ...maps, version: "2.1.0", maps: [{ mapId: "hall-3", mapVersion: "7", mapStatus: "ENABLED" }] })
    ).toBeUndefined()
  })
})
