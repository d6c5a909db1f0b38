/**
 * A browser signs in and operates (AUTH=tokens), in Debian's chromium: the fleet page, refused
 * without a credential (4401), sends it to /login; the operator pastes a token; the login cookie
 * brings it back to the page, which connects; it takes control of an arm under the user's name,
 * and its emergency stop goes through the stop channel, which the cookie admits too. Revoking the
 * token sends the page back to /login.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as path from "node:path"
import { chromium } from "playwright-core"
import * as TokenFile from "../../src/http/TokenFile.js"
import { addToken } from "../http/support/AuthClients.js"
import * as TestService from "../http/support/TestService.js"
import * as FleetNode from "./support/FleetNode.js"

const browser = Effect.acquireRelease(
  Effect.promise(() => chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] })),
  (browser) => Effect.promise(() => browser.close())
)

describe("signing in at /login", () => {
  it.scopedLive("an operator is sent to /login, signs in with a token, operates under their name, and is sent back when revoked", () =>
    Effect.gen(function*() {
      const dir = yield* TestService.tempDirectory
      const file = path.join(dir, "tokens.json")
      const token = yield* addToken(file, "olga", ["operator"])
      const node = yield* FleetNode.start({
        arms: 1,
        agvs: 1,
        env: { AUTH: "tokens", AUTH_TOKENS_FILE: file, FLEET_STOP_PORT: "0" }
      })
      const arm = node.arms[0]
      // `localhost`: browsers keep a Secure cookie over plain HTTP for it only.
      const base = node.service.url.replace("127.0.0.1", "localhost")
      const chrome = yield* browser
      const page = yield* Effect.promise(() => chrome.newPage({ viewport: { width: 1280, height: 800 } }))

      // Without a credential the page's socket is refused (4401), and the page goes to /login.
      yield* Effect.promise(async () => {
        await page.goto(`${base}/fleet/`)
        await page.waitForURL(/\/login\?next=%2Ffleet%2F/)
        await page.fill("input[name=token]", token)
        await page.click("button[type=submit]")
        await page.waitForURL(`${base}/fleet/`)
        await page.waitForFunction(() => document.body.dataset.connection === "Open")
      })
      const cookies = yield* Effect.promise(() => page.context().cookies())
      expect(cookies.find((cookie) => cookie.name === "fleetvisor_token")).toMatchObject({ httpOnly: true, secure: true, sameSite: "Strict" })

      // Signed in: the operator takes the arm, held under their name.
      yield* Effect.promise(async () => {
        await page.waitForFunction((arm) => (window as any).fleetvisorFleet.robots().some((r: { id: string }) => r.id === arm), arm)
        await page.evaluate((arm) => (window as any).fleetvisorFleet.select(arm), arm)
        await page.waitForSelector("#detail:not([hidden])")
        await page.click("#acquire")
        await page.waitForFunction((arm) => (window as any).fleetvisorFleet.lease === arm, arm)
      })
      expect((yield* node.fleet.state).robots.find((r) => r.id === arm)?.controlledBy).toBe("olga")

      // The emergency stop goes over the stop channel, admitted by the same cookie, and is latched by olga.
      yield* Effect.promise(async () => {
        for (let i = 0; i < 100 && (node.fleet.stopChannel?.stats().connections ?? 0) === 0; i++) await page.waitForTimeout(50)
      })
      expect(node.fleet.stopChannel?.stats()).toMatchObject({ connections: 1, refusedAuth: 0 })
      yield* Effect.promise(() => page.click("#estop-one"))
      yield* Effect.promise(() =>
        page.waitForFunction(() => document.body.dataset.stopPath === "channel")
      )
      const stopped = yield* Effect.promise(() =>
        new Promise<string | undefined>((resolve) => {
          const poll = setInterval(async () => {
            const view = (await Effect.runPromise(node.fleet.state)).robots.find((r) => r.id === arm)
            if (view?.stop !== undefined) {
              clearInterval(poll)
              resolve(view.stop.by)
            }
          }, 50)
        })
      )
      expect(stopped).toBe("olga")

      // Revoked: the page's session is closed with 4401 and the page returns to /login.
      yield* TokenFile.revoke(file, "olga")
      yield* Effect.promise(() => page.waitForURL(/\/login\?next=/, { timeout: 10_000 }))
    }), { timeout: 90_000 })
})
