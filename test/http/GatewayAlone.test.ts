/**
 * The gateway boots alone: a node with neither the canvas nor the fleet opens no database and
 * runs no store, and its sessions still connect, say hello and are told what the node lacks.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import { TestKit } from "../../src/actors/index.js"
import * as ServiceConfig from "../../src/http/ServiceConfig.js"
import { connect, start } from "./support/TestService.js"

describe("the gateway alone", () => {
  it.scopedLive("runs without the canvas, the fleet and SQLite: no database file, no store, sessions served", () =>
    Effect.gen(function*() {
      const service = yield* start({ CANVAS: "off" })
      expect(fs.existsSync(ServiceConfig.databaseFile(service.config))).toBe(false)
      yield* TestKit.awaitTree(service.system, `
        root (one_for_one)
        └─ gateway (rest_for_one)
           ├─ listener running mailbox=0 restarts=0
           ├─ sessions (dynamic, 0/20000)
           └─ streams (dynamic, 0/1000)
      `)
      const ready = yield* Effect.promise(() => fetch(`${service.url}/readyz`).then((response) => response.json()))
      expect(ready).toEqual({ status: "ready", checks: { draining: "ok", sessions: "ok" } })

      const client = yield* connect(service)
      expect(yield* client.rpc.Hello({ app: "test", version: "1" })).toMatchObject({ protocolVersion: 1, features: [] })
      const refused = yield* Effect.flip(client.rpc.CanvasPlace({ x: 1, y: 1, color: 1 }))
      expect(refused).toMatchObject({ _tag: "Unavailable" })
    }))
})
