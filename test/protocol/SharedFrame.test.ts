import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { CanvasEvent, CanvasJoin, packPixels, Snapshot, Updates } from "../../src/protocol/CanvasRpcs.js"
import { FleetEvent, FleetSubscribe, FleetUpdate, Lease } from "../../src/protocol/FleetRpcs.js"
import * as RpcBridge from "../../src/protocol/RpcBridge.js"
import * as SharedFrame from "../../src/protocol/SharedFrame.js"
import * as Subprotocol from "../../src/protocol/Subprotocol.js"
import * as WireCodec from "../../src/protocol/WireCodec.js"
import { rawSocket } from "./support/TestClients.js"
import * as TestGateway from "./support/TestGateway.js"

const updates = Updates.make({ seq: 12, pixels: packPixels([{ x: 1, y: 2, color: 3 }, { x: 300, y: 4, color: 1 }]) })
const snapshot = Snapshot.make({ width: 2, height: 1, palette: ["#000", "#fff"], pixels: new Uint8Array([0, 1]), seq: 11 })
const values = [snapshot, updates] as const

// What RpcServer sends for a chunk: the values encoded by the RPC's schema, in a Chunk message.
const normallyEncoded = (wire: Subprotocol.WireFormat, requestId: string) =>
  WireCodec.of(wire).encode({
    _tag: "Chunk",
    requestId,
    values: Schema.encodeSync(Schema.Array(CanvasEvent))(values)
  })

const bytesOf = (frame: string | Uint8Array) => Buffer.from(typeof frame === "string" ? Buffer.from(frame) : frame)

const view = {
  kind: "agv" as const,
  id: "KIT/0001",
  alarms: [{ code: "LOW-BATTERY", level: "warning" as const, message: "12 %" }],
  status: "online" as const,
  connection: "online" as const,
  safety: "normal" as const,
  updatedAt: 1_700_000_000_123,
  pose: { x: 1.5, y: -2, theta: 0.25 },
  poseKnown: true,
  order: { orderId: "o-1", nodes: [{ nodeId: "n1", sequenceId: 0, released: true, x: 1, y: 2 }], edges: [] }
}

