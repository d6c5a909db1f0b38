import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { chromium } from "playwright-core"
import * as FleetNode from "./support/FleetNode.js"

const artifacts = fileURLToPath(new URL("../../test-artifacts", import.meta.url))

const browser = Effect.acquireRelease(
  Effect.promise(() => chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] })),
  (browser) => Effect.promise(() => browser.close())
)

interface PageRobot {
  readonly id: string
  readonly kind: string
  readonly status: string
  readonly pose?: { readonly x: number; readonly y: number }
}

describe("the fleet dashboard at /fleet/", () => {
  it.scopedLive("shows the demo robots moving; an operator takes control of an arm and stops it with the emergency stop", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 2, agvs: 3 })
      const chrome = yield* browser
      const page = yield* Effect.promise(async () => {
        const page = await chrome.newPage({ viewport: { width: 1280, height: 800 } })
        await page.goto(`${node.service.url}/fleet/`)
        await page.waitForFunction(() => document.body.dataset.connection === "Open")
        return page
      })
      const robots = () => page.evaluate(() => (window as any).fleetvisorFleet.robots() as Array<PageRobot>)

      // Every demo robot is listed, and the AGVs move on the map.
      yield* Effect.promise(() =>
        page.waitForFunction((count) => document.querySelectorAll("#robots tr[data-id]").length === count, 5)
      )
      const before = yield* Effect.promise(robots)
      expect(before.map((r) => r.id).sort()).toEqual([...node.arms, ...node.agvs].sort())
      const poses = JSON.stringify(before.filter((r) => r.kind === "agv").map((r) => r.pose))
      yield* Effect.promise(() =>
        page.waitForFunction(
          (poses) =>
            JSON.stringify((window as any).fleetvisorFleet.robots().filter((r: PageRobot) => r.kind === "agv").map((r: PageRobot) => r.pose)) !== poses,
          poses
        )
      )

      // Take control of the first arm.
      const arm = node.arms[0]
      yield* Effect.promise(async () => {
        await page.click(`#robots tr[data-id="${arm}"]`)
        await page.waitForSelector("#detail:not([hidden])")
        await page.click("#acquire")
        await page.waitForFunction((arm) => (window as any).fleetvisorFleet.lease === arm, arm)
        await page.waitForFunction(
          (arm) => document.querySelector(`#robots tr[data-id="${arm}"] td.control`)?.textContent === "you",
          arm
        )
      })
      expect((yield* node.fleet.state).robots.find((r) => r.id === arm)?.controlledBy).toBe("127.0.0.1")
      expect(yield* Effect.promise(() => page.isEnabled("#commands button >> nth=0"))).toBe(true)

      // Press the emergency stop: the arm shows it, latched.
      yield* Effect.promise(async () => {
        await page.click("#estop-one")
        await page.waitForFunction(
          (arm) => (document.querySelector(`#robots tr[data-id="${arm}"]`) as HTMLElement)?.dataset.safety === "stopped",
          arm
        )
      })
      expect((yield* node.fleet.state).robots.find((r) => r.id === arm)?.status).toBe("estop")
      expect(yield* Effect.promise(() => page.getAttribute(`#robots tr[data-id="${arm}"]`, "data-status"))).toBe("estop")
      expect(yield* Effect.promise(() => page.textContent(`#robots tr[data-id="${arm}"] td.safety .latched`))).toBe(
        "STOPPED — reset required"
      )
      expect(yield* Effect.promise(() => page.textContent("#message"))).toBe(`Stopped ${arm}`)
      fs.mkdirSync(artifacts, { recursive: true })
      yield* Effect.promise(() => page.screenshot({ path: path.join(artifacts, "fleet-dashboard.png") }))
    }), { timeout: 30_000 })

  it.scopedLive("an emergency stop latches an arm: STOPPED — reset required, motion refused, until its holder's Reset clears it", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 1 })
      const arm = node.arms[0]
      const row = `#robots tr[data-id="${arm}"]`
      const home = `#commands button[data-command="MoveLinear"]`
      const chrome = yield* browser
      const open = () =>
        Effect.promise(async () => {
          const page = await chrome.newPage({ viewport: { width: 1280, height: 800 } })
          await page.goto(`${node.service.url}/fleet/`)
          await page.waitForFunction(() => document.body.dataset.connection === "Open")
          await page.waitForSelector(row)
          await page.click(row)
          await page.waitForSelector("#detail:not([hidden])")
          return page
        })
      const operator = yield* open()
      const observer = yield* open()
      const rowState = (page: typeof operator) =>
        page.$eval(row, (tr) => ({
          status: (tr as HTMLElement).dataset.status,
          connection: (tr as HTMLElement).dataset.connection,
          safety: (tr as HTMLElement).dataset.safety,
          connectionText: tr.querySelector("td.connection")?.textContent,
          safetyBadge: tr.querySelector("td.safety .badge")?.textContent,
          latched: (tr.querySelector("td.safety .latched") as HTMLElement).hidden ? "" : tr.querySelector("td.safety .latched")?.textContent,
          latchInfo: tr.querySelector("td.safety .latch-info")?.textContent,
          reported: tr.querySelector("td.reported")?.textContent
        }))
      const message = (page: typeof operator) =>
        page.$eval("#message", (m) => ({ text: m.textContent, tone: (m as HTMLElement).dataset.tone }))
      const waitMessage = (page: typeof operator, text: string) =>
        page.waitForFunction((text) => document.querySelector("#message")?.textContent === text, text)

      // Before: online and normal, side by side, with the arm's own report (servo, teach pendant).
      yield* Effect.promise(() => operator.waitForFunction((row) => (document.querySelector(row) as HTMLElement)?.dataset.safety === "normal", row))
      expect(yield* Effect.promise(() => rowState(operator))).toMatchObject({
        status: "online",
        connection: "online",
        safety: "normal",
        connectionText: "online",
        safetyBadge: "normal",
        latched: "",
        reported: "servo ready\nTP disabled"
      })

      // The operator takes control; the observer sees it held. Nobody sees a Reset yet.
      yield* Effect.promise(async () => {
        await operator.click("#acquire")
        await operator.waitForFunction((arm) => (window as any).fleetvisorFleet.lease === arm, arm)
        await waitMessage(operator, `You control ${arm}`)
        await observer.waitForFunction(() => document.querySelector("#lease")?.textContent === "held by 127.0.0.1")
      })
      expect(yield* Effect.promise(() => message(operator))).toEqual({ text: `You control ${arm}`, tone: "ok" })
      expect(yield* Effect.promise(() => operator.isVisible("#stop-banner"))).toBe(false)
      expect(yield* Effect.promise(() => operator.isEnabled(home))).toBe(true)

      // The emergency stop: the arm is latched, on both pages.
      yield* Effect.promise(async () => {
        await operator.click("#estop-one")
        await waitMessage(operator, `Stopped ${arm}`)
        for (const page of [operator, observer]) {
          await page.waitForFunction((row) => (document.querySelector(row) as HTMLElement)?.dataset.safety === "stopped", row)
        }
      })
      expect(yield* Effect.promise(() => message(operator))).toEqual({ text: `Stopped ${arm}`, tone: "ok" })
      for (const page of [operator, observer]) {
        const state = yield* Effect.promise(() => rowState(page))
        expect(state).toMatchObject({
          status: "estop",
          connection: "online",
          safety: "stopped",
          safetyBadge: "stopped",
          latched: "STOPPED — reset required"
        })
        expect(state.latchInfo).toMatch(/^Stopped by 127\.0\.0\.1 at \d{1,2}:\d{2}:\d{2}/)
        expect(yield* Effect.promise(() => page.textContent("#stop-title"))).toBe("STOPPED — reset required")
        expect(yield* Effect.promise(() => page.isVisible("#stop-banner"))).toBe(true)
      }
      const latch = (yield* node.fleet.state).robots.find((r) => r.id === arm)
      expect(latch).toMatchObject({ status: "estop", safety: "stopped", stop: { by: "127.0.0.1", confirmed: true } })

      // The holder has the Reset; the observer only a hint. Motion is disabled while latched.
      expect(yield* Effect.promise(() => operator.isVisible("#reset"))).toBe(true)
      expect(yield* Effect.promise(() => operator.isEnabled("#reset"))).toBe(true)
      expect(yield* Effect.promise(() => observer.isVisible("#reset"))).toBe(false)
      expect(yield* Effect.promise(() => observer.textContent("#reset-hint"))).toBe(
        "Only 127.0.0.1, who holds control, can reset it; acquire control when they release it."
      )
      expect(yield* Effect.promise(() => operator.isDisabled(home))).toBe(true)
      expect(yield* Effect.promise(() => operator.getAttribute(home, "title"))).toBe(`${arm} is stopped: reset it first`)
      expect(yield* Effect.promise(() => operator.isEnabled(`#commands button[data-command="Pause"]`))).toBe(true)
      fs.mkdirSync(artifacts, { recursive: true })
      yield* Effect.promise(() => operator.screenshot({ path: path.join(artifacts, "fleet-dashboard-stopped.png") }))

      // Sent all the same, the server refuses the motion, and the page says why.
      const homeCommand = { _tag: "MoveLinear", position: { x: 600, y: 0, z: 300, w: 180, p: 0, r: 0 }, speed: 100 }
      yield* Effect.promise(() => operator.evaluate(([arm, command]) => (window as any).fleetvisorFleet.command(arm, command), [arm, homeCommand] as const))
      const refused = yield* Effect.promise(() => message(operator))
      expect(refused.tone).toBe("error")
      expect(refused.text).toMatch(new RegExp(`^${arm} is stopped \\(by 127\\.0\\.0\\.1 at \\d{1,2}:\\d{2}:\\d{2}.*\\): reset required$`))
      expect((yield* node.fleet.state).robots.find((r) => r.id === arm)?.status).toBe("estop")

      // The holder's Reset clears the latch: online and normal again, on both pages, and motion is back.
      yield* Effect.promise(async () => {
        await operator.click("#reset")
        await waitMessage(operator, `${arm} reset: the stop is cleared`)
        for (const page of [operator, observer]) {
          await page.waitForFunction((row) => (document.querySelector(row) as HTMLElement)?.dataset.safety === "normal", row)
        }
      })
      expect(yield* Effect.promise(() => message(operator))).toEqual({ text: `${arm} reset: the stop is cleared`, tone: "ok" })
      for (const page of [operator, observer]) {
        expect(yield* Effect.promise(() => rowState(page))).toMatchObject({
          status: "online",
          connection: "online",
          safety: "normal",
          latched: ""
        })
        expect(yield* Effect.promise(() => page.isVisible("#stop-banner"))).toBe(false)
      }
      expect(yield* Effect.promise(() => operator.isEnabled(home))).toBe(true)
      expect((yield* node.fleet.state).robots.find((r) => r.id === arm)).toMatchObject({ status: "online", safety: "normal" })
      expect((yield* node.fleet.state).robots.find((r) => r.id === arm)?.stop).toBeUndefined()

      // A value the fleet does not accept: the field and the reason.
      yield* Effect.promise(() =>
        operator.evaluate(([arm, command]) => (window as any).fleetvisorFleet.command(arm, command), [arm, { ...homeCommand, speed: 1e6 }] as const)
      )
      expect(yield* Effect.promise(() => message(operator))).toEqual({
        text: "Invalid speed: 1000000 mm/s is outside 0 < speed ≤ 2000 mm/s",
        tone: "error"
      })
      yield* Effect.promise(() => operator.screenshot({ path: path.join(artifacts, "fleet-dashboard-reset.png") }))
    }), { timeout: 30_000 })

  it.scopedLive("two operators: the second is told the robot is held; when the first page closes, its lease goes and the second takes control", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 1, env: { FLEET_LEASE_TTL_MS: "600000" } })
      const chrome = yield* browser
      const open = () =>
        Effect.promise(async () => {
          const page = await chrome.newPage({ viewport: { width: 1280, height: 800 } })
          await page.goto(`${node.service.url}/fleet/?wire=json`)
          await page.waitForFunction(() => document.body.dataset.connection === "Open")
          await page.waitForSelector(`#robots tr[data-id="fleetvisor/demo-0001"]`)
          await page.click(`#robots tr[data-id="fleetvisor/demo-0001"]`)
          await page.waitForSelector("#detail:not([hidden])")
          return page
        })
      const first = yield* open()
      const second = yield* open()
      yield* Effect.promise(async () => {
        await first.click("#acquire")
        await first.waitForFunction(() => (window as any).fleetvisorFleet.lease === "fleetvisor/demo-0001")
        await second.waitForFunction(() => document.querySelector("#lease")?.textContent === "held by 127.0.0.1")
        await second.click("#acquire")
        await second.waitForFunction(() =>
          document.querySelector("#message")?.textContent === "Another operator (127.0.0.1) holds control of fleetvisor/demo-0001"
        )
        expect(await second.getAttribute("#message", "data-tone")).toBe("error")
        await first.click("#commands button:text('Pause')")
        await first.waitForFunction(() => document.querySelector("#message")?.textContent === "Pause sent to fleetvisor/demo-0001")
        expect(await first.getAttribute("#message", "data-tone")).toBe("ok")
        await second.waitForFunction(() =>
          (document.querySelector(`#robots tr[data-id="fleetvisor/demo-0001"]`) as HTMLElement)?.dataset.status === "paused"
        )
        await first.close()
        await second.waitForFunction(() => document.querySelector("#lease")?.textContent === "nobody holds control")
        await second.click("#acquire")
        await second.waitForFunction(() => (window as any).fleetvisorFleet.lease === "fleetvisor/demo-0001")
      })
    }), { timeout: 20_000 })

  it.scopedLive("with a stop channel, the emergency stop of an AGV goes over it, and every robot's over it and the main thread", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 1, env: { FLEET_STOP_PORT: "0" } })
      const agv = node.agvs[0]
      const chrome = yield* browser
      const page = yield* Effect.promise(async () => {
        const page = await chrome.newPage({ viewport: { width: 1280, height: 800 } })
        await page.goto(`${node.service.url}/fleet/`)
        await page.waitForFunction(() => document.body.dataset.connection === "Open")
        await page.waitForSelector(`#robots tr[data-id="${agv}"]`)
        return page
      })
      const published = () => node.fleet.stopChannel?.stats().published ?? 0
      // The page opens its socket to the channel by itself; wait until the service counts it.
      yield* Effect.promise(async () => {
        for (let i = 0; i < 100 && (node.fleet.stopChannel?.stats().connections ?? 0) === 0; i++) await page.waitForTimeout(50)
      })
      expect(node.fleet.stopChannel?.stats().connections).toBe(1)

      yield* Effect.promise(async () => {
        await page.click(`#robots tr[data-id="${agv}"]`)
        await page.waitForSelector("#detail:not([hidden])")
        await page.click("#estop-one")
        await page.waitForFunction((agv) => document.querySelector("#message")?.textContent === `Stopped ${agv}`, agv)
        await page.waitForFunction(
          (agv) => (document.querySelector(`#robots tr[data-id="${agv}"]`) as HTMLElement)?.dataset.status === "estop",
          agv
        )
        // Latched, and the AGV's own state confirms the stop (until then: "waiting for the AGV to confirm").
        await page.waitForFunction(
          (agv) => / the AGV confirmed the stop$/.test(document.querySelector(`#robots tr[data-id="${agv}"] td.safety .latch-info`)?.textContent ?? ""),
          agv
        )
      })
      expect(yield* Effect.promise(() => page.getAttribute(`#robots tr[data-id="${agv}"]`, "data-safety"))).toBe("stopped")
      expect(yield* Effect.promise(() => page.textContent("#stop-info"))).toMatch(
        /^Stopped by 127\.0\.0\.1 at .+; the AGV confirmed the stop$/
      )
      // Nobody holds it: the page says who may reset it, and shows no Reset button.
      expect(yield* Effect.promise(() => page.isVisible("#reset"))).toBe(false)
      expect(yield* Effect.promise(() => page.textContent("#reset-hint"))).toBe("Acquire control to reset it.")
      expect(yield* Effect.promise(() => page.evaluate(() => document.body.dataset.stopPath))).toBe("channel")
      expect(published()).toBe(1)

      yield* Effect.promise(async () => {
        await page.click("#estop-all")
        // The AGV (stopped on the channel's thread) and the arm (handed to the main thread) both had a live link.
        await page.waitForFunction(() => document.querySelector("#message")?.textContent === "Stopped 2 robots")
        await page.waitForFunction(
          (arm) => (document.querySelector(`#robots tr[data-id="${arm}"]`) as HTMLElement)?.dataset.status === "estop",
          node.arms[0]
        )
      })
      expect(published()).toBe(2)
      expect(node.fleet.stopChannel?.stats()).toMatchObject({ forwarded: 1, badRequests: 0 })
    }), { timeout: 20_000 })
})
