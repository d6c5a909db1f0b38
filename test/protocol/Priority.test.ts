import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as Priority from "../../src/protocol/Priority.js"
import * as WireCodec from "../../src/protocol/WireCodec.js"

interface Fixture {
  readonly name: string
  readonly wire: "json" | "msgpack"
  readonly from: "client" | "server"
  readonly frame: string
}

/** The frozen v1 frames: what real clients send, in both wire formats. */
const fixtures: ReadonlyArray<Fixture> = JSON.parse(
  fs.readFileSync(new URL("./fixtures/v1.json", import.meta.url), "utf8")
)
const bytesOf = (fixture: Fixture): string | Uint8Array =>
  fixture.frame.startsWith("base64:") ? Buffer.from(fixture.frame.slice(7), "base64") : fixture.frame

describe("urgent requests, found in a frame's bytes before it is decoded", () => {
  it("every client frame of v1 is urgent exactly when it is an emergency stop", () => {
    const clientFrames = fixtures.filter((f) => f.from === "client")
    expect(clientFrames.filter((f) => f.wire === "msgpack").length).toBeGreaterThan(5)
    for (const fixture of clientFrames) {
      expect([fixture.name, fixture.wire, Priority.isUrgent(bytesOf(fixture))]).toEqual([
        fixture.name,
        fixture.wire,
        fixture.name === "FleetEmergencyStop"
      ])
    }
  })

  it("a stop naming one robot is urgent in both wire formats, as the current codecs write it", () => {
    const request = { _tag: "Request", id: "42", tag: "FleetEmergencyStop", payload: { robot: "acme/agv-7" }, headers: [] }
    expect(Priority.isUrgent(WireCodec.json.encode(request as never) as string)).toBe(true)
    expect(Priority.isUrgent(WireCodec.msgpack.encode(request as never) as Uint8Array)).toBe(true)
    const command = { ...request, tag: "FleetCommand", payload: { robot: "acme/agv-7", command: { _tag: "Pause" } } }
    expect(Priority.isUrgent(WireCodec.json.encode(command as never) as string)).toBe(false)
    expect(Priority.isUrgent(WireCodec.msgpack.encode(command as never) as Uint8Array)).toBe(false)
  })
})
