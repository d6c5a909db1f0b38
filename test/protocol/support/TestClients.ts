/**
 * Clients for tests: the typed `FleetvisorClient` over Node's `ws`, and a raw `ws` socket that
 * sends whatever bytes a test wants.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { WebSocket } from "ws"
import * as FleetvisorClient from "../../../src/client/FleetvisorClient.js"
import type * as Subprotocol from "../../../src/protocol/Subprotocol.js"
import { TestGateway } from "./TestGateway.js"

/** Test-speed reconnects. */
export const fastReconnect = { initialDelay: "20 millis", maxDelay: "100 millis" } as const

/** A typed client of the test gateway, open. */
export const connect = (wire: Subprotocol.WireFormat) =>
  Effect.gen(function*() {
    const { url } = yield* TestGateway
    const client = yield* FleetvisorClient.make({ url, wire, disableTracing: true, reconnect: fastReconnect })
    yield* client.ready
    return client
  }).pipe(Effect.provide(NodeSocket.layerWebSocketConstructor))

/** A raw socket: what it received, and how it closed. */
export interface RawSocket {
  readonly socket: WebSocket
  /** The subprotocol the server selected. */
  readonly protocol: string
  readonly received: Queue.Queue<string | Buffer>
  readonly closed: Deferred.Deferred<{ readonly code: number; readonly reason: string }>
}

/** Opens a raw socket offering `protocols`; terminated when the scope closes. */
export const rawSocket = (url: string, protocols: ReadonlyArray<string>): Effect.Effect<RawSocket, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const received = yield* Queue.unbounded<string | Buffer>()
    const closed = yield* Deferred.make<{ readonly code: number; readonly reason: string }>()
    const socket = yield* Effect.acquireRelease(
      Effect.async<WebSocket, Error>((resume) => {
        const socket = new WebSocket(url, [...protocols])
        socket.on("message", (data, isBinary) =>
          Queue.unsafeOffer(received, isBinary ? (data as Buffer) : (data as Buffer).toString("utf8"))
        )
        socket.once("close", (code, reason) => Deferred.unsafeDone(closed, Effect.succeed({ code, reason: reason.toString() })))
        socket.once("open", () => resume(Effect.succeed(socket)))
        socket.once("error", (error) => resume(Effect.fail(error)))
      }),
      (socket) => Effect.sync(() => socket.terminate())
    )
    return { socket, protocol: socket.protocol, received, closed }
  })
