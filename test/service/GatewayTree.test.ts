/**
 * Every connection of the service is an actor under `gateway`: a `/ws` session under
 * `gateway/sessions`, a Foxglove client under `gateway/foxglove`, a Server-Sent Events stream
 * under `gateway/streams`. Each appears when its client connects and is gone when it leaves; the
 * gateway's drain closes all three (1001 for the sockets, the end of the body for the stream);
 * `/admin/actors` has one root.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as http from "node:http"
import { WebSocket } from "ws"
import { TestKit } from "../../src/actors/index.js"
import * as Gateway from "../../src/http/Gateway.js"
import * as FleetNode from "./support/FleetNode.js"

/** A WebSocket to `path` of the node speaking `protocol`, open; `closed` hears its close code. */
const socket = (node: FleetNode.FleetNode, path: string, protocol: string) =>
  Effect.gen(function*() {
    const closed = yield* Deferred.make<number>()
    const ws = yield* Effect.acquireRelease(
      Effect.async<WebSocket, Error>((resume) => {
        const ws = new WebSocket(`${node.service.url.replace(/^http/, "ws")}${path}`, [protocol])
        ws.on("close", (code) => Deferred.unsafeDone(closed, Exit.succeed(code)))
        ws.once("open", () => resume(Effect.succeed(ws)))
        ws.once("error", (error) => resume(Effect.fail(error)))
      }),
      (ws) => Effect.sync(() => ws.terminate())
    )
    return { ws, closed }
  })

/** `GET /stream`, reading; `ended` completes when the server ends the body. */
const eventStream = (node: FleetNode.FleetNode) =>
  Effect.gen(function*() {
    const ended = yield* Deferred.make<void>()
    const request = yield* Effect.acquireRelease(
      Effect.async<http.ClientRequest, Error>((resume) => {
        const request = http.get(`${node.service.url}/stream`, (response) => {
          expect(response.statusCode).toBe(200)
          response.on("data", () => {})
          response.on("end", () => Deferred.unsafeDone(ended, Exit.void))
          resume(Effect.succeed(request))
        })
        request.once("error", (error) => resume(Effect.fail(error)))
      }),
      (request) => Effect.sync(() => request.destroy())
    )
    return { request, ended }
  })

const idle = `
  gateway (rest_for_one)
  ├─ listener running mailbox=0 restarts=0
  ├─ sessions (dynamic, 0/20000)
  ├─ foxglove (dynamic, 0/64)
  └─ streams (dynamic, 0/1000)`

describe("the gateway's connections", () => {
  it.scopedLive("a /ws session, a Foxglove client and an event stream are actors under gateway, gone when they leave", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 1 })
      const { system } = node.service
      yield* TestKit.awaitTree(system, idle, { under: "gateway", timeoutMillis: 10_000 })

      const scope = yield* Scope.make()
      const session = yield* Scope.extend(socket(node, "/ws", "fleetvisor.v1.json"), scope)
      const foxglove = yield* Scope.extend(socket(node, "/foxglove", "foxglove.websocket.v1"), scope)
      yield* Scope.extend(eventStream(node), scope)
      yield* TestKit.awaitTree(system, `
        gateway (rest_for_one)
        ├─ listener running mailbox=0 restarts=0
        ├─ sessions (dynamic, 1/20000)
        │  └─ session:1 running mailbox=0 restarts=0
        ├─ foxglove (dynamic, 1/64)
        │  └─ foxglove:1 running mailbox=0 restarts=0
        └─ streams (dynamic, 1/1000)
           └─ stream:1 running mailbox=0 restarts=0`, { under: "gateway", timeoutMillis: 10_000 })

      // One root: nothing of the service lives beside it.
      const tree = yield* Effect.promise(() =>
        fetch(`${node.service.url}/admin/actors`).then((response) => response.json() as Promise<{ actors: Array<{ name: string }> }>)
      )
      expect(tree.actors.map((actor) => actor.name)).toEqual(["root"])

      session.ws.close()
      foxglove.ws.close()
      yield* Scope.close(scope, Exit.void)
      yield* TestKit.awaitTree(system, idle, { under: "gateway", timeoutMillis: 10_000 })
    }))

  it.scopedLive("the gateway's drain closes sessions and Foxglove clients with 1001 and ends event streams", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 1 })
      const session = yield* socket(node, "/ws", "fleetvisor.v1.json")
      const foxglove = yield* socket(node, "/foxglove", "foxglove.websocket.v1")
      const stream = yield* eventStream(node)
      yield* TestKit.awaitUntil(
        Effect.sync(() => Gateway.kindsOf(node.service.registries).every((kind) => kind.count() === 1)),
        { waitedFor: "one connection of each kind" }
      )
      expect(yield* Gateway.drain(node.service.registries, "5 seconds")).toBe(0)
      expect(yield* Deferred.await(session.closed)).toBe(1001)
      expect(yield* Deferred.await(foxglove.closed)).toBe(1001)
      yield* Deferred.await(stream.ended)
      yield* TestKit.awaitTree(node.service.system, idle, { under: "gateway", timeoutMillis: 10_000 })
    }))
})
