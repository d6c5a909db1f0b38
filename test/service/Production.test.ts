/**
 * The service as production runs it: the compiled JavaScript of `npm run build`, with nothing
 * but the runtime dependencies. The build goes to a folder laid out as an installed package
 * (dist/, src/, web/, bin/, package.json); a module hook refuses every package that `npm ci
 * --omit=dev` would not install (tsx, vitest, TypeScript…), in the main thread and in every
 * worker thread. The demo fleet runs on it: its control loop, ingest, telemetry and stop channel
 * threads start from the compiled modules.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { WebSocket } from "ws"
import { root, type ServiceProcess, startProcess } from "./support/ServiceProcess.js"

const hook = path.join(root, "test/support/productionOnly.mjs")
let installed = ""
let productionPackages = ""

beforeAll(() => {
  installed = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-installed-"))
  const build = spawnSync(
    process.execPath,
    [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json", "--outDir", path.join(installed, "dist")],
    { cwd: root, encoding: "utf8", timeout: 240_000 }
  )
  expect(build.stdout + build.stderr).toBe("")
  // What `npm pack` ships ("files" in package.json): the pages are bundled from web/ and the client's sources in src/.
  for (const entry of ["package.json", "src", "web", "bin"]) {
    fs.cpSync(path.join(root, entry), path.join(installed, entry), { recursive: true })
  }
  fs.symlinkSync(path.join(root, "node_modules"), path.join(installed, "node_modules"))
  const listed = spawnSync("npm", ["ls", "--omit=dev", "--all", "--parseable"], { cwd: root, encoding: "utf8" })
  productionPackages = listed.stdout
  expect(productionPackages).toContain(`${path.sep}node_modules${path.sep}effect`)
  expect(productionPackages).not.toContain(`${path.sep}node_modules${path.sep}tsx`)
}, 300_000)

afterAll(() => {
  if (installed !== "") fs.rmSync(installed, { recursive: true, force: true })
})

const env = () => ({ FLEETVISOR_PRODUCTION_PACKAGES: productionPackages })

describe("production: node dist/main.js without dev dependencies", () => {
  it("the hook refuses a dev dependency (so the next tests can fail)", () => {
    const result = spawnSync(process.execPath, ["--import", hook, "--input-type=module", "-e", "await import('tsx/esm/api')"], {
      cwd: installed,
      env: { ...process.env, ...env() },
      encoding: "utf8"
    })
    expect(result.status).not.toBe(0)
    expect(result.stderr).toMatch(/is not installed in production/)
  })

  it("serves the demo fleet, its pages and its stop channel, with every thread, and stops on SIGTERM", async () => {
    let service: ServiceProcess | undefined
    try {
      service = await startProcess(
        { ...env(), FLEET_STOP_PORT: "0", FLEET_MQTT_INGEST_THREAD: "true" },
        { entry: ["--import", hook, path.join(installed, "dist/main.js")] }
      )
      // Ready once every subtree runs (the demo's links connect a moment after the listener).
      let ready = 0
      for (let tries = 0; tries < 60 && ready !== 200; tries++) {
        if (tries > 0) await new Promise((resolve) => setTimeout(resolve, 500))
        ready = (await fetch(`${service.url}/readyz`)).status
      }
      expect(ready).toBe(200)
      const page = await fetch(`${service.url}/fleet/main.js`)
      expect(page.status).toBe(200)
      expect((await page.text()).length).toBeGreaterThan(1_000)

      const channel = (await (await fetch(`${service.url}/fleet/stop-channel`)).json()) as { port: number; protocol: string }
      const socket = new WebSocket(`ws://127.0.0.1:${channel.port}`, [channel.protocol], { headers: { origin: service.url } })
      await new Promise<void>((resolve, reject) => {
        socket.once("open", () => resolve())
        socket.once("error", reject)
      })
      socket.close()

      service.child.kill("SIGTERM")
      expect(await service.exited).toBe(0)
      const failures = service.stdout.filter((line) => /"level":"(ERROR|FATAL)"/.test(line))
      expect(failures).toEqual([])
      expect(service.stderr.join("")).not.toMatch(/not installed in production|ERR_MODULE_NOT_FOUND/)
    } finally {
      await service?.dispose()
    }
  }, 120_000)

  it("runs the fleetvisor command from dist", () => {
    const tokens = path.join(installed, "tokens.json")
    const result = spawnSync(
      process.execPath,
      ["--import", hook, path.join(installed, "bin/fleetvisor.mjs"), "token", "add", "--user", "ada", "--role", "operator", "--file", tokens],
      { cwd: installed, env: { ...process.env, ...env() }, encoding: "utf8", timeout: 60_000 }
    )
    expect(result.stderr).toMatch(/for ada \(operator\)/)
    expect(result.status).toBe(0)
    expect(result.stdout.trim()).not.toBe("")
    expect(fs.readFileSync(tokens, "utf8")).toContain("ada")
  }, 90_000)
})
