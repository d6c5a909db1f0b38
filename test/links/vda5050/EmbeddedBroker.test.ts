import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as EmbeddedBroker from "../../../src/links/mqtt/EmbeddedBroker.js"
import * as AgvSimulator from "../../../src/links/vda5050/AgvSimulator.js"
import * as FleetProbe from "./support/FleetProbe.js"

describe("EmbeddedBroker", () => {
  it.scopedLive("carries a simulated AGV's messages and publishes its last will when it is killed", () =>
    Effect.gen(function* () {
      const broker = yield* EmbeddedBroker.make({ port: 0 })
      expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`)
      const probe = yield* FleetProbe.make(broker.url, "uagv/v2")
      const { agvs: [agv] } = yield* AgvSimulator.make({ brokerUrl: broker.url, count: 1 })

      yield* probe.waitFor(agv.serialNumber, "connection", (c) => c.connectionState === "ONLINE")
      const { message: state } = yield* probe.waitFor(agv.serialNumber, "state")
      expect(state.manufacturer).toBe("fleetvisor")
      yield* agv.kill
      yield* probe.waitFor(agv.serialNumber, "connection", (c) => c.connectionState === "CONNECTIONBROKEN")
    })
  )

  it.scopedLive("refuses a port that is taken, with a typed error", () =>
    Effect.gen(function* () {
      const first = yield* EmbeddedBroker.make({ port: 0 })
      const second = yield* Effect.exit(EmbeddedBroker.make({ port: first.port }))
      expect(Exit.isFailure(second) && second.cause._tag === "Fail" && second.cause.error._tag).toBe("EmbeddedBrokerError")
    })
  )

  it.scopedLive("is only started when no broker URL is configured", () =>
    Effect.gen(function* () {
      expect(yield* EmbeddedBroker.urlOrEmbedded("mqtt://broker.example:1883")).toBe("mqtt://broker.example:1883")
      const url = yield* EmbeddedBroker.urlOrEmbedded(undefined, { port: 0 })
      expect(url).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/)
    })
  )
})
