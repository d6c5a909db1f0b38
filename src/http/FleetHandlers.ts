/**
 * The handlers of `FleetRpcs` for a node without a fleet: the fleet is empty. A subscription
 * gets an empty snapshot and stays open; every robot is unknown; an emergency stop of all
 * robots stops none and succeeds. The fleet application replaces these when it runs.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { FleetRpcs, FleetSnapshot, FleetSubscribe, UnknownRobot } from "../protocol/FleetRpcs.js"
import * as RpcBridge from "../protocol/RpcBridge.js"
import * as SharedFrame from "../protocol/SharedFrame.js"

const emptySnapshot = SharedFrame.encodeOnce(FleetSubscribe, [FleetSnapshot.make({ tick: 0, robots: [] })])

/** The handlers of an empty fleet. */
export const emptyFleet = FleetRpcs.toLayer({
  FleetSubscribe: () =>
    RpcBridge.directStream((writer) => Effect.zipRight(Effect.sync(() => writer.write(emptySnapshot)), Effect.never)),
  FleetAcquire: ({ robot }) => Effect.fail(new UnknownRobot({ robot })),
  FleetRenew: ({ robot }) => Effect.fail(new UnknownRobot({ robot })),
  FleetRelease: ({ robot }) => Effect.fail(new UnknownRobot({ robot })),
  FleetCommand: ({ robot }) => Effect.fail(new UnknownRobot({ robot })),
  FleetEmergencyStop: ({ robot }) =>
    robot === undefined ? Effect.succeed({ reached: [], latchedOnly: [] }) : Effect.fail(new UnknownRobot({ robot }))
})
