/**
 * The stop channel with identities (AUTH=tokens), over real sockets against the service with a
 * demo AGV on Mosquitto: a connection is admitted once, when it opens (no or a wrong token:
 * 4401, a role below STOP_ROLE: 4403, after the handshake as on /ws); an admitted one stops,
 * and the stop is latched under its user; revoking its token closes it with 4401.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as path from "node:path"
import * as TestKit from "../../../src/actors/TestKit.js"
import * as TokenFile from "../../../src/http/TokenFile.js"
import { addToken, openSocket, refusedWith } from "../../http/support/AuthClients.js"
import * as TestService from "../../http/support/TestService.js"
import * as FleetNode from "../../service/support/FleetNode.js"

const stopProtocol = "fleetvisor.stop.v1"
const bearer = (token: string) => `fleetvisor.bearer.${token}`

/** Sends one stop on an open socket; resolves with the answer. */
const ask = (ws: import("ws").WebSocket, request: object) =>
  Effect.promise(() =>
    new Promise<Record<string, unknown>>((resolve) => {
      ws.once("message", (data) => resolve(JSON.parse(data.toString())))
      ws.send(JSON.stringify(request))
    })
  )

describe("the stop channel with AUTH=tokens", () => {
  it.scopedLive("admits a connection by its token once, audits its stops under the user, closes it when the token is revoked", () =>
    Effect.gen(function*() {
      const dir = yield* TestService.tempDirectory
      const file = path.join(dir, "tokens.json")
      const vera = yield* addToken(file, "vera", ["viewer"])
      const node = yield* FleetNode.start({
        arms: 0,
        agvs: 1,
        env: { AUTH: "tokens", AUTH_TOKENS_FILE: file, FLEET_STOP_PORT: "0" }
      })
      const [agv] = node.agvs
      const url = `ws://127.0.0.1:${node.fleet.stopChannel!.port()}/`

      // No token, a wrong one: the handshake completes, then 4401 (a browser can read it).
      expect(yield* Effect.promise(() => refusedWith(url, [stopProtocol]))).toMatchObject({ code: 4401 })
      expect(yield* Effect.promise(() => refusedWith(url, [stopProtocol, bearer(`${vera}x`)]))).toMatchObject({ code: 4401 })

      // A viewer may stop (STOP_ROLE viewer by default): by a subprotocol entry, never echoed.
      const socket = yield* Effect.acquireRelease(
        Effect.promise(() => openSocket(url, [stopProtocol, bearer(vera)])),
        ({ ws }) => Effect.sync(() => ws.terminate())
      )
      expect(socket.selected).toBe(stopProtocol)
      expect(JSON.stringify(socket.responseHeaders)).not.toContain(vera)
      expect(yield* ask(socket.ws, { id: 1, robot: agv })).toMatchObject({ id: 1, ok: true, reached: [agv] })
      yield* TestKit.awaitUntil(
        Effect.map(node.fleet.state, (state) => state.robots.find((robot) => robot.id === agv)?.stop?.by === "vera"),
        { waitedFor: "the AGV latched by vera" }
      )

      // The cookie of the login page works too.
      const byCookie = yield* Effect.promise(() => openSocket(url, [stopProtocol], { cookie: `fleetvisor_token=${vera}` }))
      expect(yield* ask(byCookie.ws, { id: 2 })).toMatchObject({ id: 2, ok: true })
      byCookie.ws.terminate()

      // Revoked: the open connection is closed with 4401 within seconds, and the token opens nothing more.
      const revokedAt = Date.now()
      yield* TokenFile.revoke(file, "vera")
      const closed = yield* Effect.promise(() => socket.closed)
      expect(closed.code).toBe(4401)
      expect(closed.at - revokedAt).toBeLessThan(5_000)
      expect(yield* Effect.promise(() => refusedWith(url, [stopProtocol, bearer(vera)]))).toMatchObject({ code: 4401 })
      expect(node.fleet.stopChannel!.stats().refusedAuth).toBe(3)
      console.log(JSON.stringify({ test: "StopChannelAuth", revokedToClosedMs: closed.at - revokedAt }))
    }), { timeout: 60_000 })

  it.scopedLive("with STOP_ROLE=operator a viewer is refused with 4403 and an operator stops", () =>
    Effect.gen(function*() {
      const dir = yield* TestService.tempDirectory
      const file = path.join(dir, "tokens.json")
      const vera = yield* addToken(file, "vera", ["viewer"])
      const olga = yield* addToken(file, "olga", ["operator"])
      const node = yield* FleetNode.start({
        arms: 0,
        agvs: 1,
        env: { AUTH: "tokens", AUTH_TOKENS_FILE: file, FLEET_STOP_PORT: "0", STOP_ROLE: "operator" }
      })
      const url = `ws://127.0.0.1:${node.fleet.stopChannel!.port()}/`
      expect(yield* Effect.promise(() => refusedWith(url, [stopProtocol], { authorization: `Bearer ${vera}` })))
        .toMatchObject({ code: 4403 })
      const socket = yield* Effect.acquireRelease(
        Effect.promise(() => openSocket(url, [stopProtocol], { authorization: `Bearer ${olga}` })),
        ({ ws }) => Effect.sync(() => ws.terminate())
      )
      expect(yield* ask(socket.ws, { id: 1, robot: node.agvs[0] })).toMatchObject({ id: 1, ok: true })
    }), { timeout: 60_000 })
})
