import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { chromium } from "playwright-core"
import * as TestService from "./support/TestService.js"

const artifacts = fileURLToPath(new URL("../../test-artifacts", import.meta.url))

const browser = Effect.acquireRelease(
  Effect.promise(() => chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] })),
  (browser) => Effect.promise(() => browser.close())
)

describe("the actor tree page", () => {
  it.scopedLive("draws the live tree: a session appears when a client connects and goes when it leaves", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start()
      const page = yield* Effect.flatMap(browser, (b) => Effect.promise(() => b.newPage({ viewport: { width: 900, height: 600 } })))
      const errors: Array<string> = []
      page.on("pageerror", (error) => errors.push(String(error)))
      yield* Effect.promise(() => page.goto(`${service.url}/admin/`))
      yield* Effect.promise(() => page.getByText("live", { exact: true }).waitFor())
      yield* Effect.promise(() => page.getByText("listener", { exact: true }).waitFor())
      expect(yield* Effect.promise(() => page.locator(".name").allTextContents())).toEqual(
        expect.arrayContaining(["root", "store", "canvas", "gateway", "listener", "sessions"])
      )

      const scope = yield* Scope.make()
      yield* Scope.extend(TestService.connect(service), scope)
      const session = page.locator(".node", { hasText: "session:1" })
      yield* Effect.promise(() => session.waitFor())
      expect(yield* Effect.promise(() => session.innerText())).toMatch(/session:1\s+running\s+mailbox=0\s+restarts=0/)
      fs.mkdirSync(artifacts, { recursive: true })
      yield* Effect.promise(() => page.screenshot({ path: path.join(artifacts, "admin-tree.png") }))

      yield* Scope.close(scope, Exit.void)
      yield* Effect.promise(() => session.waitFor({ state: "detached" }))
      expect(errors).toEqual([])
    }), { timeout: 30_000 })

  it.scopedLive("asks for the token when the service has one, then shows the tree", () =>
    Effect.gen(function*() {
      const token = "a-token-for-the-page-test"
      const service = yield* TestService.start({ ADMIN_TOKEN: token })
      const page = yield* Effect.flatMap(browser, (b) => Effect.promise(() => b.newPage()))
      yield* Effect.promise(() => page.goto(`${service.url}/admin/`))
      yield* Effect.promise(() => page.getByText("needs a token").waitFor())
      yield* Effect.promise(() => page.fill("#token", token))
      yield* Effect.promise(() => page.click("button[type=submit]"))
      yield* Effect.promise(() => page.getByText("listener", { exact: true }).waitFor())
      expect(yield* Effect.promise(() => page.isHidden("#login"))).toBe(true)
    }), { timeout: 30_000 })
})
