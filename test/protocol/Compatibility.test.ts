import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcSchema from "@effect/rpc/RpcSchema"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Queue, Schema } from "effect"
import { readFileSync } from "node:fs"
import * as FleetvisorClient from "../../src/client/FleetvisorClient.js"
import { FleetvisorRpcs } from "../../src/protocol/FleetvisorRpcs.js"
import * as Subprotocol from "../../src/protocol/Subprotocol.js"
import * as WireCodec from "../../src/protocol/WireCodec.js"
import { FrozenFrame } from "./fixtures/frames.js"
import { OlderRpcs } from "./support/OlderRpcs.js"
import { fastReconnect, rawSocket } from "./support/TestClients.js"
import { TestGateway } from "./support/TestGateway.js"
import * as TestServer from "./support/TestServer.js"

/** The frames of a v1 session, recorded once (see fixtures/freeze.ts) and never rewritten. */
const v1: ReadonlyArray<FrozenFrame> = JSON.parse(readFileSync(new URL("./fixtures/v1.json", import.meta.url), "utf8"))

type Message = { readonly _tag: string; readonly tag?: string; readonly exit?: any; readonly values?: Array<unknown>; readonly payload?: unknown }

const decode = (stored: FrozenFrame): Message => WireCodec.of(stored.wire).decode(FrozenFrame.read(stored.frame))[0] as Message

const rpcOf = (name: string) => {
  const rpc = FleetvisorRpcs.requests.get(name.split("/")[0])
  if (rpc === undefined) throw new Error(`the current server has no RPC ${name}`)
  return rpc as Rpc.AnyWithProps
}

/** What a client learns from an answer: success, which error, or which stream item. */
const outcome = (message: Message): string =>
  message._tag === "Exit"
    ? message.exit._tag === "Success" ? "Success" : `Failure ${message.exit.cause?.error?._tag}`
    : `${message._tag} ${(message.values?.[0] as { _tag?: string } | undefined)?._tag}`

describe("protocol v1 compatibility", () => {
  it("the frozen fixtures hold every v1 request in both wire formats", () => {
    expect(v1.filter((f) => f.from === "client" && f.wire === "json").length).toBe(11)
    expect(v1.filter((f) => f.from === "client" && f.wire === "msgpack").length).toBe(11)
  })

  it("every frozen client frame decodes as a request of the current RPCs", () => {
    for (const stored of v1.filter((f) => f.from === "client")) {
      const message = decode(stored)
      expect(message._tag).toBe("Request")
      const rpc = rpcOf(message.tag!)
      expect(() => Schema.decodeUnknownSync(rpc.payloadSchema as Schema.Schema<unknown, unknown>)(message.payload), stored.name)
        .not.toThrow()
    }
  })

  it("every frozen server frame decodes with the current schemas", () => {
    for (const stored of v1.filter((f) => f.from === "server")) {
      const message = decode(stored)
      const rpc = rpcOf(stored.name)
      if (message._tag === "Exit") {
        const exitSchema = Rpc.exitSchema(rpc as unknown as Rpc.Any) as unknown as Schema.Schema<unknown, unknown>
        expect(() => Schema.decodeUnknownSync(exitSchema)(message.exit), stored.name).not.toThrow()
      } else {
        expect(message._tag).toBe("Chunk")
        const item = Option.getOrThrow(RpcSchema.getStreamSchemas(rpc.successSchema.ast)).success as Schema.Schema<unknown, unknown>
        for (const value of message.values!) expect(() => Schema.decodeUnknownSync(item)(value), stored.name).not.toThrow()
      }
    }
  })

  for (const wire of ["json", "msgpack"] as const) {
    it.scoped(`the current server answers every frozen ${wire} request as it did when v1 was released`, () =>
      Effect.gen(function*() {
        const { url } = yield* TestGateway
        const socket = yield* rawSocket(url, [Subprotocol.current(wire).name])
        const frames = v1.filter((f) => f.wire === wire)
        for (let i = 0; i < frames.length; i++) {
          if (frames[i].from !== "client") continue
          socket.socket.send(FrozenFrame.read(frames[i].frame))
          const then = decode(frames[i + 1])
          const now = WireCodec.of(wire).decode(yield* Queue.take(socket.received))[0] as Message
          expect(outcome(now), frames[i].name).toBe(outcome(then))
        }
      }).pipe(Effect.provide(TestServer.layer())))
  }

  it.scoped("an older client that knows fewer RPCs and fields works with the current server", () =>
    Effect.gen(function*() {
      const { url } = yield* TestGateway
      const older = yield* FleetvisorClient.makeWith(OlderRpcs, { url, wire: "json", disableTracing: true, reconnect: fastReconnect })
      yield* older.ready
      // The current server adds `node` to the reply; the older schema ignores what it does not know.
      expect(yield* older.rpc.Hello({ app: "canvas-page", version: "2025.01.01" })).toEqual({
        serverVersion: "test",
        protocolVersion: 1,
        features: ["canvas", "fleet"]
      })
      yield* older.rpc.Ping()
      expect((yield* older.rpc.CanvasPlace({ x: 1, y: 1, color: 1 })).seq).toBe(8)
      expect((yield* Effect.flip(older.rpc.CanvasPlace({ x: 1, y: 1, color: 9 })))._tag).toBe("InvalidColor")
    }).pipe(Effect.provide([TestServer.layer(), NodeSocket.layerWebSocketConstructor])))
})
