/**
 * The attacks of issue 13 ("Every edge bounded"), each run against the real service over real
 * sockets on 127.0.0.1 (as an attacker with network access would run them against `npm start`),
 * bounded in count and time. After each, the test checks that the node held: no actor of the
 * fleet restarted, a healthy client's ping p99 stayed at or under 100 ms, the process's resident
 * memory stayed within its baseline + 200 MB, and `/metrics` stayed small (bounded labels). Each
 * attack prints one JSON line of figures.
 *
 * Clients of "other addresses" connect from other loopback addresses (127.0.0.2, …), which
 * Linux routes to 127.0.0.1 like any other.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { WebSocket } from "ws"
import type { ActorNode } from "../../src/actors/Inspection.js"
import * as Inspection from "../../src/actors/Inspection.js"
import * as PubSub from "../../src/actors/PubSub.js"
import * as TestKit from "../../src/actors/TestKit.js"
import * as FleetvisorClient from "../../src/client/FleetvisorClient.js"
import * as FleetProbe from "../links/vda5050/support/FleetProbe.js"
import * as FleetNode from "../service/support/FleetNode.js"
import { root } from "../service/support/ServiceProcess.js"

const MB = 1024 * 1024

const percentile = (values: ReadonlyArray<number>, p: number) =>
  values.length === 0 ? 0 : [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) * p)]

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits

/** Restarts of every actor in the `fleet` subtree (the subtree's root included). */
const fleetRestarts = (nodes: ReadonlyArray<ActorNode>): number => {
  const sum = (node: ActorNode): number => node.restarts + node.children.reduce((n, child) => n + sum(child), 0)
  const fleet = Inspection.find(nodes, "fleet")
  expect(fleet, "the node runs a fleet").toBeDefined()
  return sum(fleet!)
}

/** One sample of a Prometheus text: `name{labels}` exactly as printed; 0 when absent. */
const sample = (text: string, series: string): number => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}

const sumOf = (text: string, name: string): number =>
  text.split("\n").filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).reduce((n, l) => n + Number(l.split(" ").at(-1)), 0)

const fetchText = (url: string): Promise<string> =>
  new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (response) => {
      let text = ""
      response.setEncoding("utf8").on("data", (chunk: string) => (text += chunk)).on("end", () => resolve(text))
    }).on("error", reject)
  })

/** A raw HTTP exchange on a fresh connection: the status line and headers, and the socket, paused, still open. */
interface Raw {
  readonly socket: net.Socket
  /** 0: closed before a status line; -1: none within the time. */
  readonly status: number
  readonly head: string
}

const openRaw = (port: number, text: string, localAddress = "127.0.0.1", timeoutMs = 10_000): Promise<Raw> =>
  new Promise((resolve) => {
    let data = ""
    let done = false
    const socket = net.connect({ port, host: "127.0.0.1", localAddress })
    const finish = (status: number, head: string) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.pause()
      socket.removeAllListeners("data")
      resolve({ socket, status, head })
    }
    socket.on("connect", () => socket.write(text))
    socket.setEncoding("latin1").on("data", (chunk: string) => {
      data += chunk
      const end = data.indexOf("\r\n\r\n")
      if (end >= 0) finish(Number(/^HTTP\/1\.[01] (\d{3})/.exec(data)?.[1] ?? 0), data.slice(0, end))
    })
    socket.on("error", () => {})
    socket.on("close", () => finish(0, data))
    const timer = setTimeout(() => finish(-1, data), timeoutMs)
  })

const get = (pathname: string, host: string, extra = "") => `GET ${pathname} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`

const upgrade = (pathname: string, host: string, protocol: string) =>
  get(
    pathname,
    host,
    `Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: ${protocol}\r\n`
  )

/** Sockets destroyed when the scope closes. */
const sockets = Effect.acquireRelease(
  Effect.sync(() => new Set<net.Socket>()),
  (set) => Effect.sync(() => set.forEach((s) => s.destroy()))
)

