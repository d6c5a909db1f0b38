/**
 * A server's WebSocket frame (RFC 6455 §5.2: final, unmasked, no extension bits), built once for
 * every socket that gets the same message.
 *
 * A broadcast hands the same payload to thousands of sessions. `ws`'s `send` frames it again for
 * each (a header buffer, a view of the payload, a two-buffer `writev`); a session whose socket
 * negotiated no extension can instead write these bytes, one buffer, straight to its TCP
 * connection, which is exactly what `ws` would have written. The last payload framed is
 * remembered, so the sessions of one broadcast share one buffer.
 *
 * @since 0.1.0
 */

const opText = 0x81
const opBinary = 0x82

let lastPayload: string | Uint8Array | undefined
let lastFrame: Buffer = Buffer.alloc(0)

const build = (payload: string | Uint8Array): Buffer => {
  const data = typeof payload === "string" ? Buffer.from(payload, "utf8") : payload
  const length = data.length
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10
  const frame = Buffer.allocUnsafe(headerLength + length)
  frame[0] = typeof payload === "string" ? opText : opBinary
  if (length < 126) {
    frame[1] = length
  } else if (length < 65536) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeUInt32BE(Math.floor(length / 0x1_0000_0000), 2)
    frame.writeUInt32BE(length >>> 0, 6)
  }
  frame.set(data, headerLength)
  return frame
}

/** The frame of `payload`: a text frame for a string, a binary frame for bytes. */
export const of = (payload: string | Uint8Array): Buffer => {
  if (payload !== lastPayload) {
    lastFrame = build(payload)
    lastPayload = payload
  }
  return lastFrame
}
