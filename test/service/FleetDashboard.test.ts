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
          (arm) => document.querySelector(`#robots tr[data-id="${arm}"] td:nth-child(5)`)?.textContent === "you",
          arm
        )
      })
      expect((yield* node.fleet.state).robots.find((r) => r.id === arm)?.controlledBy).toBe("127.0.0.1")
      expect(yield* Effect.promise(() => page.isEnabled("#commands button >> nth=0"))).toBe(true)

      // Press the emergency stop: the arm shows it.
      yield* Effect.promise(async () => {
        await page.click("#estop-one")
        await page.waitForFunction(
          (arm) => ["estop", "paused"].includes((document.querySelector(`#robots tr[data-id="${arm}"]`) as HTMLElement)?.dataset.status ?? ""),
          arm
        )
      })
      expect((yield* node.fleet.state).robots.find((r) => r.id === arm)?.status).toBe("estop")
      expect(yield* Effect.promise(() => page.textContent("#message"))).toBe(`Emergency stop sent to ${arm}`)
      fs.mkdirSync(artifacts, { recursive: true })
      yield* Effect.promise(() => page.screenshot({ path: path.join(artifacts, "fleet-dashboard.png") }))
    }), { timeout: 20_000 })

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
        await second.waitForFunction(() => document.querySelector("#message")?.textContent === "Another operator holds control of that robot")
        await first.click("#commands button:text('Pause')")
        await first.waitForFunction(() => document.querySelector("#message")?.textContent === "Pause sent to fleetvisor/demo-0001")
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
        await page.waitForFunction((agv) => document.querySelector("#message")?.textContent === `Emergency stop sent to ${agv}`, agv)
        await page.waitForFunction(
          (agv) => (document.querySelector(`#robots tr[data-id="${agv}"]`) as HTMLElement)?.dataset.status === "estop",
          agv
        )
      })
      expect(yield* Effect.promise(() => page.evaluate(() => document.body.dataset.stopPath))).toBe("channel")
      expect(published()).toBe(1)

      yield* Effect.promise(async () => {
        await page.click("#estop-all")
        await page.waitForFunction(() => document.querySelector("#message")?.textContent === "Emergency stop sent to every robot")
        await page.waitForFunction(
          (arm) => (document.querySelector(`#robots tr[data-id="${arm}"]`) as HTMLElement)?.dataset.status === "estop",
          node.arms[0]
        )
      })
      expect(published()).toBe(2)
      expect(node.fleet.stopChannel?.stats()).toMatchObject({ forwarded: 1, badRequests: 0 })
    }), { timeout: 20_000 })
})
