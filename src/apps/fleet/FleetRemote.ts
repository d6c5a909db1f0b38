/**
 * What one node of the fleet asks another, over the kernel's remote refs (`actors/Remote.ts`):
 * a command for a robot the other node runs ({@link RemoteCommand}, carried with the owner's
 * lease token), and an emergency stop of an arm it runs ({@link RemoteStop}, on the urgent lane,
 * not through Redis). The schemas are the wire form; the node protocol's version covers them.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Schema from "effect/Schema"
import * as Remote from "../../actors/Remote.js"
import {
  CommandNotSupported,
  CommandRefused,
  RobotCommand,
  RobotId,
  RobotOffline,
  RobotStopped
} from "../../protocol/FleetRpcs.js"

/** A command another node's session sent, for a robot this node runs. */
export const CommandRequest = Schema.Struct({
  robot: RobotId,
  /** The owner's lease token (`epoch.counter`) as the sender knew it; absent when it knew none. */
  token: Schema.optional(Schema.String),
  holder: Schema.Struct({ session: Schema.String, user: Schema.String, role: Schema.optional(Schema.String) }),
  command: RobotCommand
})

/** @see CommandRequest */
export type CommandRequest = typeof CommandRequest.Type

/** Runs a command on the node that runs the robot; fails as a local command would. */
export const RemoteCommand = Remote.service("fleet/command", {
  request: CommandRequest,
  success: Schema.Void,
  failure: Schema.Union(RobotOffline, CommandNotSupported, CommandRefused, RobotStopped)
})

/** Stops (and latches) a robot on the node that runs it; answers whether the stop reached the robot. */
export const RemoteStop = Remote.service("fleet/stop", {
  request: Schema.Struct({ robot: RobotId, by: Schema.String }),
  success: Schema.Struct({ reached: Schema.Boolean }),
  failure: Schema.Never
})

/** How this node reaches the others: the transport of remote refs, and the live nodes but itself. */
export interface Peers {
  readonly transport: Remote.Transport
  /** The other live nodes now. */
  readonly others: () => ReadonlyArray<string>
}

/** This node's peers as a service; absent on a single node. */
export const Peers: Context.Tag<Peers, Peers> = Context.GenericTag<Peers>("fleetvisor/apps/fleet/FleetRemote/Peers")
