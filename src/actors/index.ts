/**
 * The actor kernel: actors, refs, monitors and links, the Registry, PubSub,
 * the actor system with its inspection, and remote refs to services on other
 * nodes. It knows nothing of HTTP, robots or pixels.
 *
 * @since 0.1.0
 */
export * as Actor from "./Actor.js"
export * as ActorError from "./ActorError.js"
export * as ActorRef from "./ActorRef.js"
export * as ActorSystem from "./ActorSystem.js"
export * as Backplane from "./Backplane.js"
export * as Encoded from "./Encoded.js"
export * as ExitReason from "./ExitReason.js"
export * as Inspection from "./Inspection.js"
export * as Mailbox from "./Mailbox.js"
export * as PubSub from "./PubSub.js"
export * as Registry from "./Registry.js"
export * as Remote from "./Remote.js"
export * as RemoteError from "./RemoteError.js"
export * as Signal from "./Signal.js"
export * as Supervising from "./Supervising.js"
export * as TestKit from "./TestKit.js"
