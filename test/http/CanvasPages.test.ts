import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { type Browser, chromium } from "playwright-core"
import * as TestService from "./support/TestService.js"

const artifacts = fileURLToPath(new URL("../../test-artifacts", import.meta.url))

const browser = Effect.acquireRelease(
  Effect.promise(() => chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] })),
  (browser) => Effect.promise(() => browser.close())
)

const openPage = (browser: Browser, url: string) =>
  Effect.promise(async () => {
    const page = await browser.newPage({ viewport: { width: 800, height: 600 } })
    await page.goto(url)
    await page.waitForFunction(() => document.body.dataset.connection === "Open" && document.body.dataset.seq !== undefined)
    return page
  })

describe("the service's home page", () => {
  it.scopedLive("two browser pages at / paint on one board: a pixel placed in one appears in the other", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start()
      const chrome = yield* browser
      const painter = yield* openPage(chrome, `${service.url}/`)
      const watcher = yield* openPage(chrome, `${service.url}/canvas/?wire=json`)
      expect(new URL(painter.url()).pathname).toBe("/canvas/")

      const target = yield* Effect.promise(async () => {
        await painter.click("#palette .swatch[data-index='5']")
        const box = (await painter.locator("#board").boundingBox())!
        const at = { x: box.x + box.width / 2, y: box.y + box.height / 2 }
        const pixel = await painter.evaluate(([x, y]) => (window as any).fleetvisorCanvas.boardAt(x, y), [at.x, at.y])
        await painter.mouse.click(at.x, at.y)
        return pixel as { x: number; y: number }
      })
      yield* Effect.promise(() =>
        watcher.waitForFunction(([x, y]) => (window as any).fleetvisorCanvas.colorAt(x, y) === 5, [target.x, target.y])
      )
      fs.mkdirSync(artifacts, { recursive: true })
      yield* Effect.promise(() => watcher.screenshot({ path: path.join(artifacts, "service-canvas-watcher.png") }))
      const tree = yield* service.system.render
      expect(tree).toMatch(/sessions \(dynamic, 2\/20000\)/)
    }), { timeout: 60_000 })
})
