/**
 * The handlers of `SystemRpcs`: `Hello` names the server, its protocol version and features;
 * `Ping` is a round trip; `ServerTime` is the server's clock.
 *
 * @since 0.1.0
 */
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Subprotocol from "../protocol/Subprotocol.js"
import { SystemRpcs } from "../protocol/SystemRpcs.js"

/** What `Hello` answers. */
export interface ServerInfo {
  readonly serverVersion: string
  /** The node serving the session (its host name). */
  readonly node: string
  /** "canvas", "fleet": what this server can do. */
  readonly features: ReadonlyArray<string>
}

/** The handlers of the system RPCs. */
export const layer = (info: ServerInfo) =>
  SystemRpcs.toLayer({
    Hello: () =>
      Effect.succeed({
        serverVersion: info.serverVersion,
        protocolVersion: Subprotocol.currentVersion,
        features: [...info.features],
        node: info.node
      }),
    Ping: () => Effect.void,
    ServerTime: () => Effect.map(DateTime.now, (now) => ({ now }))
  })
