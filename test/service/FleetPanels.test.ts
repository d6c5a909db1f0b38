/**
 * The fleet page's panels in a real browser (Debian's chromium through playwright-core) against
 * the real service with its demo fleet: the map fits every robot and draws arms at their bases,
 * robots without a place are listed, a lone robot is centred, the events panel shows stops,
 * control and refusals, the plots read the telemetry endpoint, and the list stays quick with
 * 1,000 AGVs (figures printed as JSON).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import { chromium, type Page } from "playwright-core"
import { MOSQUITTO_URL } from "../links/vda5050/support/FleetProbe.js"
import * as FleetNode from "./support/FleetNode.js"

const browser = Effect.acquireRelease(
  Effect.promise(() => chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] })),
  (browser) => Effect.promise(() => browser.close())
)

interface Frame {
  readonly drawn: ReadonlyArray<{ readonly id: string; readonly kind: string; readonly x: number; readonly y: number }>
  readonly width: number
  readonly height: number
  readonly box: { readonly minX: number; readonly minY: number; readonly maxX: number; readonly maxY: number }
  readonly scale: number
}

const open = (url: string, viewport = { width: 1400, height: 900 }) =>
  Effect.gen(function*() {
    const chrome = yield* browser
    return yield* Effect.promise(async () => {
      const page = await chrome.newPage({ viewport })
      await page.goto(url)
      await page.waitForFunction(() => document.body.dataset.connection === "Open")
      return page
    })
  })

const frameOf = (page: Page) => page.evaluate(() => (window as any).fleetvisorFleet.map() as Frame)

/** The colour of the map's canvas at a CSS pixel. */
const colourAt = (page: Page, x: number, y: number) =>
  page.evaluate(([x, y]) => {
    const canvas = document.getElementById("map") as HTMLCanvasElement
    const ratio = canvas.width / canvas.clientWidth
    return [...canvas.getContext("2d")!.getImageData(Math.round(x * ratio), Math.round(y * ratio), 1, 1).data]
  }, [x, y] as const)

