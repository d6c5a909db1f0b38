import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as SchemaAST from "effect/SchemaAST"
import * as Header from "../../../src/links/vda5050/Header.js"
import * as MessageCodec from "../../../src/links/vda5050/MessageCodec.js"
import * as Order from "../../../src/links/vda5050/Order.js"
import * as Topic from "../../../src/links/vda5050/Topic.js"
import { drift, examples, missingRequired, officialSchema, versions, violations } from "./support/officialSchemas.js"

const agv = { manufacturer: "ExampleRobotics", serialNumber: "AMR-0042" }
const stateExample = examples().find((e) => e.topic === "state")!.json

const decodeError = (topic: Topic.TopicName, payload: string) =>
  Either.getOrThrowWith(Either.flip(MessageCodec.decode(topic, payload)), () => new Error("expected a decoding failure"))

describe("the message schemas against the official VDA 5050 schemas", () => {
  it("decode every example message shipped with the schemas", () => {
    expect(examples().map((e) => e.file).sort()).toEqual([
      "connection.online.example.json",
      "instantActions.example.json",
      "state.example.json"
    ])
    for (const { json, topic } of examples()) {
      expect(violations(officialSchema("2.0.0", topic), JSON.parse(json))).toEqual([])
      expect(MessageCodec.decode(topic, json)).toEqual(Either.right(JSON.parse(json)))
    }
  })

  for (const topic of Object.keys(MessageCodec.schemas) as Array<Topic.TopicName>) {
    const ours = SchemaAST.encodedAST(MessageCodec.schemas[topic].ast)

    it(`model ${topic} as 2.0.0 defines it: required fields, field names and enums, at every depth`, () => {
      expect(drift(officialSchema("2.0.0", topic), ours)).toEqual([])
    })

    it(`have every top-level field 2.1.0 requires of ${topic}`, () => {
      expect(missingRequired(officialSchema("2.1.0", topic), ours)).toEqual([])
    })
  }

  it("tolerate fields they do not know, such as 2.1's maps, and drop them", () => {
    const state = { ...JSON.parse(stateExample), maps: [{ mapId: "hall-3", mapStatus: "ENABLED" }], vendorBlob: { a: 1 } }
    const decoded = Either.getOrThrow(MessageCodec.decode("state", JSON.stringify(state)))
    expect(decoded.orderId).toBe("order-2024-05-14-0117")
    expect(decoded).not.toHaveProperty("maps")
    expect(decoded).not.toHaveProperty("vendorBlob")
  })
})

describe("decoding failures", () => {
  it("say that a payload is not JSON", () => {
    const error = decodeError("state", "{not json")
    expect(error._tag).toBe("MessageDecodeError")
    expect(error.schema).toBe("State")
    expect(error.issues).toEqual([{ path: "", message: expect.stringContaining("JSON") }])
  })

  it("name the path of every missing or wrong field", () => {
    const state = JSON.parse(stateExample)
    delete state.orderId
    state.safetyState.eStop = "PANIC"
    const error = decodeError("state", JSON.stringify(state))
    expect(error.issues.map((i) => i.path)).toContain("orderId")
    expect(error.issues.map((i) => i.path)).toContain("safetyState.eStop")
    expect(error.reason).toContain(`["orderId"]\n`)
    expect(error.reason).toContain("is missing")
    expect(error.message).toBe(error.reason)
  })

  it("refuse the 2.0.0 tag's instant actions, which name actionName instead of actionType", () => {
    const wrong = {
      ...Header.make(agv, 1, 0),
      actions: [{ actionName: "startPause", actionId: "a1", blockingType: "HARD" }]
    }
    const error = decodeError("instantActions", JSON.stringify(wrong))
    expect(error.issues).toEqual([{ path: "actions[0].actionType", message: "is missing" }])
  })
})

describe("encoding outgoing messages", () => {
  const instantActions: MessageCodec.MessageOf<"instantActions"> = {
    ...Header.make(agv, 7, Date.UTC(2024, 4, 14, 9, 0, 0)),
    actions: [
      { actionType: "startPause", actionId: "ia-1", blockingType: "HARD" },
      {
        actionType: "initPosition",
        actionId: "ia-2",
        blockingType: "HARD",
        actionParameters: [
          { key: "x", value: 1.5 },
          { key: "lastNodeId", value: "N1" },
          { key: "pose", value: { x: 1, y: 2 } }
        ]
      }
    ]
  }
  const order: MessageCodec.MessageOf<"order"> = {
    ...Header.make(agv, 8, Date.UTC(2024, 4, 14, 9, 0, 0)),
    ...Order.fromPath({
      orderId: "o-1",
      path: [
        { nodeId: "N1", nodePosition: { x: 0, y: 0, mapId: "m" } },
        { nodeId: "N2", nodePosition: { x: 5, y: 0, theta: 1.57, mapId: "m" } },
        {
          nodeId: "N3",
          nodePosition: { x: 5, y: 5, mapId: "m" },
          actions: [{ actionType: "drop", actionId: "drop-1", blockingType: "HARD" }]
        }
      ],
      released: 2
    })
  }

  it("gives JSON that our schema decodes back and the official schemas accept", () => {
    for (const [topic, message] of [["instantActions", instantActions], ["order", order]] as const) {
      const json = Either.getOrThrow(MessageCodec.encode(topic, message as never))
      expect(MessageCodec.decode(topic, json)).toEqual(Either.right(message))
      for (const version of versions) {
        expect(violations(officialSchema(version, topic), JSON.parse(json))).toEqual([])
      }
    }
  })

  it("numbers an order's nodes even and its edges odd, and releases only the base", () => {
    expect(order.nodes.map((n) => [n.nodeId, n.sequenceId, n.released])).toEqual([
      ["N1", 0, true],
      ["N2", 2, true],
      ["N3", 4, false]
    ])
    expect(order.edges.map((e) => [e.edgeId, e.sequenceId, e.released])).toEqual([
      ["N1-N2", 1, true],
      ["N2-N3", 3, false]
    ])
  })

  it("refuses fields the schema does not know and values it forbids", () => {
    const withName = { ...instantActions, actions: [{ ...instantActions.actions[0], actionName: "startPause" }] }
    const unknownField = Either.flip(MessageCodec.encode("instantActions", withName))
    expect(Either.getOrThrow(unknownField).reason).toContain(`["actionName"]`)

    const negative = { ...order, nodes: [{ ...order.nodes[0], sequenceId: -2 }] }
    const forbidden = Either.flip(MessageCodec.encode("order", negative))
    expect(Either.getOrThrow(forbidden).issues.map((i) => i.path)).toEqual(["nodes[0].sequenceId"])
  })
})
