import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
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
})
