/**
 * WebSocket close codes that fleetvisor sends, and the rule for close reasons.
 *
 * Codes below 4000 are RFC 6455's; `VersionRefused` is ours (4000–4999 is the private range).
 *
 * @since 0.1.0
 */

/** The session ended normally. */
export const Normal = 1000

/** The server is going away (shutdown or restart); the client should reconnect. */
export const GoingAway = 1001

/** The peer broke the WebSocket protocol itself (the gateway's `ws` sends this). */
export const ProtocolError = 1002

/** A frame of the wrong kind: binary on a JSON connection, text on a MessagePack one. */
export const UnsupportedData = 1003

/** A frame whose bytes do not decode, or decode to something that is not an RPC message. */
export const InvalidPayload = 1007

/** The client broke a rule of the service (flooding, authorization); sent by the gateway. */
export const PolicyViolation = 1008

/** A frame larger than the gateway accepts (`ws` `maxPayload`). */
export const MessageTooBig = 1009

/** The server failed while serving the session. */
export const InternalError = 1011

/**
 * The client speaks a protocol version this server does not support. The page must reload to
 * fetch a client that matches; reconnecting as it is would be refused again, so clients stop
 * retrying on this code. 4426 echoes HTTP 426 "Upgrade Required".
 */
export const VersionRefused = 4426

/** The most bytes a close reason may have (a close frame's payload is at most 125 bytes). */
export const maxReasonBytes = 123

const encoder = new TextEncoder()

/** Cuts a close reason to `maxReasonBytes` of UTF-8 without splitting a character. */
export const reason = (text: string): string => {
  if (encoder.encode(text).length <= maxReasonBytes) return text
  let cut = ""
  for (const char of text) {
    if (encoder.encode(cut + char + "…").length > maxReasonBytes) break
    cut += char
  }
  return cut + "…"
}
