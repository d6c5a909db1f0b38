/**
 * `npm run screenshots`: the README's pictures of the pages, taken by Debian's chromium
 * (playwright-core, as the browser tests) from a service this script starts on a spare port of
 * 127.0.0.1 with the demo fleet (3 arms, 12 AGVs) and a throwaway data directory. It writes
 * docs/screenshots/fleet.png, fleet-stopped.png, canvas.png and canvas-fit.png, and stops the service.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { chromium, type Page } from "playwright-core"

const root = fileURLToPath(new URL("..", import.meta.url))
const out = path.join(root, "docs", "screenshots")

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer().once("error", reject).listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Starts the service; resolves with its URL once `/readyz` answers 200. */
const startService = async (dataDir: string): Promise<{ readonly url: string; readonly child: ChildProcess }> => {
  const port = await freePort()
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: root,
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, HOST: "127.0.0.1", PORT: String(port), DATA_DIR: dataDir, FLEET_DEMO: "on", LOG_LEVEL: "warn" }
  })
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`the service exited (${child.exitCode})`)
    const ready = await fetch(`${url}/readyz`).then((r) => r.ok, () => false)
    if (ready) return { url, child }
    await sleep(100)
  }
  child.kill("SIGTERM")
  throw new Error("the service did not become ready within 30 s")
}

const stopService = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve()
    const force = setTimeout(() => child.kill("SIGKILL"), 10_000)
    child.once("exit", () => (clearTimeout(force), resolve()))
    child.kill("SIGTERM")
  })

const shoot = (page: Page, name: string) => page.screenshot({ path: path.join(out, name) })

const main = async () => {
  fs.mkdirSync(out, { recursive: true })
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-screenshots-"))
  const { child, url } = await startService(dataDir)
  const chrome = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] })
  try {
    const page = await chrome.newPage({ viewport: { width: 1400, height: 900 } })
    await page.goto(`${url}/fleet/`)
    await page.waitForFunction(() => document.body.dataset.connection === "Open")
    await page.waitForFunction(() => (window as any).fleetvisorFleet.map().drawn.length >= 15, undefined, { timeout: 30_000 })
    // Let the arms and AGVs move for a while, so the plots have minutes… or at least seconds to show.
    await sleep(12_000)
    await page.click(`#robots tr[data-id="demo-arm-1"]`)
    await page.click("#acquire")
    await page.waitForFunction(() => Number((document.querySelector("#plots-note") as HTMLElement).dataset.samples ?? 0) > 0)
    await shoot(page, "fleet.png")

    // An AGV stopped by the emergency stop: the latch, the Reset for the holder, the events.
    await page.click(`#robots tr[data-id="fleetvisor/demo-0003"]`)
    await page.click("#acquire")
    await page.waitForFunction(() => (window as any).fleetvisorFleet.lease === "fleetvisor/demo-0003")
    await page.click("#estop-one")
    await page.waitForFunction(() => /the AGV confirmed the stop$/.test(document.querySelector("#stop-info")?.textContent ?? ""), undefined, { timeout: 15_000 })
    await page.evaluate(() => (window as any).fleetvisorFleet.command("fleetvisor/demo-0003", { _tag: "Resume" }))
    await page.waitForFunction(() => Number((document.querySelector("#plots-note") as HTMLElement).dataset.samples ?? 0) > 0)
    await shoot(page, "fleet-stopped.png")

    const canvas = await chrome.newPage({ viewport: { width: 1200, height: 760 } })
    await canvas.goto(`${url}/canvas/`)
    await canvas.waitForFunction(() => document.body.dataset.seq !== undefined)
    const box = (await canvas.locator("#board").boundingBox())!
    await canvas.click("#palette .swatch[data-index='5']")
    // One pixel painted: the countdown runs; the cursor shows the next one in the selected colour.
    await canvas.mouse.click(box.x + box.width / 2, box.y + box.height / 2)
    await canvas.waitForFunction(() => document.body.dataset.cooldown === "waiting")
    await canvas.mouse.move(box.x + box.width / 2 + 24, box.y + box.height / 2 + 12)
    await sleep(600)
    await shoot(canvas, "canvas.png")
    // The whole board, framed.
    await canvas.click("#zoom-fit")
    await sleep(200)
    await shoot(canvas, "canvas-fit.png")
    const names = ["fleet.png", "fleet-stopped.png", "canvas.png", "canvas-fit.png"]
    console.log(`wrote ${names.map((name) => path.join("docs/screenshots", name)).join(", ")}`)
  } finally {
    await chrome.close()
    await stopService(child)
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