describe("SharedFrame", () => {
  it("sends values that are their own encoding as they are, byte for byte what RpcServer would send", () => {
    const update = FleetUpdate.make({ tick: 7, robots: [view] })
    expect(SharedFrame.encodesAsIs(Schema.Array(FleetEvent).ast)).toBe(true)
    for (const wire of ["json", "msgpack"] as const) {
      const expected = WireCodec.of(wire).encode({ _tag: "Chunk", requestId: "3", values: Schema.encodeSync(Schema.Array(FleetEvent))([update]) })
      expect(bytesOf(SharedFrame.chunkFrame(SharedFrame.encodeOnce(FleetSubscribe, [update]), wire, "3"))).toEqual(bytesOf(expected))
    }
  })

  it("encodes what has a transformation anywhere inside: bytes as base64, a date as a number, a member of a union", () => {
    expect(SharedFrame.encodesAsIs(Schema.Array(CanvasEvent).ast)).toBe(false)
    expect(SharedFrame.encodesAsIs(Lease.ast)).toBe(false)
    expect(SharedFrame.encodesAsIs(Schema.Union(Schema.Number, Schema.Struct({ a: Schema.NumberFromString })).ast)).toBe(false)
    expect(SharedFrame.encodesAsIs(Schema.Struct({ n: Schema.Int, s: Schema.optional(Schema.String) }).ast)).toBe(true)
  })

  for (const wire of ["json", "msgpack"] as const) {
    it(`splices a request id into a ${wire} chunk, byte for byte as RpcServer encodes it`, () => {
      const frame = SharedFrame.encodeOnce(CanvasJoin, values)
      for (const requestId of ["0", "42", "18446744073709551615", "1".repeat(40)]) {
        expect(bytesOf(SharedFrame.chunkFrame(frame, wire, requestId))).toEqual(bytesOf(normallyEncoded(wire, requestId)))
      }
    })

    it(`decodes a spliced ${wire} chunk on the client like the values it was made of`, () => {
      const spliced = SharedFrame.chunkFrame(SharedFrame.encodeOnce(CanvasJoin, values), wire, "7")
      const [message] = WireCodec.of(wire).serialization.unsafeMake().decode(spliced) as [{ values: unknown }]
      expect(Schema.decodeUnknownSync(Schema.Array(CanvasEvent))(message.values)).toEqual(values)
    })
  }

  it("writes bytes as raw bin in MessagePack and as base64 in JSON", () => {
    const frame = SharedFrame.encodeOnce(CanvasJoin, [updates])
    const base64 = Buffer.from(updates.pixels).toString("base64")
    expect(SharedFrame.chunkFrame(frame, "json", "1")).toContain(`"pixels":"${base64}"`)
    const bin8 = Buffer.from([0xc4, updates.pixels.length, ...updates.pixels])
    expect(bytesOf(SharedFrame.chunkFrame(frame, "msgpack", "1")).includes(bin8)).toBe(true)
  })

  it("encodes the values once, however many subscribers and formats", () => {
    let encodings = 0
    const Counted = Schema.transform(Schema.Number, Schema.Number, {
      strict: true,
      decode: (n) => n,
      encode: (n) => (encodings++, n)
    })
    const Ticks = Rpc.make("Ticks", { success: Counted, stream: true })
    const frame = SharedFrame.encodeOnce(Ticks, [1])
    for (let requestId = 0; requestId < 1000; requestId++) {
      SharedFrame.chunkFrame(frame, requestId % 2 === 0 ? "json" : "msgpack", String(requestId))
    }
    expect(encodings).toBe(1)
    expect(frame.tail("msgpack")).toBe(frame.tail("msgpack"))
  })

  // One stream served by RpcServer, the same items written through the fast path: a raw socket
  // must receive the same bytes for both.
  const Normal = Rpc.make("Normal", { success: CanvasEvent, stream: true })
  const Direct = Rpc.make("Direct", { success: CanvasEvent, stream: true })
  class BothPaths extends RpcGroup.make(Normal, Direct) {}
  const bothPaths = TestGateway.layer().pipe(
    Layer.provideMerge(RpcBridge.layer(BothPaths, { disableTracing: true })),
    Layer.provide(BothPaths.toLayer({
      Normal: () => Stream.fromIterable(values).pipe(Stream.rechunk(2)),
      Direct: () =>
        RpcBridge.directStream((writer) => Effect.sync(() => writer.write(SharedFrame.encodeOnce(Direct, values))))
    }))
  )

  for (const subprotocol of Subprotocol.supported) {
    it.scoped(`sends the same ${subprotocol.wire} chunk frame on both paths over a socket`, () =>
      Effect.gen(function*() {
        const { url } = yield* TestGateway.TestGateway
        const codec = WireCodec.of(subprotocol.wire)
        const socket = yield* rawSocket(url, [subprotocol.name])
        const request = (tag: string) =>
          socket.socket.send(codec.encode({ _tag: "Request", id: "5", tag, payload: undefined, headers: [] }))
        const chunkOf = (tag: string) =>
          Effect.gen(function*() {
            request(tag)
            const chunk = yield* Queue.take(socket.received)
            const exit = yield* Queue.take(socket.received)
            expect((codec.decode(exit)[0] as { _tag: string })._tag).toBe("Exit")
            return bytesOf(chunk)
          })
        const normal = yield* chunkOf("Normal")
        const direct = yield* chunkOf("Direct")
        expect(direct).toEqual(normal)
        expect(normal).toEqual(bytesOf(normallyEncoded(subprotocol.wire, "5")))
      }).pipe(Effect.provide(bothPaths)))
  }
})
