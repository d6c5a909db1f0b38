import { afterEach, describe, expect, it } from "vitest"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { WebSocket } from "ws"
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

const openSocket = (url: string) =>
  new Promise<WebSocket>((resolve, reject) => {
    const socket = new WebSocket(`${url.replace(/^http/, "ws")}/ws`, ["fleetvisor.v1.json"])
    socket.once("open", () => resolve(socket))
    socket.once("error", reject)
  })

/** A client that completes the handshake, then stops reading: it will never answer a close frame. */
const deafClient = (url: string) =>
  new Promise<net.Socket>((resolve, reject) => {
    const { hostname, port } = new URL(url)
    const socket = net.connect(Number(port), hostname, () => {
      socket.write(
        "GET /ws HTTP/1.1\r\nHost: " + `${hostname}:${port}` + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
          "Sec-WebSocket-Protocol: fleetvisor.v1.json\r\n\r\n"
      )
    })
    socket.once("data", (data) => {
      if (!data.toString().startsWith("HTTP/1.1 101")) return reject(new Error(data.toString()))
      socket.pause()
      resolve(socket)
    })
    socket.once("error", reject)
  })

const status = async (url: string) => {
  try {
    return (await fetch(url)).status
  } catch {
    return -1
  }
}

const upgradeStatus = (url: string) =>
  new Promise<number>((resolve) => {
    const socket = new WebSocket(`${url.replace(/^http/, "ws")}/ws`, ["fleetvisor.v1.json"])
    socket.once("unexpected-response", (_, response) => {
      resolve(response.statusCode ?? 0)
      socket.terminate()
    })
    socket.once("open", () => {
      resolve(101)
      socket.terminate()
    })
    socket.once("error", () => resolve(-1))
  })

/**
 * A notification socket that behaves as systemd's: it reads each datagram, and the file
 * descriptor that `systemd-notify`'s BARRIER=1 carries is closed as it is read (a plain `recv`
 * takes no ancillary data, so the kernel closes it), which completes the barrier. Perl, because
 * Debian always has it (perl-base is essential) and Node cannot bind a unix datagram socket.
 */
const notifyReceiver = `
use Socket;
socket(my $s, PF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
bind($s, pack_sockaddr_un($ARGV[0])) or die "bind: $!";
$| = 1;
while (1) { defined(recv($s, my $m, 4096, 0)) or die "recv: $!"; print "$m\\n"; }
`