/** The figures every attack reports, and the checks every attack must pass. */
interface Held {
  readonly restarts: number
  readonly pingP50: number
  readonly pingP99: number
  readonly pings: number
  readonly rssGrowthMB: number
  readonly metricsBytes: number
  readonly metricsBytesBefore: number
}

const check = (attack: string, held: Held, figures: Record<string, unknown>) => {
  console.log(JSON.stringify({ test: "EdgeAttacks", attack, ...figures, ...held }))
  expect(held.restarts, "fleet actors restarted").toBe(0)
  expect(held.pings, "the healthy client pinged throughout").toBeGreaterThan(10)
  expect(held.pingP99, "healthy ping p99 (ms)").toBeLessThanOrEqual(100)
  expect(held.rssGrowthMB, "resident memory growth (MB)").toBeLessThan(200)
  expect(held.metricsBytes, "/metrics stayed small").toBeLessThan(held.metricsBytesBefore + 8 * 1024)
}

/**
 * Runs `attack` against an in-process node while a healthy client pings every 20 ms, then
 * checks that the node held and prints the figures.
 */
const underAttack = <E>(
  node: FleetNode.FleetNode,
  attack: string,
  run: Effect.Effect<Record<string, unknown>, E, Scope.Scope>
) =>
  Effect.gen(function*() {
    const client = yield* FleetNode.connect(node.service)
    yield* client.rpc.Ping()
    const metricsUrl = `${node.service.url}/metrics`
    const metricsBytesBefore = (yield* Effect.promise(() => fetchText(metricsUrl))).length
    const restartsBefore = fleetRestarts(yield* node.service.system.snapshot)
    const rssBefore = process.memoryUsage().rss
    let rssMax = rssBefore
    const memBefore = process.memoryUsage()
    let peak = memBefore
    const pings: Array<number> = []
    const pinger = yield* Effect.fork(Effect.forever(Effect.gen(function*() {
      const started = performance.now()
      yield* client.rpc.Ping()
      pings.push(performance.now() - started)
      const m = process.memoryUsage()
      if (m.rss > rssMax) {
        rssMax = m.rss
        peak = m
      }
      yield* Effect.sleep("20 millis")
    })))
    const started = Date.now()
    const figures = yield* Effect.scoped(run)
    const durationMs = Date.now() - started
    yield* Fiber.interrupt(pinger)
    const metrics = yield* Effect.promise(() => fetchText(metricsUrl))
    const held: Held = {
      restarts: fleetRestarts(yield* node.service.system.snapshot) - restartsBefore,
      pingP50: round(percentile(pings, 0.5)),
      pingP99: round(percentile(pings, 0.99)),
      pings: pings.length,
      rssGrowthMB: round((rssMax - rssBefore) / MB),
      metricsBytes: metrics.length,
      metricsBytesBefore
    }
    check(attack, held, { ...figures, durationMs, heapGrowthMB: round((peak.heapUsed - memBefore.heapUsed) / MB), buffersGrowthMB: round((peak.arrayBuffers - memBefore.arrayBuffers) / MB) })
    return metrics
  })

