/**
 * Broker restart under load: a Mosquitto of the test's own on a spare port (the machine's
 * broker on 1883 is left alone), the MQTT link and its AGV links, and simulated AGVs sending
 * visualizations at 20 Hz. The broker is stopped and started again: the link reconnects, no AGV
 * link is duplicated or restarted, messages after the restart reach every AGV link, and nothing
 * else restarts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import { type ChildProcess, spawn } from "node:child_process"
import { PubSub, Registry, TestKit } from "../../src/actors/index.js"
import * as LinkEvent from "../../src/links/LinkEvent.js"
import type { ActorRef } from "../../src/actors/ActorRef.js"
import * as AgvLink from "../../src/links/vda5050/AgvLink.js"
import * as AgvSimulator from "../../src/links/vda5050/AgvSimulator.js"
import * as MqttLink from "../../src/links/vda5050/MqttLink.js"
import * as AgvLinks from "../links/vda5050/support/AgvLinks.js"
import * as Ports from "../support/Ports.js"

const agvs = 6

/** A port nothing listens on now. */
const freePort = Effect.promise(Ports.freePort)

const accepts = (port: number) => Effect.promise(() => Ports.accepts(port))

/** A Mosquitto of this test's own on `port`, until `stop` (or the scope's end). */
const mosquitto = (port: number) =>
  Effect.gen(function*() {
    let child: ChildProcess | undefined
    const stop = Effect.async<void>((resume) => {
      const running = child
      child = undefined
      if (running === undefined || running.exitCode !== null) return resume(Effect.void)
      running.once("exit", () => resume(Effect.void))
      running.kill("SIGTERM")
    })
    const start = Effect.gen(function*() {
      child = spawn("mosquitto", ["-p", String(port)], { stdio: "ignore" })
      yield* TestKit.awaitUntil(accepts(port), { waitedFor: `mosquitto on port ${port}` })
    })
    yield* Effect.addFinalizer(() => stop)
    yield* start
    return { start, stop }
  })

describe("broker restart", () => {
  for (const ingestThread of [false, true]) {
    it.scopedLive(`the MQTT link reconnects, AGV links are neither duplicated nor restarted, messages flow after it${ingestThread ? " (ingest thread)" : ""}`, () =>
      Effect.gen(function*() {
        const port = yield* freePort
        const broker = yield* mosquitto(port)
        const url = `mqtt://127.0.0.1:${port}`
        const prefix = "chaos/v2"
        const hub = yield* PubSub.make()
        const events = yield* PubSub.subscribeQueue<LinkEvent.LinkEvent>(hub, LinkEvent.FleetTopic, { bufferSize: 100_000 })
        const registry = yield* Registry.make<string, any>({ keys: "unique" })
        const system = yield* TestKit.system()
        const { mqtt } = yield* AgvLinks.start({ system, hub, registry, url: url, prefix, ingestThread })
        yield* TestKit.awaitUntil(Effect.map(Effect.orDie(mqtt.ask(MqttLink.getStats)), (s) => s.connected))
        yield* AgvSimulator.make({ brokerUrl: url, prefix, count: agvs, visualizationHz: 20 })
        const serials = Array.from({ length: agvs }, (_, i) => `sim-${String(i + 1).padStart(4, "0")}`)
        const healthyTree = `
          links (dynamic, ${agvs}/∞)
          ${serials.map((s, i) => `${i === agvs - 1 ? "└─" : "├─"} agv:fleetvisor/${s} running mailbox=0 restarts=0`).join("\n          ")}
          mqtt running mailbox=0 restarts=0`
        yield* TestKit.awaitTree(system, healthyTree)

        /** Waits until every AGV link has published telemetry received after `since`. */
        const everyAgvHeardFrom = (since: number) =>
          Effect.gen(function*() {
            const heard = new Set<string>()
            while (heard.size < agvs) {
              const event = yield* Queue.take(events)
              if (event._tag === "AgvTelemetry" && Date.now() > since) heard.add(event.robot)
            }
          }).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("not every AGV was heard from") }))
        yield* everyAgvHeardFrom(Date.now())
        const before = yield* mqtt.ask(MqttLink.getStats)
        const refs = serials.map((s) => Registry.unsafeWhereis(registry, `agv:fleetvisor/${s}`))

        for (let round = 1; round <= 2; round++) {
          yield* broker.stop
          yield* TestKit.awaitUntil(Effect.map(accepts(port), (up) => !up), { waitedFor: "the broker to be down" })
          const receivedWhileDown = (yield* mqtt.ask(MqttLink.getStats)).received
          yield* broker.start
          const restartedAt = Date.now()
          yield* TestKit.awaitUntil(Effect.map(Effect.orDie(mqtt.ask(MqttLink.getStats)), (s) => s.received > receivedWhileDown), {
            waitedFor: "messages through the reconnected link"
          })
          yield* Queue.takeAll(events)
          yield* everyAgvHeardFrom(restartedAt)
          // Same actors: nothing duplicated, nothing restarted, the registry holds one entry per AGV.
          yield* TestKit.awaitTree(system, healthyTree)
          expect(serials.map((s) => Registry.unsafeWhereis(registry, `agv:fleetvisor/${s}`))).toEqual(refs)
          expect(Registry.all(registry).map((e) => String(e.key)).sort()).toEqual(serials.map((s) => `agv:fleetvisor/${s}`))
          expect(mqtt.isAlive()).toBe(true)
        }
        // Outbound too: an instant action reaches its AGV, whose answer comes back.
        const link = refs[0] as ActorRef<AgvLink.AgvLinkMessage>
        yield* Queue.takeAll(events)
        yield* link.ask(AgvLink.instantAction("stateRequest"))
        yield* Queue.take(events).pipe(
          Effect.repeat({ until: (e) => e._tag === "AgvTelemetry" && e.robot === `fleetvisor/${serials[0]}` && e.state !== undefined }),
          Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("no state after stateRequest") })
        )
        const after = yield* mqtt.ask(MqttLink.getStats)
        expect(after.discovered).toBe(before.discovered)
        expect(after.received).toBeGreaterThan(before.received)
        expect(after.invalid).toBe(0)
        console.log(JSON.stringify({ test: "BrokerRestart", ingestThread, agvs, restarts: 2, receivedBefore: before.received, receivedAfter: after.received }))
      }), 45_000)
  }
})
