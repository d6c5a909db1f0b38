import { FoxgloveClient } from "@foxglove/ws-protocol"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { WebSocket } from "ws"
import { TestKit } from "../../src/actors/index.js"
import * as FleetNode from "./support/FleetNode.js"

describe("Foxglove on the service", () => {
  it.scopedLive("a Foxglove client at /foxglove sees every demo robot and receives a robot's state", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 2 })
      const url = `${node.service.url.replace("http", "ws")}/foxglove`
      const topics: Array<string> = []
      const received: Array<{ id: string }> = []
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          const ws = new WebSocket(url, ["foxglove.websocket.v1"])
          const client = new FoxgloveClient({ ws: ws as unknown as ConstructorParameters<typeof FoxgloveClient>[0]["ws"] })
          client.on("advertise", (channels) => {
            topics.push(...channels.map((c) => c.topic))
            const arm = channels.find((c) => c.topic === `/robots/${node.arms[0]}/state`)
            if (arm !== undefined) client.subscribe(arm.id)
          })
          client.on("message", ({ data }) => received.push(JSON.parse(new TextDecoder().decode(data))))
          client.on("error", () => {})
          return client
        }),
        (client) => Effect.sync(() => client.close())
      )
      yield* TestKit.awaitUntil(Effect.sync(() => received.length > 0), { waitedFor: "a state message of the arm" })
      expect(received[0].id).toBe(node.arms[0])
      // Robots the fleet learns of later (an AGV's first message) are advertised as they appear.
      const expected = [...node.arms, ...node.agvs].map((robot) => `/robots/${robot}/state`)
      yield* TestKit.awaitUntil(Effect.sync(() => expected.every((topic) => topics.includes(topic))), {
        waitedFor: `channels ${expected.join(", ")}`,
        describe: Effect.sync(() => topics.join(", "))
      })
      expect(yield* node.service.system.render).toContain("foxglove (dynamic, 1/64)")
    }))
})