describe("the fleet page's panels", () => {
  it.scopedLive("the map fits every robot, arms stand at their bases with their links drawn, a robot without a place is listed", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({
        arms: 2,
        agvs: 3,
        // An arm that is configured but never reachable, and has no base: listed, not drawn.
        env: { FLEET_RMI_ROBOTS: "ghost-arm=127.0.0.1:9", FLEET_RMI_POLL_HZ: "20" }
      })
      const page = yield* open(`${node.service.url}/fleet/`)
      const all = [...node.arms, ...node.agvs]
      yield* Effect.promise(() =>
        page.waitForFunction((count) => (window as any).fleetvisorFleet.map().drawn.length === count, all.length)
      )
      // Several frames while the AGVs drive: every robot inside the canvas, every time.
      for (let i = 0; i < 5; i++) {
        const frame = yield* Effect.promise(() => frameOf(page))
        expect(frame.drawn.map((r) => r.id).sort()).toEqual([...all].sort())
        for (const robot of frame.drawn) {
          expect(robot.x, robot.id).toBeGreaterThanOrEqual(0)
          expect(robot.x, robot.id).toBeLessThanOrEqual(frame.width)
          expect(robot.y, robot.id).toBeGreaterThanOrEqual(0)
          expect(robot.y, robot.id).toBeLessThanOrEqual(frame.height)
        }
        // The robots use the box: their extent spans most of it one way or the other.
        const xs = frame.drawn.map((r) => r.x)
        const ys = frame.drawn.map((r) => r.y)
        const used = Math.max((Math.max(...xs) - Math.min(...xs)) / frame.width, (Math.max(...ys) - Math.min(...ys)) / frame.height)
        expect(used).toBeGreaterThan(0.5)
        yield* Effect.sleep("200 millis")
      }
      // Arms at their bases (the demo's: x 8 and 15 m, y 1.5 m), drawn in the arm's colour, links and all.
      const frame = yield* Effect.promise(() => frameOf(page))
      const views = yield* Effect.promise(() => page.evaluate(() => (window as any).fleetvisorFleet.robots() as Array<any>))
      for (const arm of node.arms) {
        const view = views.find((r) => r.id === arm)
        expect(view.base).toBeDefined()
        const drawn = frame.drawn.find((r) => r.id === arm)!
        const cx = (frame.box.minX + frame.box.maxX) / 2
        const cy = (frame.box.minY + frame.box.maxY) / 2
        expect(drawn.x).toBeCloseTo(frame.width / 2 + (view.base.x - cx) * frame.scale, 3)
        expect(drawn.y).toBeCloseTo(frame.height / 2 - (view.base.y - cy) * frame.scale, 3)
        const [r, g, b] = yield* Effect.promise(() => colourAt(page, drawn.x, drawn.y))
        // The arm's colour, within what anti-aliasing at a fractional pixel changes.
        const colour = [r, g, b]
        const expected = [0x6a, 0x3f, 0xb5]
        expect(colour.every((c, i) => Math.abs(c - expected[i]) <= 8), `${arm}: ${colour} vs ${expected}`).toBe(true)
        expect(view.joints.length).toBeGreaterThanOrEqual(6)
      }
      expect(yield* Effect.promise(() => page.textContent("#unplaced"))).toContain("ghost-arm (no base on the map")
      expect(frame.drawn.some((r) => r.id === "ghost-arm")).toBe(false)
      // A click on the map opens that robot's controls.
      const agv = frame.drawn.find((r) => r.kind === "agv")!
      yield* Effect.promise(async () => {
        const box = (await page.locator("#map").boundingBox())!
        const now = (await frameOf(page)).drawn.find((r) => r.id === agv.id)!
        await page.mouse.click(box.x + now.x, box.y + now.y)
        await page.waitForSelector("#detail:not([hidden])")
      })
      expect(yield* Effect.promise(() => page.textContent("#detail-title"))).toMatch(/\(agv\)$/)
      yield* Effect.promise(() => page.screenshot({ path: "test-artifacts/fleet-map.png" }))
    }), { timeout: 40_000 })

  it.scopedLive("a lone AGV is centred on the map", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 0, agvs: 1 })
      const page = yield* open(`${node.service.url}/fleet/`)
      yield* Effect.promise(() => page.waitForFunction(() => (window as any).fleetvisorFleet.map().drawn.length === 1))
      const frame = yield* Effect.promise(() => frameOf(page))
      // Centred within the pixels its order and the 1.5 m margin move it by: well away from every edge.
      const [agv] = frame.drawn
      expect(agv.x).toBeGreaterThan(frame.width * 0.1)
      expect(agv.x).toBeLessThan(frame.width * 0.9)
      expect(agv.y).toBeGreaterThan(frame.height * 0.1)
      expect(agv.y).toBeLessThan(frame.height * 0.9)
    }), { timeout: 30_000 })

  it.scopedLive("events show control, a stop, a refusal in the controller's words and the reset; plots read /api/telemetry", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 1 })
      const arm = node.arms[0]
      const page = yield* open(`${node.service.url}/fleet/`)
      const telemetryRequests: Array<string> = []
      page.on("request", (request) => {
        if (request.url().includes("/api/telemetry")) telemetryRequests.push(request.url())
      })
      const event = (kind: string, text: RegExp) =>
        page.waitForFunction(
          ([kind, source, robot]) =>
            [...document.querySelectorAll(`#events li[data-kind="${kind}"]`)].some((li) =>
              li.querySelector(".robot")?.textContent === robot && new RegExp(source).test(li.querySelector(".text")?.textContent ?? "") &&
              /\d{1,2}:\d{2}:\d{2}/.test(li.querySelector("time")?.textContent ?? "")
            ),
          [kind, text.source, arm] as const,
          { timeout: 10_000 }
        )
      yield* Effect.promise(async () => {
        await page.click(`#robots tr[data-id="${arm}"]`)
        await page.click("#acquire")
        await event("lease", /^Control taken by 127\.0\.0\.1$/)
        expect(await page.getAttribute("#message", "data-tone")).toBe("ok")
        await page.click("#estop-one")
        await event("stop", /^Emergency stop by 127\.0\.0\.1: reset required$/)
        // Refused while latched: said in the server's words, in red, and in the events.
        await page.click(`#commands button[data-command="Continue"]`, { force: true }).catch(() => {})
        await page.evaluate((arm) => (window as any).fleetvisorFleet.command(arm, { _tag: "Continue" }), arm)
        await event("refusal", /is stopped \(by 127\.0\.0\.1 at .*\): reset required$/)
        expect(await page.getAttribute("#message", "data-tone")).toBe("error")
        await page.click("#reset")
        await event("reset", /^Reset: the stop is cleared$/)
        // Continue while the program runs: the controller's refusal, with its code and text.
        await page.click(`#commands button[data-command="Continue"]`)
        await event("refusal", /refused Continue: RMIT-010 /)
      })
      const refusal = yield* Effect.promise(() => page.textContent("#message"))
      expect(refusal).toBe(`${arm} refused Continue: RMIT-010 TP Program is Not Paused (2556938)`)

      // The plots of the arm: joints from the log, through the endpoint, with the arm's id.
      yield* Effect.promise(() =>
        page.waitForFunction(() => Number((document.querySelector("#plots-note") as HTMLElement).dataset.samples ?? 0) > 0, undefined, { timeout: 15_000 })
      )
      const charts = yield* Effect.promise(() =>
        page.$$eval("#plots canvas", (nodes) => nodes.map((n) => ({ series: (n as HTMLElement).dataset.series, points: Number((n as HTMLElement).dataset.points), state: (n as HTMLElement).dataset.state })))
      )
      expect(charts.map((c) => c.series)).toEqual(["tool speed (x, y)", "J1", "J2", "J3", "J4", "J5", "J6"])
      expect(charts.find((c) => c.series === "J1")!.points).toBeGreaterThan(0)
      // A joint the demo never turns (J4–J6 stay put) is said in words, not drawn flat.
      expect(charts.find((c) => c.series === "J5")!.state).toBe("still")
      expect(telemetryRequests.some((url) => new URL(url).searchParams.get("robot") === arm)).toBe(true)

      // An AGV's plots: battery and speed.
      yield* Effect.promise(async () => {
        await page.click(`#robots tr[data-id="${node.agvs[0]}"]`)
        await page.waitForFunction(
          () => Number((document.querySelector(`#plots canvas[data-series="battery"]`) as HTMLElement | null)?.dataset.points ?? 0) > 0,
          undefined,
          { timeout: 15_000 }
        )
      })
      expect(telemetryRequests.some((url) => new URL(url).searchParams.get("robot") === node.agvs[0])).toBe(true)
      yield* Effect.promise(() => page.screenshot({ path: "test-artifacts/fleet-events-plots.png" }))
    }), { timeout: 40_000 })

  it.scopedLive("1,000 AGVs: the list stays virtualised and quick to filter and scroll", () =>
    Effect.gen(function*() {
      const count = 1_000
      const prefix = `fvl${process.pid}${Math.random().toString(36).slice(2, 6)}/v2`
      // The service without a demo, its AGVs simulated by another process (1 Hz) on the run's Mosquitto.
      const node = yield* FleetNode.start({
        arms: 0,
        agvs: 0,
        env: {
          FLEET_DEMO: "off",
          FLEET_MQTT_PREFIX: prefix,
          FLEET_MQTT_INGEST_THREAD: "on",
          FLEET_AGV_DISCOVERY_RATE: "100000",
          FLEET_MAX_AGVS: "5000"
        }
      })
      yield* Effect.acquireRelease(
        Effect.sync(() =>
          spawn(process.execPath, [
            "--import",
            "tsx",
            "src/links/vda5050/sim-cli.ts",
            "--broker",
            MOSQUITTO_URL,
            "--prefix",
            prefix,
            "--count",
            String(count),
            "--hz",
            "1"
          ], { stdio: "ignore" })
        ),
        (child) =>
          Effect.async<void>((resume) => {
            if (child.exitCode !== null) return resume(Effect.void)
            child.once("exit", () => resume(Effect.void))
            child.kill("SIGKILL")
          })
      )
      const page = yield* open(`${node.service.url}/fleet/`)
      yield* Effect.promise(() =>
        page.waitForFunction((count) => document.querySelector("#robot-count")?.textContent === `${count} robots`, count, { timeout: 60_000 })
      )
      const figures = yield* Effect.promise(() =>
        page.evaluate(async () => {
          const frames = () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))
          const rows = () => document.querySelectorAll("#robots tr[data-id]").length
          const search = document.getElementById("search") as HTMLInputElement
          const scroller = document.getElementById("robots-scroll")!
          const rowsBefore = rows()
          let started = performance.now()
          search.value = "sim-05"
          search.dispatchEvent(new Event("input"))
          await frames()
          const filterMs = performance.now() - started
          const filtered = document.querySelector("#robot-count")?.textContent
          const firstFiltered = document.querySelector("#robots tr[data-id]")?.getAttribute("data-id")
          search.value = ""
          search.dispatchEvent(new Event("input"))
          await frames()
          started = performance.now()
          scroller.scrollTop = 700 * 46
          scroller.dispatchEvent(new Event("scroll"))
          await frames()
          const scrollMs = performance.now() - started
          const inView = [...document.querySelectorAll("#robots tr[data-id]")].map((row) => row.getAttribute("data-id"))
          // A frame of the whole page while 1,000 views stream in at 30 Hz.
          const durations: Array<number> = []
          for (let i = 0; i < 30; i++) {
            const t = performance.now()
            await new Promise((resolve) => requestAnimationFrame(resolve))
            durations.push(performance.now() - t)
          }
          durations.sort((a, b) => a - b)
          return {
            rowsBefore,
            rowsAfterScroll: inView.length,
            filterMs,
            filtered,
            firstFiltered,
            scrollMs,
            inView: [inView[0], inView.at(-1)],
            frameP50Ms: durations[15],
            frameMaxMs: durations.at(-1)!
          }
        })
      )
      console.log(JSON.stringify({ bench: "fleet-page-list", robots: count, ...figures }))
      expect(figures.rowsBefore).toBeLessThan(60)
      expect(figures.rowsAfterScroll).toBeLessThan(60)
      expect(figures.filtered).toBe("100 of 1000 robots")
      expect(figures.firstFiltered).toMatch(/^fleetvisor\/sim-05/)
      // Scrolled to row 700 of the sorted ids: rows around it are the ones in the DOM.
      expect(figures.inView[0]! > "fleetvisor/sim-06").toBe(true)
      expect(figures.filterMs).toBeLessThan(500)
      expect(figures.scrollMs).toBeLessThan(500)
      // A frame of the page stays well under a tenth of a second while the views stream in.
      expect(figures.frameP50Ms).toBeLessThan(100)
      yield* Effect.promise(() => page.screenshot({ path: "test-artifacts/fleet-1000.png" }))
    }), { timeout: 120_000 })
})
