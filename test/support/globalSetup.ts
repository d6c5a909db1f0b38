/**
 * What the test run needs from the machine, brought up once before any test (vitest's global
 * setup), so that `npm test` passes on a fresh Debian machine with only Node and npm:
 *
 * - the Debian packages the tests use (chromium for the browser tests, mosquitto, redis-server
 *   for the cluster's tests (each starts its own, test/support/RedisServer.ts), socat,
 *   sqlite3, prometheus for `promtool`, systemd for `systemd-analyze`, perl, openssl for test
 *   certificates), installed when
 *   `dpkg-query` finds them missing and the run is root (`apt-get update`, then `apt-get install`
 *   under a `policy-rc.d` that keeps the packages' daemons from starting); otherwise one line
 *   says what to install;
 * - a Mosquitto of the run's own on a spare port of 127.0.0.1, whose URL the tests read from
 *   `FLEETVISOR_TEST_MQTT_URL` (a broker the machine already runs, on 1883 say, is left alone).
 *   It stops when the run ends.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { awaitListening, freePort } from "./Ports.js"

/** Debian package → what the tests run from it. */
const packages: ReadonlyArray<readonly [string, string]> = [
  ["mosquitto", "/usr/sbin/mosquitto"],
  ["redis-server", "/usr/bin/redis-server"],
  ["chromium", "/usr/bin/chromium"],
  ["socat", "socat"],
  ["sqlite3", "sqlite3"],
  ["prometheus", "promtool"],
  ["systemd", "systemd-analyze"],
  ["perl", "perl"],
  ["openssl", "openssl"]
]

/** Installed, not merely known (a removed package keeps a `deinstall … config-files` status). */
const installed = (name: string) =>
  spawnSync("dpkg-query", ["-W", "-f=${Status}", name], { encoding: "utf8" }).stdout === "install ok installed"

const say = (line: string) => process.stderr.write(`[test setup] ${line}\n`)

/** Installs the missing packages as root, without starting their daemons. */
const install = (missing: ReadonlyArray<string>) => {
  if (process.getuid?.() !== 0) {
    say(`missing Debian packages: ${missing.join(" ")}; install them (sudo apt-get install -y ${missing.join(" ")}) or run as root`)
    return
  }
  say(`installing ${missing.join(" ")} (apt-get)`)
  const policy = "/usr/sbin/policy-rc.d"
  const hadPolicy = fs.existsSync(policy)
  if (!hadPolicy) fs.writeFileSync(policy, "#!/bin/sh\nexit 101\n", { mode: 0o755 })
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
    execFileSync("apt-get", ["update", "-qq"], { stdio: "ignore", env, timeout: 300_000 })
    execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], { stdio: "ignore", env, timeout: 600_000 })
  } finally {
    if (!hadPolicy) fs.rmSync(policy, { force: true })
  }
}

/** Starts Mosquitto on a spare port; resolves with its URL and a way to stop it. */
const startMosquitto = async () => {
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-test-mosquitto-"))
  const conf = path.join(dir, "mosquitto.conf")
  fs.writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n`)
  const binary = fs.existsSync("/usr/sbin/mosquitto") ? "/usr/sbin/mosquitto" : "mosquitto"
  const broker = spawn(binary, ["-c", conf], { stdio: "ignore", detached: false })
  await awaitListening(port, "mosquitto")
  return {
    url: `mqtt://127.0.0.1:${port}`,
    stop: () => {
      broker.kill("SIGTERM")
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

export default async function setup() {
  const missing = packages.filter(([name]) => !installed(name)).map(([name]) => name)
  if (missing.length > 0) install(missing)
  const broker = await startMosquitto()
  process.env.FLEETVISOR_TEST_MQTT_URL = broker.url
  say(`Mosquitto for this run on ${broker.url}`)
  return () => broker.stop()
}
