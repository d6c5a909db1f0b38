/**
 * The demo fleet, so a fresh `npm start` shows robots moving: simulated FANUC arms (RMI over
 * TCP on ephemeral ports) and a dozen simulated AGVs (VDA 5050 over MQTT, on the configured
 * broker or else an embedded aedes broker on 127.0.0.1:18830, never 1883, which a real
 * broker may hold). The arms move through a small square while nobody holds their lease.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { ActorRef } from "../../actors/ActorRef.js"
import * as Registry from "../../actors/Registry.js"
import * as BrokerSecurity from "../../links/mqtt/BrokerSecurity.js"
import * as EmbeddedBroker from "../../links/mqtt/EmbeddedBroker.js"
import * as RmiLink from "../../links/rmi/RmiLink.js"
import * as RmiPacket from "../../links/rmi/RmiPacket.js"
import * as RmiSimulator from "../../links/rmi/RmiSimulator.js"
import * as AgvSimulator from "../../links/vda5050/AgvSimulator.js"
import type { FleetSettings, RmiRobot } from "./FleetConfig.js"
import type { FleetService } from "./Fleet.js"

/** Starts the simulators and returns the settings that point the fleet at them. */
export const start = (settings: FleetSettings) =>
  Effect.gen(function*() {
    const arms: Array<RmiRobot> = []
    for (let i = 1; i <= settings.demoArms; i++) {
      const sim = yield* RmiSimulator.make({ port: 0 })
      arms.push({ id: `demo-arm-${i}`, host: sim.host, port: sim.port })
    }
    const brokerUrl = settings.mqttUrl ?? (yield* EmbeddedBroker.make().pipe(
      Effect.orElse(() => EmbeddedBroker.make({ port: 0 })),
      Effect.map((broker) => broker.url)
    ))
    if (settings.demoAgvs > 0) {
      yield* AgvSimulator.make({
        brokerUrl,
        // On the configured broker, the simulators sign in as the fleet does.
        security: settings.mqttUrl === undefined ? undefined : settings.mqttSecurity,
        prefix: settings.mqttPrefix,
        count: settings.demoAgvs,
        visualizationHz: 5,
        serialPrefix: "demo-"
      })
    }
    yield* Effect.logInfo(`demo fleet: ${arms.length} simulated arms, ${settings.demoAgvs} simulated AGVs on ${BrokerSecurity.redactUrl(brokerUrl)}`)
    // The demo arms stand in a row beside the AGVs' site (x 5–40 m, y 5–25 m), unless placed otherwise.
    const armBases = new Map(settings.armBases)
    arms.forEach((arm, i) => {
      if (!armBases.has(arm.id)) armBases.set(arm.id, { x: 8 + 7 * i, y: 1.5 })
    })
    return { ...settings, rmiRobots: [...settings.rmiRobots, ...arms], mqttUrl: brokerUrl, armBases } satisfies FleetSettings
  })

const square: ReadonlyArray<[number, number]> = [[100, 0], [0, 100], [-100, 0], [0, -100]]

const step = (dx: number, dy: number): RmiPacket.InstructionBody => ({
  Instruction: "FRC_LinearRelative",
  Configuration: RmiPacket.DefaultConfiguration,
  Position: { X: dx, Y: dy, Z: 0, W: 0, P: 0, R: 0 },
  SpeedType: "mmSec",
  Speed: 100,
  TermType: "FINE",
  TermValue: 1
})

/** Moves the demo arms around a square, each while nobody holds its lease; runs until the scope closes. */
export const animate = (
  fleet: FleetService,
  arms: ReadonlyArray<string>
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.forEach(arms, (arm) => {
    const lap = Effect.gen(function*() {
      const view = (yield* fleet.state).robots.find((robot) => robot.id === arm)
      const link = Registry.unsafeWhereis(fleet.registry, `robot:${arm}`) as ActorRef<RmiLink.RmiLinkMessage> | undefined
      if (link === undefined || view === undefined || view.controlledBy !== undefined || view.status !== "online") {
        return yield* Effect.sleep("1 second")
      }
      for (const [dx, dy] of square) yield* link.ask(RmiLink.instruct(step(dx, dy)), { timeout: "10 seconds" })
    }).pipe(Effect.catchAllCause(() => Effect.sleep("1 second")))
    return Effect.forkScoped(Effect.repeat(lap, Schedule.forever))
  }, { discard: true })
