/**
 * A simulated arm (RMI over TCP on 127.0.0.1), the fleet over it, and its RPC handlers behind
 * the stand-in gateway: the server side of the fleet's RPC tests. `callerOf` makes each
 * socket's `Caller`, as the gateway's sessions are their requests' callers.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ActorSystem } from "../../../../src/actors/index.js"
import * as FleetApp from "../../../../src/apps/fleet/index.js"
import * as FleetConfig from "../../../../src/apps/fleet/FleetConfig.js"
import * as RmiSimulator from "../../../../src/links/rmi/RmiSimulator.js"
import { FleetRpcs } from "../../../../src/protocol/FleetRpcs.js"
import * as RpcBridge from "../../../../src/protocol/RpcBridge.js"
import * as TestGateway from "../../../protocol/support/TestGateway.js"

/** The server layer; the arm is `arm-1`, polled at 25 Hz, its simulator five times faster than life. */
export const server = (callerOf?: TestGateway.CallerOf) =>
  Layer.unwrapScoped(
    Effect.map(RmiSimulator.make({ port: 0, timeScale: 5 }), (sim) => {
      const settings = FleetConfig.make({ rmiRobots: [{ id: "arm-1", host: "127.0.0.1", port: sim.port }], pollHz: 25 })
      const fleet = FleetApp.layerWith(settings).pipe(Layer.provideMerge(ActorSystem.layer({ logFailures: false })))
      return TestGateway.layer(undefined, { callerOf }).pipe(
        Layer.provideMerge(RpcBridge.layer(FleetRpcs, { disableTracing: true })),
        Layer.provideMerge(FleetApp.handlersLayer),
        Layer.provideMerge(fleet)
      )
    })
  )
