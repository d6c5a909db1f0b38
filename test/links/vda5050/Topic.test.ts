import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as fc from "fast-check"
import * as HeaderIds from "../../../src/links/vda5050/HeaderIds.js"
import * as Topic from "../../../src/links/vda5050/Topic.js"

const reason = (topic: string, prefix?: string) =>
  Either.getOrThrow(Either.flip(Topic.parse(topic, prefix))).reason

describe("Topic", () => {
  it("formats and parses interfaceName/majorVersion/manufacturer/serialNumber/topic", () => {
    const state = { manufacturer: "KIT", serialNumber: "0001", topic: "state" } as const
    expect(Topic.format(state)).toBe("uagv/v2/KIT/0001/state")
    expect(Topic.parse("uagv/v2/KIT/0001/state")).toEqual(Either.right(state))
    expect(Topic.format(state, "plant-7/v2")).toBe("plant-7/v2/KIT/0001/state")
    expect(Topic.parse("plant-7/v2/KIT/0001/state", "plant-7/v2")).toEqual(Either.right(state))
  })

  it("round-trips every valid serial number and every topic name", () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[A-Za-z0-9_.:-]{1,20}$/),
        fc.constantFrom(...Topic.TopicName.literals),
        (serialNumber, topic) => {
          const agvTopic = { manufacturer: "ACME", serialNumber, topic }
          expect(Topic.parse(Topic.format(agvTopic))).toEqual(Either.right(agvTopic))
        }
      )
    )
  })

  it("refuses topics that are not VDA 5050 topics under the prefix", () => {
    expect(reason("other/v2/KIT/0001/state")).toBe(`expected the prefix "uagv/v2/"`)
    expect(reason("uagv/v2/KIT/0001/state/extra")).toBe("expected manufacturer/serialNumber/topic after the prefix")
    expect(reason("uagv/v2/KIT/AGV 1/state")).toContain("must use only A-Z a-z 0-9 _ . : -")
    expect(reason("uagv/v2/KIT/0001/zoneSet")).toBe(`unknown topic "zoneSet"`)
    expect(reason("uagv/v2/+/0001/state")).toBe(`invalid manufacturer "+"`)
    expect(Topic.isValidSerialNumber("AMR-0042.a:b_c")).toBe(true)
    expect(Topic.isValidSerialNumber("amr/1")).toBe(false)
    expect(Topic.isValidSerialNumber("")).toBe(false)
  })

  it("subscribes master control to every AGV under the prefix", () => {
    expect(Topic.subscriptionFilter()).toBe("uagv/v2/+/+/#")
    expect(Topic.subscriptionFilter("test-1/v2")).toBe("test-1/v2/+/+/#")
  })

  it("publishes connection with QoS 1 retained, factsheet retained, everything else QoS 0", () => {
    expect(Topic.delivery).toEqual({
      order: { qos: 0, retain: false },
      instantActions: { qos: 0, retain: false },
      state: { qos: 0, retain: false },
      visualization: { qos: 0, retain: false },
      connection: { qos: 1, retain: true },
      factsheet: { qos: 0, retain: true }
    })
    expect([...Topic.toAgv, ...Topic.fromAgv].sort()).toEqual([...Topic.TopicName.literals].sort())
  })
})

describe("HeaderIds", () => {
  it.effect("counts each topic on its own, from 0, by one per message", () =>
    Effect.gen(function* () {
      const ids = yield* HeaderIds.make
      const taken = yield* Effect.forEach(
        ["state", "state", "visualization", "state", "connection", "visualization"] as const,
        (topic) => Effect.map(ids.next(topic), (id) => `${topic}:${id}`)
      )
      expect(taken).toEqual(["state:0", "state:1", "visualization:0", "state:2", "connection:0", "visualization:1"])
    })
  )
})
