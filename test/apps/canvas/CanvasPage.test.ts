import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import { type Browser, chromium, type Page } from "playwright-core"
import { Canvas } from "../../../src/apps/canvas/Canvas.js"
import * as CanvasConfig from "../../../src/apps/canvas/CanvasConfig.js"
import * as CanvasHandlers from "../../../src/apps/canvas/CanvasHandlers.js"
import { CanvasRpcs } from "../../../src/protocol/CanvasRpcs.js"
import * as CloseCode from "../../../src/protocol/CloseCode.js"
import * as RpcBridge from "../../../src/protocol/RpcBridge.js"
import { bundle } from "../../../src/http/PageBundle.js"
import { TestGateway } from "../../protocol/support/TestGateway.js"
import * as TestGatewayLayer from "../../protocol/support/TestGateway.js"
import { canvasLayer, tempDirectory } from "./support.js"

const root = path.resolve(import.meta.dirname, "../../..")
const artifacts = path.join(root, "test-artifacts")

/** Serves the canvas page: `/canvas/` and its bundled script. */
const pageServer = Effect.acquireRelease(
  Effect.async<http.Server>((resume) => {
    const server = http.createServer((request, response) => {
      const url = new URL(request.url ?? "/", "http://localhost")
      if (url.pathname === "/canvas/") {
        response.writeHead(200, { "content-type": "text/html; charset=utf-8" })
        return void response.end(fs.readFileSync(path.join(root, "web/canvas/index.html")))
      }
      if (url.pathname === "/canvas/main.js") {
        return void bundle(path.join(root, "web/canvas/main.ts")).then((js) => {
          response.writeHead(200, { "content-type": "text/javascript; charset=utf-8" })
          response.end(js)
        })
      }
      response.writeHead(404).end()
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.async<void>((resume) => {
    server.closeAllConnections()
    server.close(() => resume(Effect.void))
  })
)

const browser = Effect.acquireRelease(
  Effect.promise(() => chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] })),
  (browser) => Effect.promise(() => browser.close())
)

const openPage = (browser: Browser, url: string) =>
  Effect.promise(async () => {
    const page = await browser.newPage({ viewport: { width: 800, height: 600 } })
    page.on("pageerror", (error) => console.error("page error:", error))
    await page.goto(url)
    await page.waitForFunction(() => document.body.dataset.connection === "Open" && document.body.dataset.seq !== undefined)
    return page
  })

const colorAt = (page: Page, x: number, y: number) =>
  Effect.promise(() => page.evaluate(([x, y]) => (window as any).fleetvisorCanvas.colorAt(x, y) as number, [x, y] as const))

describe("the canvas page", () => {
  it.scopedLive("two pages: a pixel painted in one appears in the other, and both resume after a server restart", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDirectory, "canvas.db")
      const server = TestGatewayLayer.layer().pipe(
        Layer.provideMerge(RpcBridge.layer(CanvasRpcs, { disableTracing: true })),
        Layer.provide(CanvasHandlers.layer),
        Layer.provideMerge(canvasLayer(filename, {
          width: 64,
          height: 32,
          palette: CanvasConfig.placePalette,
          cooldown: CanvasConfig.defaults.cooldown
        }))
      )
      yield* Effect.gen(function*() {
        const { closeAll, url: ws } = yield* TestGateway
        const canvas = yield* Canvas
        const pages = yield* pageServer
        const url = `http://127.0.0.1:${(pages.address() as AddressInfo).port}/canvas/?ws=${encodeURIComponent(ws)}`
        const chrome = yield* browser
        const painter = yield* openPage(chrome, url)
        const watcher = yield* openPage(chrome, `${url}&wire=json`)

        const target = yield* Effect.promise(async () => {
          await painter.click("#palette .swatch[data-index='5']")
          const box = (await painter.locator("#board").boundingBox())!
          const at = { x: box.x + box.width / 2, y: box.y + box.height / 2 }
          const pixel = await painter.evaluate(([x, y]) => (window as any).fleetvisorCanvas.boardAt(x, y), [at.x, at.y])
          await painter.mouse.click(at.x, at.y)
          return pixel as { x: number; y: number }
        })
        expect(target).toEqual({ x: 32, y: 16 })
        yield* Effect.promise(() =>
          watcher.waitForFunction(([x, y]) => (window as any).fleetvisorCanvas.colorAt(x, y) === 5, [target.x, target.y])
        )
        expect(yield* colorAt(painter, target.x, target.y)).toBe(5)
        yield* Effect.promise(() => painter.waitForFunction(() => document.body.dataset.cooldown === "waiting"))

        // The server drops every socket; a pixel lands while the pages are away.
        yield* closeAll(CloseCode.GoingAway, "restart")
        yield* canvas.place("someone-else", 1, 1, 13)
        for (const page of [painter, watcher]) {
          yield* Effect.promise(() =>
            page.waitForFunction(() =>
              document.body.dataset.connection === "Open" && (window as any).fleetvisorCanvas.colorAt(1, 1) === 13
            )
          )
        }

        fs.mkdirSync(artifacts, { recursive: true })
        yield* Effect.promise(() => watcher.screenshot({ path: path.join(artifacts, "canvas-watcher.png") }))
        yield* Effect.promise(() => painter.screenshot({ path: path.join(artifacts, "canvas-painter.png") }))
      }).pipe(Effect.provide(server))
    }), 60_000)
})
