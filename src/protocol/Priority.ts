/**
 * Requests that overtake whatever a session has queued: the emergency stop. A gateway looks for
 * their tag in a client's frame, as it appears on the wire (a JSON string or a MessagePack str),
 * before decoding it, and hands such a frame to the session's urgent lane. A frame that only
 * mentions the tag elsewhere is expedited too; nothing else changes for it.
 *
 * @since 0.1.0
 */
import { FleetEmergencyStop } from "./FleetRpcs.js"

/** The RPCs whose requests are expedited. */
export const urgentTags: ReadonlyArray<string> = [FleetEmergencyStop._tag]

const msgpackString = (text: string): Buffer => {
  const bytes = Buffer.from(text)
  const header = bytes.length < 32 ? [0xa0 | bytes.length] : [0xd9, bytes.length]
  return Buffer.concat([Buffer.from(header), bytes])
}

const jsonNeedles = urgentTags.map((tag) => JSON.stringify(tag))
const msgpackNeedles = urgentTags.map(msgpackString)

/** Whether a client's frame (JSON text or MessagePack bytes) is, by its bytes, an urgent request. */
export const isUrgent = (frame: string | Uint8Array): boolean => {
  if (typeof frame === "string") return jsonNeedles.some((needle) => frame.includes(needle))
  const bytes = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength)
  return msgpackNeedles.some((needle) => bytes.includes(needle))
}
