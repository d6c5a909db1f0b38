/**
 * Every RPC a fleetvisor client can call over `/ws`.
 *
 * @since 0.1.0
 */
import { CanvasRpcs } from "./CanvasRpcs.js"
import { FleetRpcs } from "./FleetRpcs.js"
import { SystemRpcs } from "./SystemRpcs.js"

/** The RPC group served at `/ws`: system, canvas and fleet RPCs. */
export class FleetvisorRpcs extends SystemRpcs.merge(CanvasRpcs, FleetRpcs) {}
