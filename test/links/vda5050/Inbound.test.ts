import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import fc from "fast-check"
import * as Inbound from "../../../src/links/vda5050/Inbound.js"
import * as OfficialSchemas from "../../../src/links/vda5050/OfficialSchemas.js"
import type * as Topic from "../../../src/links/vda5050/Topic.js"
import { examples, fixturesDir } from "./support/officialSchemas.js"

const schemas = Either.getOrThrowWith(OfficialSchemas.load(fixturesDir), (error) => new Error(error.message))
const agv = { manufacturer: "ExampleRobotics", serialNumber: "AMR-0042" }
const state = JSON.parse(examples().find((e) => e.topic === "state")!.json)
const visualization = {
  headerId: 7,
  timestamp: "2024-05-14T09:31:07.42Z",
  version: "2.0.0",
  ...agv,
  agvPosition: { x: 23.4, y: 7.05, theta: 1.57, mapId: "hall-3", positionInitialized: true },
  velocity: { vx: 0.8, omega: 0.02 }
}

const topicOf = (topic: Topic.TopicName, who = agv) => `uagv/v2/${who.manufacturer}/${who.serialNumber}/${topic}`
const bytes = (value: unknown) => new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value))

const alone = Inbound.makeChecker("uagv/v2")
const official = Inbound.makeChecker("uagv/v2", { official: schemas.validate })

describe("Inbound.makeChecker with the official schemas", () => {
  it("passes a good message as the message schemas alone do: same AGV, topic and message", () => {
    for (const [topic, message] of [["state", state], ["visualization", visualization]] as const) {
      const checked = official(topicOf(topic), bytes(message))
      expect(checked).toEqual(alone(topicOf(topic), bytes(message)))
      expect(checked).toMatchObject({ _tag: "Valid", identity: agv, topic })
    }
  })

  it("keeps only the fields of the model of a visualization, as decoding does", () => {
    const extra = { ...visualization, vendorBlob: "x".repeat(1000), agvPosition: { ...visualization.agvPosition, mapDescription: "hall" } }
    const checked = official(topicOf("visualization"), bytes(extra))
    expect(checked).toEqual(alone(topicOf("visualization"), bytes(extra)))
    expect(checked).toMatchObject({ _tag: "Valid", message: visualization })
    expect((checked as Inbound.Valid).message).not.toHaveProperty("vendorBlob")
  })

  it("gives any visualization the schemas pass exactly as decoding gives it, whichever fields it has", () => {
    const number = fc.double({ noNaN: true, noDefaultInfinity: true })
    const visualizations = fc.record({
      headerId: fc.integer({ min: 0 }),
      timestamp: fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }).map((d) => d.toISOString()),
      version: fc.constantFrom("2.0.0", "2.1.0"),
      manufacturer: fc.constant(agv.manufacturer),
      serialNumber: fc.constant(agv.serialNumber),
      agvPosition: fc.record({
        x: number,
        y: number,
        theta: number,
        mapId: fc.string(),
        mapDescription: fc.string(),
        positionInitialized: fc.boolean(),
        localizationScore: fc.double({ min: 0, max: 1, noNaN: true }),
        deviationRange: number,
        vendor: fc.string()
      }, { requiredKeys: ["x", "y", "theta", "mapId", "positionInitialized"] }),
      velocity: fc.record({ vx: number, vy: number, omega: number, vendor: fc.string() }, { requiredKeys: [] }),
      vendor: fc.jsonValue()
    }, { requiredKeys: [] })
    fc.assert(fc.property(visualizations, (message) => {
      const checked = official(topicOf("visualization"), bytes(message))
      expect(checked?._tag).toBe("Valid")
      expect(checked).toEqual(alone(topicOf("visualization"), bytes(message)))
    }), { numRuns: 500 })
  })

  it("refuses a payload naming another AGV", () => {
    for (const [topic, message] of [["state", state], ["visualization", visualization]] as const) {
      expect(official(topicOf(topic, { ...agv, serialNumber: "AMR-0043" }), bytes(message))).toEqual({
        _tag: "Invalid",
        topic: topicOf(topic, { ...agv, serialNumber: "AMR-0043" }),
        countedAs: topic,
        reason: "the payload names ExampleRobotics/AMR-0042, the topic ExampleRobotics/AMR-0043"
      })
    }
  })

  it("refuses what the official schema refuses, naming its version, where the message schema alone lets it through", () => {
    const late = { ...visualization, timestamp: "yesterday" }
    expect(alone(topicOf("visualization"), bytes(late))).toMatchObject({ _tag: "Valid" })
    expect(official(topicOf("visualization"), bytes(late))).toEqual({
      _tag: "Invalid",
      topic: topicOf("visualization"),
      countedAs: "visualization",
      reason: `visualization 2.0.0: /timestamp must match format "date-time"`
    })
    expect(official(topicOf("state"), bytes({ ...state, version: "3.0.0" }))).toMatchObject({
      _tag: "Invalid",
      countedAs: "state",
      reason: "no schema for version 3.0.0 (loaded: 2.0.0, 2.1.0)"
    })
  })

  it("still decodes events with the message schema after the official one", () => {
    // The official schema leaves a node's theta open; the message schema says -π to π.
    const node = { nodeId: "N13", sequenceId: 6, released: true, nodePosition: { x: 1, y: 2, theta: 10, mapId: "hall-3" } }
    const turned = { ...state, nodeStates: [node] }
    expect(schemas.validate("state", turned)).toBeUndefined()
    expect(official(topicOf("state"), bytes(turned))).toMatchObject({
      _tag: "Invalid",
      countedAs: "state",
      reason: expect.stringMatching(/^State: nodeStates\[0\]\.nodePosition\.theta: /)
    })
  })

  it("refuses a payload that is not JSON, and ignores an empty one", () => {
    expect(official(topicOf("state"), bytes("{not json"))).toMatchObject({
      _tag: "Invalid",
      countedAs: "state",
      reason: expect.stringMatching(/^state: not JSON/)
    })
    expect(official(topicOf("state"), new Uint8Array())).toBeUndefined()
  })

  it("refuses before parsing when `before` says so: the official schema is not consulted", () => {
    let consulted = 0
    const check = Inbound.makeChecker("uagv/v2", {
      before: () => "cap" as const,
      official: (topic, value) => {
        consulted++
        return schemas.validate(topic, value)
      }
    })
    expect(check(topicOf("state"), bytes("{not json"))).toEqual({ _tag: "Refused", identity: agv, topic: "state", reason: "cap" })
    expect(consulted).toBe(0)
  })
})
