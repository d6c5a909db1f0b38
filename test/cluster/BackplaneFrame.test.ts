/**
 * The backplane's frames between nodes: frozen frames of every released version decode forever,
 * newer minor versions (added fields) decode, newer major versions are told apart.
 */
import { describe, expect, it } from "vitest"
import { pack } from "msgpackr"
import { Encoded } from "../../src/actors/index.js"
import * as BackplaneFrame from "../../src/cluster/BackplaneFrame.js"

/** Frames as version 1 wrote them; never edit, only add. */
const frozen = {
  v1Message: "de0005a17601a66f726967696ea66e6f64652d61a373657107a5746f706963a5666c656574a76d657373616765de0002a5726f626f74a56167762d31a178cb3ff8000000000000",
  v1Resync: "de0004a17601a66f726967696ea66e6f64652d62a5746f706963a5666c656574a6726561736f6ea3676170"
}

describe("BackplaneFrame", () => {
  it("frozen version 1 frames decode", () => {
    expect(BackplaneFrame.decodeMessage(Buffer.from(frozen.v1Message, "hex"))).toEqual({
      _tag: "Frame",
      frame: { v: 1, origin: "node-a", seq: 7, topic: "fleet", message: { robot: "agv-1", x: 1.5 } }
    })
    expect(BackplaneFrame.decodeResync(Buffer.from(frozen.v1Resync, "hex"))).toEqual({
      _tag: "Frame",
      frame: { v: 1, origin: "node-b", topic: "fleet", reason: "gap" }
    })
  })

  it("what this version writes decodes to what was written; an Encoded payload is wrapped again", () => {
    const decoded = BackplaneFrame.decodeMessage(BackplaneFrame.encodeMessage("a", 1, "canvas", Encoded.make({ pixels: [1, 2] })))
    expect(decoded._tag).toBe("Frame")
    const message = decoded._tag === "Frame" ? decoded.frame.message : undefined
    expect(Encoded.isEncoded(message) && message.value).toEqual({ pixels: [1, 2] })
  })

  it("fields a newer minor version adds are ignored; a newer major version is told apart; the rest is invalid", () => {
    const added = pack({ v: 1, origin: "a", seq: 1, topic: "t", message: 1, priority: "high" })
    expect(BackplaneFrame.decodeMessage(added)).toEqual({
      _tag: "Frame",
      frame: { v: 1, origin: "a", seq: 1, topic: "t", message: 1 }
    })
    expect(BackplaneFrame.decodeMessage(pack({ v: 2, whatever: true }))).toEqual({ _tag: "UnknownVersion", version: 2 })
    for (
      const bytes of [
        Buffer.from("plain text"),
        pack(null),
        pack({ v: "1", origin: "a", seq: 1, topic: "t" }),
        pack({ v: 1, origin: "a", seq: 0, topic: "t" }),
        pack({ v: 1, origin: 3, seq: 1, topic: "t" })
      ]
    ) expect(BackplaneFrame.decodeMessage(bytes)).toEqual({ _tag: "Invalid" })
    expect(BackplaneFrame.decodeResync(pack({ v: 1, origin: "a", topic: "t", reason: "boredom" }))).toEqual({ _tag: "Invalid" })
  })
})