describe("attacks held at the edges", () => {
  it.scopedLive("SSE flood: 1,150 /stream clients that never read, from 11 addresses: 100 per address (429), 1,000 in all (503)", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 2 })
      const port = node.service.address.port
      const host = `127.0.0.1:${port}`
      const metrics = yield* underAttack(node, "sse-flood", Effect.gen(function*() {
        // The attacker runs in a process of its own, as it would on another machine.
        const plan = ["127.0.0.1=150", ...Array.from({ length: 10 }, (_, i) => `127.0.0.${i + 2}=100`)].join(",")
        const attacker = yield* Effect.acquireRelease(
          Effect.sync(() => spawn(process.execPath, [path.join(root, "test/chaos/support/sseFlood.mjs"), String(port), plan], { stdio: ["pipe", "pipe", "inherit"] })),
          (child) => Effect.sync(() => child.kill("SIGKILL"))
        )
        const { accepted, statuses } = yield* Effect.async<{ statuses: Record<string, number>; accepted: Record<string, number> }>((resume) => {
          let text = ""
          attacker.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
            text += chunk
            if (text.includes("\n")) resume(Effect.succeed(JSON.parse(text.slice(0, text.indexOf("\n")))))
          })
        })
        // Held open (and unread) for 2 s while the fleet's updates go on.
        yield* Effect.sleep("2 seconds")
        const during = yield* Effect.promise(() => fetchText(`${node.service.url}/metrics`))
        const another = yield* Effect.promise(() => openRaw(port, get("/stream", host), "127.0.0.12"))
        another.socket.destroy()
        expect(statuses).toEqual({ 200: 1000, 429: 50, 503: 100 })
        expect(accepted["127.0.0.1"]).toBe(100)
        expect(sample(during, "fleetvisor_sse_streams")).toBe(1000)
        expect(another.status).toBe(503)
        attacker.stdin!.end()
        yield* TestKit.awaitUntil(Effect.sync(() => node.service.metrics.sse.open === 0), { timeoutMillis: 10_000, waitedFor: "every stream closed" })
        const after = yield* Effect.promise(() => openRaw(port, get("/stream", host)))
        after.socket.destroy()
        expect(after.status).toBe(200)
        return { attempts: 1150, accepted: statuses[200], refused429: statuses[429], refused503: statuses[503], streamsHeld: sample(during, "fleetvisor_sse_streams") }
      }))
      expect(sample(metrics, "fleetvisor_http_refused_total{reason=\"sse_address\"}")).toBe(50)
      expect(sample(metrics, "fleetvisor_http_refused_total{reason=\"sse_capacity\"}")).toBe(101)
    }), { timeout: 90_000 })

  it.scopedLive("stalled SSE clients: /canvas/stream clients that read nothing are cut off (CANVAS_SSE_BUFFER, SSE_STALL_TIMEOUT); a reading one is not", () =>
    Effect.gen(function*() {
      // A 2200×2200 board: its snapshot event (6.5 MB) is more than the loopback buffers absorb (~4 MB).
      const node = yield* FleetNode.start({
        arms: 1,
        agvs: 1,
        env: {
          CANVAS: "on",
          CANVAS_WIDTH: "2200",
          CANVAS_HEIGHT: "2200",
          CANVAS_COOLDOWN: "0 millis",
          CANVAS_SSE_BUFFER: "8",
          SSE_STALL_TIMEOUT: "5 seconds"
        }
      })
      const canvas = node.service.canvas
      expect(canvas._tag).toBe("Some")
      const hub = canvas._tag === "Some" ? canvas.value.hub : undefined!
      const port = node.service.address.port
      const metricsUrl = `${node.service.url}/metrics`
      const stalledCount = 6
      yield* underAttack(node, "sse-stalled", Effect.gen(function*() {
        const open = yield* sockets
        const disconnectedBefore = (yield* PubSub.stats(hub)).disconnected
        // A client that reads, first, to its snapshot.
        let healthyUpdates = 0
        let snapshotBytes = 0
        let snapshotDone = false
        const healthy = http.get(`${node.service.url}/canvas/stream`, { agent: false }, (response) => {
          response.setEncoding("utf8").on("data", (chunk: string) => {
            if (!snapshotDone) snapshotBytes += chunk.length
            if (chunk.includes("event: updates")) {
              snapshotDone = true
              healthyUpdates += chunk.split("event: updates").length - 1
            }
          })
        })
        healthy.on("error", () => {})
        yield* Effect.addFinalizer(() => Effect.sync(() => healthy.destroy()))
        yield* TestKit.awaitUntil(Effect.sync(() => snapshotBytes > 6_000_000), { timeoutMillis: 20_000, waitedFor: "the reading client's snapshot" })
        // Clients that send their request and then never read a byte.
        for (let i = 0; i < stalledCount; i++) {
          const socket = net.connect({ port, host: "127.0.0.1" }, () => {
            socket.write(get("/canvas/stream", `127.0.0.1:${port}`))
            socket.pause()
          })
          socket.on("error", () => {})
          open.add(socket)
        }
        yield* TestKit.awaitUntil(Effect.sync(() => node.service.metrics.sse.open === stalledCount + 1), {
          timeoutMillis: 20_000,
          waitedFor: "every stream open",
          describe: Effect.sync(() => `${node.service.metrics.sse.open} open`)
        })
        // A painter: one pixel a tick for 30 ticks, more updates than a stalled client may hold.
        const painter = yield* FleetNode.connect(node.service)
        const started = Date.now()

        for (let i = 0; i < 30; i++) {
          yield* painter.rpc.CanvasPlace({ x: i, y: 0, color: 3 })
          yield* Effect.sleep("40 millis")
        }
        yield* TestKit.awaitUntil(
          Effect.map(PubSub.stats(hub), (stats) => stats.disconnected - disconnectedBefore >= stalledCount),
          { timeoutMillis: 10_000, waitedFor: "every stalled client's buffer overflowed" }
        )
        yield* TestKit.awaitUntil(Effect.sync(() => node.service.metrics.sse.open === 1), { timeoutMillis: 15_000, waitedFor: "the stalled streams cut off" })
        const cutAfterMs = Date.now() - started
        const text = yield* Effect.promise(() => fetchText(metricsUrl))
        yield* TestKit.awaitUntil(Effect.sync(() => healthyUpdates >= 25), { timeoutMillis: 5_000, waitedFor: "the reading client's updates" })
        expect(sample(text, "fleetvisor_sse_streams_ended_total{reason=\"stalled\"}")).toBe(stalledCount)
        return {
          stalledClients: stalledCount,
          snapshotMB: round(snapshotBytes / MB),
          bufferCutoffs: (yield* PubSub.stats(hub)).disconnected - disconnectedBefore,
          stalledCut: sample(text, "fleetvisor_sse_streams_ended_total{reason=\"stalled\"}"),
          cutAfterMs,
          healthyUpdates
        }
      }))
    }), { timeout: 90_000 })

  it.scopedLive("Foxglove fill: one address gets 8 /foxglove clients (429 after), a foreign Origin 403, the Foxglove web app and other addresses are served", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 1 })
      const url = `${node.service.url.replace(/^http/, "ws")}/foxglove`
      const metrics = yield* underAttack(node, "foxglove-fill", Effect.gen(function*() {
        const clients = yield* Effect.acquireRelease(Effect.sync(() => new Set<WebSocket>()), (set) => Effect.sync(() => set.forEach((ws) => ws.terminate())))
        const connect = (localAddress: string, origin?: string) =>
          new Promise<number>((resolve) => {
            const ws = new WebSocket(url, ["foxglove.websocket.v1"], { localAddress, ...(origin === undefined ? {} : { origin }) })
            clients.add(ws)
            ws.on("open", () => resolve(101))
            ws.on("unexpected-response", (_, response) => {
              resolve(response.statusCode ?? 0)
              ws.terminate()
            })
            ws.on("error", () => resolve(0))
          })
        const statuses: Record<string, number> = {}
        const one = yield* Effect.promise(() => Promise.all(Array.from({ length: 64 }, () => connect("127.0.0.1"))))
        for (const status of one) statuses[status] = (statuses[status] ?? 0) + 1
        expect(statuses).toEqual({ 101: 8, 429: 56 })
        const foreign = yield* Effect.promise(() => connect("127.0.0.2", "https://evil.example"))
        const webApp = yield* Effect.promise(() => connect("127.0.0.2", "https://app.foxglove.dev"))
        const others = yield* Effect.promise(() => Promise.all(Array.from({ length: 7 }, (_, i) => connect(`127.0.0.${i + 3}`))))
        expect(foreign).toBe(403)
        expect(webApp).toBe(101)
        expect(others.every((s) => s === 101)).toBe(true)
        // The attacker holds its connections for a while.
        yield* Effect.sleep("1500 millis")
        return { attempts: 64 + 9, oneAddressOpened: statuses[101], oneAddressRefused429: statuses[429], foreignOrigin: foreign, webApp, otherAddressesOpened: others.length }
      }))
      expect(sample(metrics, "fleetvisor_foxglove_upgrades_refused_total{reason=\"address\"}")).toBe(56)
      expect(sample(metrics, "fleetvisor_foxglove_upgrades_refused_total{reason=\"origin\"}")).toBe(1)
    }), { timeout: 60_000 })

  it.scopedLive("DNS rebinding: a foreign Host gets 421 on admin, event streams, pages, metrics and every upgrade; CONNECT and other methods are answered", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 1 })
      const port = node.service.address.port
      const evil = `evil.example:${port}`
      const metrics = yield* underAttack(node, "dns-rebinding", Effect.gen(function*() {
        const targets = [
          get("/admin/actors", evil),
          get("/admin/actors/stream", evil),
          get("/admin/", evil),
          get("/stream", evil),
          get("/fleet/", evil),
          get("/metrics", evil),
          upgrade("/ws", evil, "fleetvisor.v1.json"),
          upgrade("/foxglove", evil, "foxglove.websocket.v1")
        ]
        let requests = 0
        const statuses: Record<string, number> = {}
        const deadline = Date.now() + 1_500
        while (Date.now() < deadline) {
          const answers = yield* Effect.promise(() => Promise.all(targets.map((text) => openRaw(port, text))))
          for (const answer of answers) {
            answer.socket.destroy()
            requests++
            statuses[answer.status] = (statuses[answer.status] ?? 0) + 1
          }
        }
        expect(Object.keys(statuses)).toEqual(["421"])
        // The names the server goes by are served; probes answer any Host.
        const served = yield* Effect.promise(() =>
          Promise.all([
            openRaw(port, get("/admin/actors", `localhost:${port}`)),
            openRaw(port, get("/admin/actors", `127.0.0.1:${port}`)),
            openRaw(port, get("/admin/actors", `[::1]:${port}`)),
            openRaw(port, upgrade("/ws", `localhost:${port}`, "fleetvisor.v1.json")),
            openRaw(port, get("/healthz", evil))
          ]))
        served.forEach((a) => a.socket.destroy())
        expect(served.map((a) => a.status)).toEqual([200, 200, 200, 101, 200])
        // Every method is answered: CONNECT and a method the path is not served with get 405.
        const methods = yield* Effect.promise(() =>
          Promise.all([
            openRaw(port, `CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`),
            openRaw(port, `OPTIONS /admin/actors HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`),
            openRaw(port, `DELETE /stream HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
          ]))
        methods.forEach((a) => a.socket.destroy())
        expect(methods.map((a) => a.status)).toEqual([405, 405, 405])
        expect(methods[1].head).toMatch(/\r\nallow: GET, HEAD\r\n/i)
        return { requests, refused421: statuses[421], servedNames: served.length, connect: methods[0].status }
      }))
      expect(sample(metrics, "fleetvisor_http_refused_total{reason=\"host\"}")).toBeGreaterThan(50)
      expect(sample(metrics, "fleetvisor_http_refused_total{reason=\"method\"}")).toBe(3)
    }), { timeout: 60_000 })

  it.scopedLive("silent connections: 500 that send nothing and 100 that trickle headers are closed after HEADERS_TIMEOUT; /healthz answers throughout", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 1, env: { HEADERS_TIMEOUT: "1 second" } })
      const port = node.service.address.port
      const metrics = yield* underAttack(node, "silent-connections", Effect.gen(function*() {
        const open = yield* sockets
        const closedAt: Array<number> = []
        const trickles: Array<ReturnType<typeof setInterval>> = []
        yield* Effect.addFinalizer(() => Effect.sync(() => trickles.forEach(clearInterval)))
        const started = Date.now()
        for (let i = 0; i < 600; i++) {
          const socket = net.connect({ port, host: "127.0.0.1" })
          // How long it lived from its connect (a SYN dropped by a full backlog connects seconds later).
          let connectedAt = Date.now()
          socket.on("connect", () => (connectedAt = Date.now()))
          socket.on("error", () => {})
          socket.on("close", () => closedAt.push(Date.now() - connectedAt))
          // It sends nothing, but reads, so that it sees the server close it.
          socket.resume()
          if (i >= 500) {
            // Slowloris: a request line, then one header byte every 200 ms, never the end.
            socket.on("connect", () => {
              socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Slow: `)
              trickles.push(setInterval(() => socket.writable && socket.write("a"), 200))
            })
          }
          open.add(socket)
          // In steps, within the listen backlog (511): a refused SYN would come back seconds later.
          if (i % 100 === 99) yield* Effect.sleep("20 millis")
        }
        let healthy = 0
        let failed = 0
        while (closedAt.length < 600 && Date.now() - started < 25_000) {
          const answer = yield* Effect.promise(() => openRaw(port, get("/healthz", `127.0.0.1:${port}`, "Connection: close\r\n"), "127.0.0.1", 2_000))
          answer.socket.destroy()
          if (answer.status === 200) healthy++
          else failed++
          yield* Effect.sleep("100 millis")
        }
        expect(closedAt.length).toBe(600)
        // HEADERS_TIMEOUT (1 s) and the sweep's period (250 ms), with room for a loaded machine.
        expect(Math.max(...closedAt)).toBeLessThan(5_000)
        expect(failed).toBe(0)
        return { silent: 500, slowloris: 100, longestLifeMs: Math.max(...closedAt), shortestLifeMs: Math.min(...closedAt), allClosedAfterMs: Date.now() - started, healthzServed: healthy, healthzFailed: failed }
      }))
      expect(sample(metrics, "fleetvisor_http_refused_total{reason=\"idle\"}")).toBeGreaterThanOrEqual(600)
    }), { timeout: 60_000 })
})

