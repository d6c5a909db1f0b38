import { spawnSync } from "node:child_process"
import { afterEach, describe, expect, it } from "vitest"
import { settings as fleetSettings } from "../../src/apps/fleet/FleetConfig.js"
import { root, type ServiceProcess, startProcess } from "./support/ServiceProcess.js"

const running: Array<ServiceProcess> = []
afterEach(async () => {
  await Promise.all(running.splice(0).map((service) => service.dispose()))
})

const start = async (env: Record<string, string> = {}) => {
  const service = await startProcess(env)
  running.push(service)
  return service
}

interface TreeNode {
  readonly name: string
  readonly status: string
  readonly children: ReadonlyArray<TreeNode>
}

const tree = async (url: string): Promise<TreeNode> => ((await (await fetch(`${url}/admin/actors`)).json()) as { actors: Array<TreeNode> }).actors.find((node) => node.name === "root")!

const eventually = async <A>(read: () => Promise<A>, ok: (a: A) => boolean, what: string, timeoutMs = 10_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await read()
    if (ok(value)) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value).slice(0, 500)}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** The first event of an event stream, parsed. */
const firstEvent = async (url: string) => {
  const controller = new AbortController()
  const response = await fetch(url, { signal: controller.signal })
  const reader = response.body!.getReader()
  let text = ""
  while (!text.includes("\n\n")) text += new TextDecoder().decode((await reader.read()).value)
  controller.abort()
  const block = text.slice(0, text.indexOf("\n\n"))
  return {
    type: response.headers.get("content-type"),
    event: /^event: (.*)$/m.exec(block)![1],
    data: JSON.parse(/^data: (.*)$/m.exec(block)![1])
  }
}

describe("npm start with nothing configured", () => {
  it("runs the demo fleet on an embedded broker: 3 arms and 12 AGVs under root/fleet, live on /stream and /fleet/", async () => {
    const service = await start()
    const demo = await service.logged(/demo fleet/)
    expect(demo.message).toMatch(/^demo fleet: 3 simulated arms, 12 simulated AGVs on mqtt:\/\/127\.0\.0\.1:\d+$/)

    const rootNode = await eventually(
      () => tree(service.url),
      (root) => root.children.find((c) => c.name === "fleet")?.children.find((c) => c.name === "links")?.children.length === 15,
      "15 robot links"
    )
    expect(rootNode.children.map((c) => c.name)).toEqual(["store", "fleet", "canvas", "gateway"])
    const fleet = rootNode.children.find((c) => c.name === "fleet")!
    expect(fleet.children.map((c) => c.name)).toEqual(["links", "mqtt", "arms", "control", "telemetry", "state"])
    expect(fleet.children.find((c) => c.name === "links")!.children.map((c) => c.name).sort()).toEqual([
      ...Array.from({ length: 12 }, (_, i) => `agv:fleetvisor/demo-${String(i + 1).padStart(4, "0")}`),
      "robot:demo-arm-1",
      "robot:demo-arm-2",
      "robot:demo-arm-3"
    ])

    const snapshot = await eventually(
      () => firstEvent(`${service.url}/stream`),
      (e) => e.data.robots.length === 15 && e.data.robots.every((r: { status: string }) => r.status === "online"),
      "15 robots online on /stream"
    )
    expect(snapshot.type).toBe("text/event-stream; charset=utf-8")
    expect(snapshot.event).toBe("snapshot")

    const page = await fetch(`${service.url}/fleet/`)
    expect(page.status).toBe(200)
    expect(await page.text()).toContain("<title>fleetvisor · fleet</title>")
    const script = await fetch(`${service.url}/fleet/main.js`)
    expect(script.headers.get("content-type")).toBe("text/javascript; charset=utf-8")
    expect((await fetch(`${service.url}/readyz`)).status).toBe(200)
    expect(await (await fetch(`${service.url}/readyz`)).json()).toMatchObject({ checks: { fleet: "ok" } })
  }, 20_000)

  it("FLEET=off runs no fleet: no subtree, /fleet/ and /stream are 404", async () => {
    const service = await start({ FLEET: "off" })
    expect((await tree(service.url)).children.map((c) => c.name)).toEqual(["store", "canvas", "gateway"])
    expect((await fetch(`${service.url}/fleet/`)).status).toBe(404)
    expect((await fetch(`${service.url}/stream`)).status).toBe(404)
  }, 20_000)

  it("--help lists every FLEET_* setting", () => {
    const help = spawnSync(process.execPath, ["--import", "tsx", "src/main.ts", "--help"], { cwd: root, encoding: "utf8" })
    expect(help.status).toBe(0)
    for (const setting of fleetSettings) {
      expect(help.stdout).toContain(setting.env)
      expect(help.stdout).toContain(setting.flag)
    }
    expect(fleetSettings.map((s) => s.env)).toEqual(expect.arrayContaining(["FLEET_MQTT_URL", "FLEET_RMI_ROBOTS", "FLEET_DEMO"]))
  }, 20_000)
})
