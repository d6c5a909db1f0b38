/**
 * A stand-in for the fleetvisor gateway: a plain `ws` server on 127.0.0.1 (ephemeral port) that
 * negotiates the subprotocol and plugs every accepted socket into the `RpcBridge`; with
 * `callerOf`, each socket's requests see the `Caller` it makes for that socket (the n-th accepted,
 * from 0), as a session of the real gateway is its requests' caller.
 */
import type { IncomingMessage } from "node:http"
import type { AddressInfo } from "node:net"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import { type WebSocket, WebSocketServer } from "ws"
import type { CallerInfo } from "../../../src/protocol/Caller.js"
import * as RpcBridge from "../../../src/protocol/RpcBridge.js"
import * as Subprotocol from "../../../src/protocol/Subprotocol.js"

/** The running stand-in gateway. */
export class TestGateway extends Context.Tag("test/protocol/TestGateway")<TestGateway, {
  /** `ws://127.0.0.1:<port>/ws` */
  readonly url: string
  /** Closes every open socket from the server side, as a restart would. */
  readonly closeAll: (code: number, reason: string) => Effect.Effect<void>
}>() {}

const offeredBy = (request: IncomingMessage): Array<string> =>
  (request.headers["sec-websocket-protocol"] ?? "").split(",").map((name) => name.trim()).filter((name) => name !== "")

/** Makes the caller of the `index`-th accepted socket. */
export type CallerOf = (index: number, socket: WebSocket) => CallerInfo

const make = (accepted: ReadonlyArray<Subprotocol.Subprotocol>, callerOf: CallerOf | undefined) =>
  Effect.gen(function*() {
    let acceptedCount = 0
    const bridge = yield* RpcBridge.RpcBridge
    const runtime = yield* Effect.runtime<never>()
    const server = yield* Effect.acquireRelease(
      Effect.async<WebSocketServer>((resume) => {
        const server = new WebSocketServer({
          host: "127.0.0.1",
          port: 0,
          handleProtocols: (offered) =>
            Either.match(Subprotocol.negotiate([...offered], accepted), {
              onLeft: (refused) => refused.handshakeProtocol ?? false,
              onRight: (subprotocol) => subprotocol.name
            })
        })
        server.once("listening", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.async<void>((resume) => {
          for (const socket of server.clients) socket.terminate()
          server.close(() => resume(Effect.void))
        })
    )

    server.on("connection", (socket: WebSocket, request) => {
      const negotiated = Subprotocol.negotiate(offeredBy(request), accepted)
      if (Either.isLeft(negotiated)) return socket.close(negotiated.left.code, negotiated.left.reason)
      const scope = Runtime.runSync(runtime)(Scope.make())
      const connection = Runtime.runSync(runtime)(
        Scope.extend(
          bridge.connect({
            wire: negotiated.right.wire,
            headers: [["x-remote-address", request.socket.remoteAddress ?? ""]],
            caller: callerOf?.(acceptedCount++, socket),
            send: (frame) => socket.send(frame),
            close: (code, reason) => socket.close(code, reason)
          }),
          scope
        )
      )
      socket.on("message", (data, isBinary) =>
        connection.onFrame(isBinary ? (data as Buffer) : (data as Buffer).toString("utf8"))
      )
      socket.once("close", () => Runtime.runFork(runtime)(Scope.close(scope, Exit.void)))
    })

    return TestGateway.of({
      url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`,
      closeAll: (code, reason) =>
        Effect.sync(() => {
          for (const socket of server.clients) socket.close(code, reason)
        })
    })
  })

/** The gateway, accepting `accepted` (every supported subprotocol by default). */
export const layer = (
  accepted: ReadonlyArray<Subprotocol.Subprotocol> = Subprotocol.supported,
  options: { readonly callerOf?: CallerOf | undefined } = {}
): Layer.Layer<TestGateway, never, RpcBridge.RpcBridge> => Layer.scoped(TestGateway, make(accepted, options.callerOf))