/** The service as a child process under `ulimit -n <limit>`, with a small demo fleet on the run's Mosquitto. */
const startLimited = (limit: number) =>
  Effect.acquireRelease(
    Effect.async<{ child: ChildProcess; port: number; output: Array<string>; listening: Record<string, unknown>; dir: string }, Error>((resume) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-edge-"))
      const child = spawn("/bin/sh", ["-c", `ulimit -n ${limit} && exec "$0" "$@"`, process.execPath, "--import", "tsx", "src/main.ts"], {
        cwd: root,
        env: {
          ...process.env,
          PORT: "0",
          HOST: "127.0.0.1",
          DATA_DIR: dir,
          CANVAS: "off",
          FLEET_DEMO: "on",
          FLEET_DEMO_ARMS: "1",
          FLEET_DEMO_AGVS: "3",
          FLEET_MQTT_URL: FleetProbe.MOSQUITTO_URL,
          FLEET_MQTT_PREFIX: `fve${process.pid}${Math.random().toString(36).slice(2, 8)}/v2`
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const output: Array<string> = []
      let listening: Record<string, unknown> = {}
      let partial = ""
      let done = false
      child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
        partial += chunk
        const lines = partial.split("\n")
        partial = lines.pop()!
        for (const line of lines) {
          output.push(line)
          if (line.includes("\"message\":\"listening\"")) listening = JSON.parse(line).annotations
          if (!done && line.includes("\"message\":\"ready\"")) {
            done = true
            resume(Effect.succeed({ child, port: JSON.parse(line).annotations.port, output, listening, dir }))
          }
        }
      })
      child.stderr!.setEncoding("utf8").on("data", (chunk: string) => output.push(chunk))
      child.once("exit", (code) => {
        if (!done) resume(Effect.fail(new Error(`the service exited (${code}) before it was ready:\n${output.join("\n")}`)))
      })
    }),
    ({ child, dir }) =>
      Effect.promise(async () => {
        if (child.exitCode === null) {
          const exited = new Promise((resolve) => child.once("exit", resolve))
          child.kill("SIGKILL")
          await exited
        }
        fs.rmSync(dir, { recursive: true, force: true })
      })
  )

