import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFileSync, spawnSync } from "node:child_process"
import * as os from "node:os"
import type { ActorNode } from "../../src/actors/Inspection.js"
import * as Inspection from "../../src/actors/Inspection.js"
import * as TestKit from "../../src/actors/TestKit.js"
import type { ActorTree } from "../../src/http/AdminRoutes.js"
import * as TestService from "./support/TestService.js"

const get = (url: string, headers: Record<string, string> = {}) =>
  Effect.promise(async () => {
    const response = await fetch(url, { headers })
    return { status: response.status, headers: response.headers, body: await response.text() }
  })

/** promtool from Debian's prometheus package; installed here if missing (apt-get is cheap when cached). */
const promtool = (): string => {
  const found = spawnSync("sh", ["-c", "command -v promtool"], { encoding: "utf8" }).stdout.trim()
  if (found !== "") return found
  execFileSync("apt-get", ["install", "-y", "-q", "prometheus"], { stdio: "ignore", timeout: 120_000 })
  return "promtool"
}

/** An address of this machine that is not loopback, to reach the server as a remote client would. */
const externalAddress = (): string | undefined =>
  Object.values(os.networkInterfaces()).flat().find((i) => i !== undefined && i.family === "IPv4" && !i.internal)?.address

const walk = (nodes: ReadonlyArray<ActorNode>): Array<ActorNode> => nodes.flatMap((node) => [node, ...walk(node.children)])

describe("health, metrics and admin endpoints", () => {
  it.scopedLive("/healthz answers, /readyz reports its checks", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start()
      expect(yield* get(`${service.url}/healthz`)).toMatchObject({ status: 200, body: "{\"status\":\"ok\"}" })
      const ready = yield* get(`${service.url}/readyz`)
      expect(ready.status).toBe(200)
      expect(JSON.parse(ready.body)).toEqual({
        status: "ready",
        checks: { draining: "ok", sessions: "ok", store: "ok", canvas: "ok" }
      })
    }))

  it.scopedLive("/metrics counts sessions from the supervisor and traffic, and promtool accepts the text", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start()
      const client = yield* TestService.connect(service, "json")
      yield* client.rpc.Ping()
      const { body, headers, status } = yield* get(`${service.url}/metrics`)
      expect(status).toBe(200)
      expect(headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/)
      const value = (name: string) => Number(body.split("\n").find((line) => line.startsWith(`${name} `))?.split(" ")[1])
      expect(value("fleetvisor_sessions")).toBe(1)
      expect(value("fleetvisor_ws_frames_received_total")).toBeGreaterThanOrEqual(1)
      expect(value("fleetvisor_ws_frames_sent_total")).toBeGreaterThanOrEqual(1)
      expect(value("fleetvisor_ws_received_bytes_total")).toBeGreaterThan(0)
      expect(value("fleetvisor_actors")).toBeGreaterThanOrEqual(5)
      expect(body).toMatch(/^fleetvisor_mailbox_depth\{actor="listener"\} 0$/m)
      expect(body).toMatch(/^fleetvisor_event_loop_lag_p99_seconds [0-9.e-]+$/m)
      const checked = spawnSync(promtool(), ["check", "metrics"], { input: body, encoding: "utf8" })
      expect(checked.stdout + checked.stderr).toBe("")
      expect(checked.status).toBe(0)
    }))

  it.scopedLive("/admin/actors is the live tree; without a token it answers loopback clients only", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start({ HOST: "0.0.0.0", AUTH: "none" })
      const port = service.address.port
      const local = yield* get(`http://127.0.0.1:${port}/admin/actors`)
      expect(local.status).toBe(200)
      const tree = JSON.parse(local.body) as ActorTree
      expect(tree.node).toBe(os.hostname())
      for (const node of walk(tree.actors)) {
        expect(Object.keys(node)).toEqual(expect.arrayContaining(["id", "name", "kind", "status", "mailbox", "restarts", "children"]))
      }
      expect(Inspection.render(tree.actors)).toBe(yield* service.system.render)
      const external = externalAddress()
      expect(external, "this test needs a non-loopback IPv4 interface").toBeDefined()
      expect((yield* get(`http://${external}:${port}/admin/actors`)).status).toBe(403)
      expect((yield* get(`http://${external}:${port}/healthz`)).status).toBe(200)
    }))

  it.scopedLive("with ADMIN_TOKEN, /admin needs the bearer token", () =>
    Effect.gen(function*() {
      const token = "correct-horse-battery-staple"
      const service = yield* TestService.start({ ADMIN_TOKEN: token })
      const missing = yield* get(`${service.url}/admin/actors`)
      expect(missing.status).toBe(401)
      expect(missing.headers.get("www-authenticate")).toMatch(/^Bearer/)
      expect((yield* get(`${service.url}/admin/actors`, { authorization: "Bearer wrong-token-of-some-length" })).status).toBe(401)
      expect((yield* get(`${service.url}/admin/actors`, { authorization: `Bearer ${token}` })).status).toBe(200)
    }))

  it.scopedLive("/admin/actors/stream sends the tree, then the tree again when a session joins", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start()
      const events: Array<ActorTree> = []
      const controller = new AbortController()
      yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
      const response = yield* Effect.promise(() => fetch(`${service.url}/admin/actors/stream`, { signal: controller.signal }))
      expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/)
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ""
      yield* Effect.forkScoped(Effect.promise(async () => {
        for (;;) {
          const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }))
          if (done) return
          buffer += value
          let end: number
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const event = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            if (event.startsWith("event: tree\n")) {
              events.push(JSON.parse(event.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n")))
            }
          }
        }
      }))
      yield* TestKit.awaitUntil(Effect.sync(() => events.length >= 1))
      expect(Inspection.find(events[0].actors, "sessions")?.children).toEqual([])
      yield* TestService.connect(service)
      yield* TestKit.awaitUntil(
        Effect.sync(() => events.some((tree) => Inspection.find(tree.actors, "session:1")?.status === "running")),
        { waitedFor: "a tree event with session:1" }
      )
    }))

  it.scopedLive("/admin/ serves the tree page", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start()
      const page = yield* get(`${service.url}/admin/`)
      expect(page.status).toBe(200)
      expect(page.headers.get("content-type")).toMatch(/^text\/html/)
      expect(page.body).toMatch(/<script type="module" src="app\.js"><\/script>/)
      expect((yield* get(`${service.url}/admin/app.js`)).status).toBe(200)
      expect((yield* get(`${service.url}/admin/..%2f..%2fpackage.json`)).status).toBe(404)
    }))
})