describe("the service process", () => {
  it("on SIGTERM: /readyz 503, upgrades refused, sessions closed with 1001, database closed, exit 0", async () => {
    const service = await start()
    const client = await openSocket(service.url)
    const closed = new Promise<number>((resolve) => client.once("close", (code) => resolve(code)))
    const deaf = await deafClient(service.url)
    expect(await status(`${service.url}/readyz`)).toBe(200)

    const signalled = Date.now()
    service.child.kill("SIGTERM")
    expect(await closed).toBe(1001)
    // The deaf client holds the drain for up to a second: meanwhile the node says it is not ready.
    expect(await status(`${service.url}/readyz`)).toBe(503)
    expect(await upgradeStatus(service.url)).toBe(503)
    expect(await service.exited).toBe(0)
    expect(Date.now() - signalled).toBeLessThan(8_000)
    deaf.destroy()

    const messages = service.stdout.map((line) => JSON.parse(line).message)
    expect(messages).toEqual(expect.arrayContaining(["shutting down", "stopped; closing the database"]))
    expect(fs.existsSync(path.join(service.dataDir, "fleetvisor.db"))).toBe(true)
    // SQLite removes the write-ahead log when the last connection closes cleanly.
    expect(fs.existsSync(path.join(service.dataDir, "fleetvisor.db-wal"))).toBe(false)
  })

  it("a second signal exits at once", async () => {
    const service = await start({ SHUTDOWN_TIMEOUT: "20 seconds" })
    const deaf = await deafClient(service.url)
    service.child.kill("SIGINT")
    await service.logged(/"message":"shutting down"/)
    service.child.kill("SIGINT")
    expect(await service.exited).toBe(130)
    expect(service.stderr.join("")).toMatch(/second SIGINT, exiting now/)
    deaf.destroy()
  })

  it("SIGTERM to `npm start` reaches the service: it shuts down and frees its port (no orphan)", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-npm-start-"))
    const npm = spawn("npm", ["start", "--silent"], {
      cwd: root,
      env: { ...process.env, PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir, FLEET: "off" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    try {
      let output = ""
      const ready = await new Promise<{ url: string }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`not ready: ${output}`)), 60_000)
        npm.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
          output += chunk
          const line = output.split("\n").find((l) => l.includes('"message":"ready"'))
          if (line !== undefined) {
            clearTimeout(timer)
            resolve(JSON.parse(line).annotations)
          }
        })
      })
      expect(await status(`${ready.url}healthz`)).toBe(200)
      const exited = new Promise<number | string>((resolve) => npm.once("exit", (code, signal) => resolve(code ?? signal ?? -1)))
      npm.kill("SIGTERM")
      await exited
      // The service itself (not only npm) went away: its port answers no more.
      const deadline = Date.now() + 10_000
      while (await status(`${ready.url}healthz`) !== -1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
      expect(await status(`${ready.url}healthz`)).toBe(-1)
      expect(output).toMatch(/"message":"shutting down"/)
    } finally {
      npm.kill("SIGKILL")
      fs.rmSync(dataDir, { recursive: true, force: true })
    }
  }, 90_000)

  it("tells systemd READY=1, WATCHDOG=1 and STOPPING=1 through $NOTIFY_SOCKET", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-notify-"))
    const socketPath = path.join(dir, "notify.sock")
    const receiver = spawn("perl", ["-e", notifyReceiver, socketPath], { stdio: ["ignore", "pipe", "inherit"] })
    let received = ""
    receiver.stdout.setEncoding("utf8").on("data", (chunk: string) => (received += chunk))
    try {
      for (let i = 0; i < 100 && !fs.existsSync(socketPath); i++) await new Promise((r) => setTimeout(r, 20))
      const service = await start({ NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: "400000" })
      const until = async (text: string) => {
        for (let i = 0; i < 200 && !received.includes(text); i++) await new Promise((r) => setTimeout(r, 25))
        expect(received).toContain(text)
      }
      await until("READY=1")
      await until("WATCHDOG=1")
      expect(received).toMatch(/STATUS=Listening on 127\.0\.0\.1:\d+/)
      service.child.kill("SIGTERM")
      expect(await service.exited).toBe(0)
      await until("STOPPING=1")
      expect(received.indexOf("READY=1")).toBeLessThan(received.indexOf("STOPPING=1"))
      // Every notification completed its barrier, as it does with systemd.
      expect(service.stdout.join("\n")).not.toMatch(/sd_notify .* failed/)
    } finally {
      receiver.kill()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("refuses a bad configuration with one line per problem and exit code 78", () => {
    const result = spawnSync(process.execPath, ["--import", "tsx", "src/main.ts", "--heartbeat-interval", "soon"], {
      cwd: root,
      env: { ...process.env, PORT: "http", MAX_CONNECTIONS: "0" },
      encoding: "utf8",
      timeout: 20_000
    })
    expect(result.status).toBe(78)
    expect(result.stderr).toMatch(/invalid configuration/)
    expect(result.stderr).toMatch(/^ {2}PORT: .+/m)
    expect(result.stderr).toMatch(/^ {2}MAX_CONNECTIONS: must be an integer from 1 to/m)
    expect(result.stderr).toMatch(/^ {2}HEARTBEAT_INTERVAL: .+/m)
  })

  it("--help lists every setting; an unknown flag is a usage error", () => {
    const help = spawnSync(process.execPath, ["--import", "tsx", "src/main.ts", "--help"], { cwd: root, encoding: "utf8", timeout: 20_000 })
    expect(help.status).toBe(0)
    for (const name of ["PORT", "HOST", "DATA_DIR", "MAX_CONNECTIONS", "MAX_FRAME_BYTES", "ADMIN_TOKEN", "SHUTDOWN_TIMEOUT"]) {
      expect(help.stdout).toContain(name)
    }
    // Every setting's line: its flag, its variable and its default, in columns that never run together.
    const rows = help.stdout.split("\n").filter((line) => line.startsWith("  --"))
    expect(rows.length).toBeGreaterThan(50)
    for (const row of rows) expect(row).toMatch(/^ {2}--[a-z0-9-]+ {2,}[A-Z0-9_]+ {2,}default /)
    const wrong = spawnSync(process.execPath, ["--import", "tsx", "src/main.ts", "--prot", "1"], { cwd: root, encoding: "utf8", timeout: 20_000 })
    expect(wrong.status).toBe(64)
    expect(wrong.stderr).toMatch(/Unknown argument --prot/)
  })
})
