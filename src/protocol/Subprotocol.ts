/**
 * Protocol versions, named by WebSocket subprotocol: `fleetvisor.v<version>.<wire>`.
 *
 * A client offers the subprotocol it speaks; the gateway `negotiate`s, then either selects the
 * accepted subprotocol in its 101 response or refuses the session with a close frame that tells
 * the page to reload.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as CloseCode from "./CloseCode.js"

/** How messages are serialized: JSON text frames or MessagePack binary frames. */
export type WireFormat = "json" | "msgpack"

/** One protocol version in one wire format. */
export interface Subprotocol {
  readonly name: string
  readonly version: number
  readonly wire: WireFormat
}

/** The protocol version this code speaks. */
export const currentVersion = 1

/** Builds the subprotocol of a version and wire format. */
export const make = (version: number, wire: WireFormat): Subprotocol => ({
  name: `fleetvisor.v${version}.${wire}`,
  version,
  wire
})

/** `fleetvisor.v1.json`: JSON text frames, readable in devtools. */
export const v1Json: Subprotocol = make(1, "json")

/** `fleetvisor.v1.msgpack`: MessagePack binary frames, compact. */
export const v1MsgPack: Subprotocol = make(1, "msgpack")

/** Every subprotocol this server accepts. A version stays here until no released client speaks it. */
export const supported: ReadonlyArray<Subprotocol> = [v1Json, v1MsgPack]

/**
 * The prefix of the `Sec-WebSocket-Protocol` entry that carries a client's token
 * (`fleetvisor.bearer.<token>`), for clients that cannot set headers (browsers). The server
 * strips it before negotiating: it is never selected, echoed nor logged.
 */
export const bearerPrefix = "fleetvisor.bearer."

/** The subprotocol a current client offers for a wire format. */
export const current = (wire: WireFormat): Subprotocol => make(currentVersion, wire)

const namePattern = /^fleetvisor\.v([1-9][0-9]{0,5})\.(json|msgpack)$/

/** Reads a subprotocol name; `None` for anything that is not `fleetvisor.v<n>.<wire>`. */
export const parse = (name: string): Option.Option<Subprotocol> => {
  const match = namePattern.exec(name)
  return match === null ? Option.none() : Option.some(make(Number(match[1]), match[2] as WireFormat))
}

/**
 * The server does not speak any protocol the client offered. The gateway completes the
 * handshake selecting `handshakeProtocol` (browsers and `ws` fail a handshake whose response
 * selects none of the offered subprotocols, and would never see the reason), then closes with
 * `code` and `reason`.
 */
export class VersionRefused extends Data.TaggedError("VersionRefused")<{
  readonly code: number
  readonly reason: string
  readonly offered: ReadonlyArray<string>
}> {
  /** The subprotocol to select in the 101 response so that the close frame reaches the page. */
  get handshakeProtocol(): string | undefined {
    return this.offered[0]
  }

  override get message(): string {
    return this.reason
  }
}

/**
 * Picks the subprotocol to accept from the client's offer (the `Sec-WebSocket-Protocol` values):
 * the highest supported version, and within it the client's first choice of wire format.
 * Offers this server does not know are ignored; if none is left, the result is a `VersionRefused`.
 */
export const negotiate = (
  offered: ReadonlyArray<string>,
  accepted: ReadonlyArray<Subprotocol> = supported
): Either.Either<Subprotocol, VersionRefused> => {
  let best: Subprotocol | undefined
  for (const name of offered) {
    const candidate = accepted.find((subprotocol) => subprotocol.name === name)
    if (candidate !== undefined && (best === undefined || candidate.version > best.version)) best = candidate
  }
  if (best !== undefined) return Either.right(best)
  const versions = [...new Set(accepted.map((subprotocol) => `v${subprotocol.version}`))].join(", ")
  return Either.left(
    new VersionRefused({
      code: CloseCode.VersionRefused,
      reason: CloseCode.reason(
        `Unsupported fleetvisor protocol version (this server speaks ${versions || "none"}). Reload the page.`
      ),
      offered
    })
  )
}
