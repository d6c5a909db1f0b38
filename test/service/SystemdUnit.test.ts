import { describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { root } from "./support/ServiceProcess.js"

const unitPath = path.join(root, "deploy/fleetvisor.service")
const unit = fs.readFileSync(unitPath, "utf8")
const settings = (key: string) =>
  unit.split("\n").filter((line) => line.startsWith(`${key}=`)).map((line) => line.slice(key.length + 1))

describe("deploy/fleetvisor.service", () => {
  it("passes systemd-analyze verify without a warning", () => {
    const result = spawnSync("systemd-analyze", ["verify", unitPath], { encoding: "utf8", timeout: 20_000 })
    expect(result.error).toBeUndefined()
    expect(result.stdout + result.stderr).toBe("")
    expect(result.status).toBe(0)
  })

  it("is a notify service with a watchdog, restarts on failure, keeps state in StateDirectory, and is hardened", () => {
    expect(settings("Type")).toEqual(["notify"])
    expect(settings("NotifyAccess")).toEqual(["all"])
    expect(settings("WatchdogSec")).toEqual(["30s"])
    expect(settings("Restart")).toEqual(["on-failure"])
    expect(settings("StateDirectory")).toEqual(["fleetvisor"])
    expect(settings("Environment")).toContain("DATA_DIR=/var/lib/fleetvisor")
    for (const key of ["DynamicUser", "NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"]) {
      expect(settings(key), key).toEqual(["yes"])
    }
    expect(settings("ProtectSystem")).toEqual(["strict"])
    expect(settings("CapabilityBoundingSet")).toEqual([""])
    expect(settings("RestartPreventExitStatus")).toEqual(["64 78"])
  })
})
