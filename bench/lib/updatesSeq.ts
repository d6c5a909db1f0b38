/** Reading a canvas `Updates` chunk's sequence number straight from a MessagePack frame. */

// msgpackr writes records: the keys once, then `_tag` ("Updates" as a fixstr), then `seq`.
const updatesTag = Buffer.from([0xa7, ...Buffer.from("Updates")])

/**
 * The `seq` of an `Updates` chunk, read in place: a thousand sockets in one process must not
 * spend the time being measured decoding whole frames.
 */
export const seqOf = (data: Buffer): number | undefined => {
  const at = data.indexOf(updatesTag)
  if (at === -1) return undefined
  const i = at + updatesTag.length
  const byte = data[i]
  if (byte < 0x80) return byte
  switch (byte) {
    case 0xcc:
      return data.readUInt8(i + 1)
    case 0xcd:
      return data.readUInt16BE(i + 1)
    case 0xce:
      return data.readUInt32BE(i + 1)
  }
  return undefined
}