const rssOf = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024

describe("attacks held at the edges, with few file descriptors", () => {
  it.scopedLive("under ulimit -n 600, 700 silent connections neither exhaust the descriptors nor lock /healthz out; all are closed after 10 s", () =>
    Effect.gen(function*() {
      const service = yield* startLimited(600)
      const base = `http://127.0.0.1:${service.port}`
      // The open-file limit less a reserve of a quarter: 450.
      expect(service.listening.maxHttpConnections).toBe(450)
      const client = yield* Effect.gen(function*() {
        const client = yield* FleetvisorClient.make({ url: `ws://127.0.0.1:${service.port}/ws`, wire: "msgpack", disableTracing: true })
        yield* client.ready
        return client
      }).pipe(Effect.provide(NodeSocket.layerWebSocketConstructor))
      yield* client.rpc.Ping()
      const before = yield* Effect.promise(() => fetchText(`${base}/metrics`))
      const rssBefore = rssOf(service.child.pid!)
      let rssMax = rssBefore
      const pings: Array<number> = []
      const pinger = yield* Effect.fork(Effect.forever(Effect.gen(function*() {
        const started = performance.now()
        yield* client.rpc.Ping()
        pings.push(performance.now() - started)
        rssMax = Math.max(rssMax, rssOf(service.child.pid!))
        yield* Effect.sleep("20 millis")
      })))

      const open = yield* sockets
      const closedAt: Array<number> = []
      const started = Date.now()
      for (let i = 0; i < 700; i++) {
        const socket = net.connect({ port: service.port, host: "127.0.0.1" })
        // How long it lived from its connect (a SYN dropped by a full backlog connects seconds later).
        let connectedAt = Date.now()
        socket.on("connect", () => (connectedAt = Date.now()))
        socket.on("error", () => {})
        socket.on("close", () => closedAt.push(Date.now() - connectedAt))
        // It sends nothing, but reads, so that it sees the server close it.
        socket.resume()
        open.add(socket)
        if (i % 100 === 99) yield* Effect.sleep("50 millis")
      }
      let healthy = 0
      let failed = 0
      while (closedAt.length < 700 && Date.now() - started < 30_000) {
        const answer = yield* Effect.promise(() => openRaw(service.port, get("/healthz", `127.0.0.1:${service.port}`, "Connection: close\r\n"), "127.0.0.1", 2_000))
        answer.socket.destroy()
        if (answer.status === 200) healthy++
        else failed++
        yield* Effect.sleep("200 millis")
      }
      yield* Fiber.interrupt(pinger)
      const after = yield* Effect.promise(() => fetchText(`${base}/metrics`))
      const restarts = sumOf(after, "fleetvisor_actor_restarts_total") - sumOf(before, "fleetvisor_actor_restarts_total")
      const figures = {
        fileLimit: 600,
        maxHttpConnections: service.listening.maxHttpConnections,
        silent: 700,
        closedAll: closedAt.length,
        longestLifeMs: Math.max(...closedAt),
        idleClosed: sample(after, "fleetvisor_http_refused_total{reason=\"idle\"}"),
        evicted: sample(after, "fleetvisor_http_refused_total{reason=\"evicted\"}"),
        dropped: sample(after, "fleetvisor_http_refused_total{reason=\"connections\"}"),
        healthzServed: healthy,
        healthzFailed: failed,
        durationMs: Date.now() - started
      }
      check("fd-exhaustion", {
        restarts,
        pingP50: round(percentile(pings, 0.5)),
        pingP99: round(percentile(pings, 0.99)),
        pings: pings.length,
        rssGrowthMB: round((rssMax - rssBefore) / MB),
        metricsBytes: after.length,
        metricsBytesBefore: before.length
      }, figures)
      expect(closedAt.length).toBe(700)
      expect(Math.max(...closedAt)).toBeLessThan(13_000)
      expect(failed).toBe(0)
      expect(service.output.some((line) => /EMFILE|too many open files/i.test(line))).toBe(false)
      expect(service.child.exitCode).toBe(null)
    }), { timeout: 90_000 })
})
