/**
 * The robot fleet: links to FANUC arms (RMI over TCP) and VDA 5050 AGVs (MQTT) as
 * supervised actors, the fleet's state and control leases, and the `FleetRpcs` handlers.
 *
 * Layers, and what they need:
 *
 * | layer           | provides                             | needs                                              |
 * |-----------------|--------------------------------------|----------------------------------------------------|
 * | `layer`         | `Fleet`, `FleetHub`, `FleetConfig`   | `ActorSystem`; reads `FleetConfig` from the environment; uses `AuditLog` and `TelemetryLog` if provided |
 * | `layerWith(s)`  | the same, with fixed settings `s`    | `ActorSystem`; uses `AuditLog` and `TelemetryLog` if provided |
 * | `Fleet.layerUnstarted` | `Fleet`, whose `child` the caller starts under its root supervisor | `FleetConfig`, `FleetHub`; uses `AuditLog`, `TelemetryLog` |
 * | `handlersLayer` | the `FleetRpcs` handlers (for `RpcBridge`) | `Fleet`; uses `AccessPolicy` if provided; reads each request's `Caller` |
 *
 * With the demo on (the default when neither `FLEET_RMI_ROBOTS` nor `FLEET_MQTT_URL` is set),
 * the layers also start simulated arms, a dozen simulated AGVs and, without a broker URL, an
 * embedded aedes broker on 127.0.0.1:18830; all stop with the layer.
 *
 * `layer` spawns the `fleet` subtree as a top-level actor of the `ActorSystem`; with
 * `layerUnstarted` (plus `FleetConfig`, `FleetHub` and, for the demo, `Demo.start`) the node puts
 * `fleet.child` in its root supervisor's children instead, as DESIGN.md draws the tree.
 * A gateway that connects its sessions to the bridge with a `caller` (`src/protocol/Caller.ts`)
 * names each request's session and user, and a dead session's leases are released at once.
 *
 * ```ts
 * const fleet = Fleet.layer.pipe(Layer.provide(ActorSystem.layer()))
 * const handlers = Fleet.handlersLayer.pipe(Layer.provide(fleet))
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Demo from "./Demo.js"
import { Fleet, FleetHub, layer as fleetLayer } from "./Fleet.js"
import * as FleetConfigModule from "./FleetConfig.js"
import { FleetConfig, type FleetSettings } from "./FleetConfig.js"
import * as FleetHandlers from "./FleetHandlers.js"

export { Fleet, FleetHub, type FleetService, type FleetStats, type Holder, type FleetView, layerUnstarted, makeUnstarted } from "./Fleet.js"
export { FleetConfig, type FleetSettings, type RmiRobot } from "./FleetConfig.js"
export { AccessPolicy } from "./FleetHandlers.js"
export * as FleetState from "./FleetState.js"
export * as FleetTree from "./FleetTree.js"
export * as Demo from "./Demo.js"

const settingsLayer = <E>(settings: Effect.Effect<FleetSettings, E>) =>
  Layer.scoped(
    FleetConfig,
    Effect.flatMap(settings, (s) => (s.demo ? Demo.start(s) : Effect.succeed(s)))
  )

const animation = Layer.scopedDiscard(
  Effect.gen(function*() {
    const settings = yield* FleetConfig
    if (!settings.demo) return
    yield* Demo.animate(
      yield* Fleet,
      settings.rmiRobots.map((robot) => robot.id).filter((id) => id.startsWith("demo-arm-"))
    )
  })
)

const assemble = <E>(settings: Layer.Layer<FleetConfig, E>) => {
  const base = Layer.mergeAll(settings, FleetHub.layer)
  const fleet = fleetLayer.pipe(Layer.provideMerge(base))
  return animation.pipe(Layer.provideMerge(fleet))
}

/** The fleet, configured from the environment (see `FleetConfig`). */
export const layer = assemble(settingsLayer(FleetConfigModule.config))

/** The fleet with fixed settings (tests, embedding). */
export const layerWith = (settings: FleetSettings) => assemble(settingsLayer(Effect.succeed(settings)))

/** The `FleetRpcs` handlers, for the gateway's `RpcBridge`. */
export const handlersLayer = FleetHandlers.layer
