/**
 * The soak: the whole service under mixed load for a while, its heap and actor counts sampled,
 * its error log lines counted.
 *
 *   npm run soak                      → one JSON object on stdout (10 minutes)
 *   SOAK_MINUTES=1 npm run soak       → the smoke run
 *
 * Knobs: `SOAK_MINUTES` (10), `SOAK_SAMPLE_SECONDS` (5), `SOAK_WATCHERS` (50) canvas clients that
 * stay joined, `SOAK_CHURN_PER_SECOND` (50) connections opened (and closed within a second) per
 * second, `SOAK_PIXELS_PER_SECOND` (100), `BENCH_VERBOSE=1` logs the steps. The run stops itself
 * (exit 1) if it is not done a minute after its length.
 *
 * The service is `src/main.ts` in its own process, as an operator starts it (port 0, JSON logs
 * on stdout, a temp data directory, the demo fleet: simulated arms over RMI and AGVs over the
 * embedded MQTT broker, `CANVAS_COOLDOWN=0`). The load, from this process over real sockets:
 * - churn: connections opened every 100 ms, half of them joining the canvas, each closed after up
 *   to a second (half with a close frame, half `terminate()`d);
 * - canvas: `SOAK_WATCHERS` joined clients reading, one painter placing pixels;
 * - fleet: telemetry watchers (`FleetSubscribe`), and a controller that in a loop acquires a
 *   robot, commands it (pause/continue or pause/resume), releases it, and every tenth round
 *   triggers an emergency stop on it and resets it (a second client's acquire meets `ControlHeld`).
 * Every `SOAK_SAMPLE_SECONDS` `/metrics` is read: `nodejs_heap_size_used_bytes` (V8's heap, no
 * forced collection), `process_resident_memory_bytes`, `fleetvisor_sessions`, `fleetvisor_actors`.
 * Error lines are the log lines of level ERROR or FATAL, and any stderr line. The slopes are
 * least-squares fits per minute, over all samples and over the second half (after warm-up).
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as readline from "node:readline"
import { WebSocket } from "ws"
import * as Subprotocol from "../src/protocol/Subprotocol.js"
import * as WireCodec from "../src/protocol/WireCodec.js"

const minutes = Number(process.env.SOAK_MINUTES ?? 10)
const sampleSeconds = Number(process.env.SOAK_SAMPLE_SECONDS ?? 5)
const watchers = Number(process.env.SOAK_WATCHERS ?? 50)
const churnPerSecond = Number(process.env.SOAK_CHURN_PER_SECOND ?? 50)
const pixelsPerSecond = Number(process.env.SOAK_PIXELS_PER_SECOND ?? 100)
const fleetWatchers = 5

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const progress = (line: string) => process.env.BENCH_VERBOSE && process.stderr.write(`${new Date().toISOString()} ${line}\n`)

// ---------------------------------------------------------------------------------------------
// The service process and its logs.

interface Logs {
  lines: number
  errors: number
  firstErrors: Array<string>
  byLevel: Record<string, number>
}

const startService = async (dataDir: string) => {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: path.join(import.meta.dirname, ".."),
    env: {
      ...process.env,
      PORT: "0",
      HOST: "127.0.0.1",
      DATA_DIR: dataDir,
      LOG_LEVEL: "info",
      CANVAS_WIDTH: "256",
      CANVAS_HEIGHT: "256",
      CANVAS_COOLDOWN: "0 millis",
      RATE_LIMIT_PER_SECOND: "1000",
      RATE_LIMIT_BURST: "1000",
      // The painter keeps 100 placements a second in flight, each until its tick commits.
      MAX_REQUESTS_IN_FLIGHT: "1000"
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const logs: Logs = { lines: 0, errors: 0, firstErrors: [], byLevel: {} }
  const error = (line: string) => {
    logs.errors++
    if (logs.firstErrors.length < 10) logs.firstErrors.push(line.slice(0, 500))
  }
  let onReady: (url: string) => void = () => {}
  const ready = new Promise<string>((resolve) => (onReady = resolve))
  readline.createInterface({ input: child.stdout! }).on("line", (line) => {
    logs.lines++
    let entry: { logLevel?: string; message?: unknown; annotations?: { url?: string } }
    try {
      entry = JSON.parse(line)
    } catch {
      return error(line)
    }
    const level = entry.logLevel ?? "?"
    logs.byLevel[level] = (logs.byLevel[level] ?? 0) + 1
    if (level === "ERROR" || level === "FATAL") error(line)
    if (entry.message === "ready" && entry.annotations?.url) onReady(entry.annotations.url.replace(/\/$/, ""))
  })
  readline.createInterface({ input: child.stderr! }).on("line", (line) => {
    logs.lines++
    error(line)
  })
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const url = await Promise.race([ready, exited.then((code) => Promise.reject(new Error(`service exited ${code}: ${logs.firstErrors.join("\n")}`)))])
  return { child, url, logs, exited }
}

// ---------------------------------------------------------------------------------------------
// A raw RPC client: requests out, exits and chunks in.

interface Outcomes {
  [tag: string]: number
}

interface RawClient {
  readonly socket: WebSocket
  readonly call: (tag: string, payload: object) => Promise<{ ok: boolean; value: any }>
  readonly stream: (tag: string, payload: object, onChunk: (values: ReadonlyArray<any>) => void) => void
}

const outcomes: Outcomes = {}
const count = (key: string) => (outcomes[key] = (outcomes[key] ?? 0) + 1)

const connect = (wsUrl: string): Promise<RawClient> =>
  new Promise((resolve, reject) => {
    const socket = new WebSocket(wsUrl, [Subprotocol.v1MsgPack.name], { perMessageDeflate: false })
    let id = 0
    const pending = new Map<string, (exit: { ok: boolean; value: any }) => void>()
    const streams = new Map<string, (values: ReadonlyArray<any>) => void>()
    socket.once("error", reject)
    socket.once("open", () => {
      socket.on("error", () => {})
      socket.on("close", () => {
        for (const resolveExit of pending.values()) resolveExit({ ok: false, value: { _tag: "Closed" } })
        pending.clear()
      })
      socket.on("message", (data: Buffer) => {
        let decoded: any
        try {
          decoded = WireCodec.msgpack.decode(data)
        } catch {
          return void count("undecodable")
        }
        for (const message of Array.isArray(decoded) ? decoded : [decoded]) {
          if (message?._tag === "Chunk") streams.get(String(message.requestId))?.(message.values ?? [])
          else if (message?._tag === "Exit") {
            const requestId = String(message.requestId)
            streams.delete(requestId)
            const exit = message.exit
            pending.get(requestId)?.({ ok: exit?._tag === "Success", value: exit?._tag === "Success" ? exit.value : exit?.cause })
            pending.delete(requestId)
          }
        }
      })
      const send = (tag: string, payload: object) => {
        const requestId = String(++id)
        socket.send(WireCodec.msgpack.encode({ _tag: "Request", id: requestId, tag, payload, headers: [] }))
        return requestId
      }
      resolve({
        socket,
        call: (tag, payload) =>
          socket.readyState !== socket.OPEN
            ? Promise.resolve({ ok: false, value: { _tag: "Closed" } })
            : new Promise((resolveExit) => pending.set(send(tag, payload), resolveExit)),
        stream: (tag, payload, onChunk) => void streams.set(send(tag, payload), onChunk)
      })
    })
  })

/** The `_tag` of the first failure found in a cause. */
const failureTag = (cause: any): string => {
  if (cause === null || typeof cause !== "object") return "unknown"
  if (cause._tag === "Fail") return cause.error?._tag ?? "Fail"
  if (cause._tag === "Die") return "Die"
  if (cause._tag === "Interrupt") return "Interrupt"
  for (const key of ["left", "right"]) if (cause[key]) return failureTag(cause[key])
  return cause._tag ?? "unknown"
}

/** Robot ids and kinds found in fleet events. */
const robotsIn = (values: ReadonlyArray<any>, into: Map<string, string>) => {
  for (const event of values) for (const robot of event?.robots ?? []) into.set(robot.id, robot.kind)
}

// ---------------------------------------------------------------------------------------------
// The load.

const startLoad = async (wsUrl: string) => {
  let running = true
  const timers: Array<ReturnType<typeof setInterval>> = []
  const open: Set<WebSocket> = new Set()
  const track = (client: RawClient) => {
    open.add(client.socket)
    client.socket.once("close", () => open.delete(client.socket))
    return client
  }
  let received = 0
  const stats = { churned: 0, churnFailed: 0, canvasFrames: 0, fleetChunks: 0, placed: 0, placeFailed: 0, rounds: 0 }

  for (let i = 0; i < watchers; i++) {
    track(await connect(wsUrl)).stream("CanvasJoin", {}, () => stats.canvasFrames++)
  }
  const robots = new Map<string, string>()
  for (let i = 0; i < fleetWatchers; i++) {
    track(await connect(wsUrl)).stream("FleetSubscribe", {}, (values) => {
      stats.fleetChunks++
      robotsIn(values, robots)
    })
  }

  // Churn.
  timers.push(setInterval(() => {
    for (let i = 0; i < churnPerSecond / 10; i++) {
      connect(wsUrl).then((client) => {
        stats.churned++
        if (i % 2 === 0) client.stream("CanvasJoin", {}, () => received++)
        setTimeout(() => (i % 4 < 2 ? client.socket.close(1000) : client.socket.terminate()), Math.random() * 1000)
      }, () => stats.churnFailed++)
    }
  }, 100))

  // Painting.
  const painter = track(await connect(wsUrl))
  let pixel = 0
  timers.push(setInterval(() => {
    for (let i = 0; i < pixelsPerSecond / 10; i++) {
      pixel++
      void painter.call("CanvasPlace", { x: pixel % 256, y: Math.floor(pixel / 256) % 256, color: pixel % 16 }).then((exit) =>
        exit.ok ? stats.placed++ : (stats.placeFailed++, count(`CanvasPlace:${failureTag(exit.value)}`))
      )
    }
  }, 100))

  // Fleet control.
  const controller = track(await connect(wsUrl))
  const rival = track(await connect(wsUrl))
  const rpc = async (client: RawClient, tag: string, payload: object) => {
    const exit = await client.call(tag, payload)
    count(exit.ok ? `${tag}:ok` : `${tag}:${failureTag(exit.value)}`)
    return exit.ok
  }
  const control = (async () => {
    while (running && robots.size === 0) await sleep(100)
    while (running) {
      const ids = [...robots.keys()]
      const robot = ids[stats.rounds % ids.length]
      const arm = robots.get(robot) === "arm"
      stats.rounds++
      if (await rpc(controller, "FleetAcquire", { robot, ttlMs: 5000 })) {
        await rpc(rival, "FleetAcquire", { robot, ttlMs: 5000 })
        await rpc(controller, "FleetCommand", { robot, command: { _tag: "Pause" } })
        await sleep(100)
        await rpc(controller, "FleetCommand", { robot, command: { _tag: arm ? "Continue" : "Resume" } })
        if (stats.rounds % 10 === 0) {
          await rpc(controller, "FleetEmergencyStop", { robot })
          await sleep(100)
          // An AGV's latch clears once its state confirmed the stop: a Reset before that is refused (RobotStopped).
          for (let tries = 1; ; tries++) {
            const exit = await controller.call("FleetCommand", { robot, command: { _tag: "Reset" } })
            if (exit.ok || failureTag(exit.value) !== "RobotStopped" || tries === 20) {
              count(exit.ok ? "FleetCommand:ok" : `FleetCommand:${failureTag(exit.value)}`)
              break
            }
            await sleep(100)
          }
        }
        await rpc(controller, "FleetRelease", { robot })
      }
      await sleep(200)
    }
  })()

  return {
    robots,
    stats,
    openSockets: () => open.size,
    stop: async () => {
      running = false
      for (const timer of timers) clearInterval(timer)
      await control
      await sleep(1100)
      for (const socket of open) socket.close(1000)
      await sleep(500)
      for (const socket of open) socket.terminate()
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Samples and figures.

interface Sample {
  readonly atSeconds: number
  readonly heapUsedBytes: number
  readonly residentBytes: number
  readonly sessions: number
  readonly actors: number
}

const gauges = async (httpUrl: string) => {
  const text = await (await fetch(`${httpUrl}/metrics`)).text()
  const value = (name: string) => {
    const line = text.split("\n").find((l) => l.startsWith(`${name} `))
    return line === undefined ? NaN : Number(line.split(" ")[1])
  }
  return {
    heapUsedBytes: value("nodejs_heap_size_used_bytes"),
    residentBytes: value("process_resident_memory_bytes"),
    sessions: value("fleetvisor_sessions"),
    actors: value("fleetvisor_actors")
  }
}

/** The least-squares slope of `y` over `x`. */
const slope = (points: ReadonlyArray<readonly [number, number]>) => {
  const n = points.length
  if (n < 2) return NaN
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0)
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0)
  return sxy / sxx
}

/**
 * The heap's floor: at each sample, the least `heapUsed` of the last 30 seconds. Without forced
 * collections `heapUsed` is a sawtooth; its floor follows what survives collections.
 */
const heapFloor = (samples: ReadonlyArray<Sample>): Array<Sample> =>
  samples.map((sample) => ({
    ...sample,
    heapUsedBytes: Math.min(
      ...samples.filter((s) => s.atSeconds <= sample.atSeconds && s.atSeconds > sample.atSeconds - 30).map((s) => s.heapUsedBytes)
    )
  }))

const perMinute = (samples: ReadonlyArray<Sample>, field: keyof Omit<Sample, "atSeconds">) => {
  const fit = (list: ReadonlyArray<Sample>) => Number(slope(list.map((s) => [s.atSeconds / 60, s[field]] as const)).toFixed(2))
  return { all: fit(samples), secondHalf: fit(samples.slice(Math.floor(samples.length / 2))) }
}

const main = async () => {
  const lengthMs = minutes * 60_000
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench/soak: not done a minute after its ${minutes} minutes, giving up\n`)
    service?.child.kill("SIGKILL")
    process.exit(1)
  }, lengthMs + 60_000)
  const loadBefore = os.loadavg()
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-soak-"))
  let service: Awaited<ReturnType<typeof startService>> | undefined
  try {
    service = await startService(dataDir)
    const httpUrl = service.url
    const wsUrl = `${httpUrl.replace(/^http/, "ws")}/ws`
    progress(`service at ${httpUrl}`)
    // The demo's AGVs come up over MQTT within a moment of `ready`.
    await sleep(3000)
    const idle = await gauges(httpUrl)
    const load = await startLoad(wsUrl)
    const started = performance.now()
    const samples: Array<Sample> = []
    while (performance.now() - started < lengthMs) {
      await sleep(Math.min(sampleSeconds * 1000, Math.max(0, lengthMs - (performance.now() - started))))
      samples.push({ atSeconds: Number(((performance.now() - started) / 1000).toFixed(1)), ...(await gauges(httpUrl)) })
      progress(`sample ${JSON.stringify(samples[samples.length - 1])}`)
    }
    await load.stop()
    // Sessions end asynchronously: wait (up to 10 s) until the last one is gone.
    let after = await gauges(httpUrl)
    for (let i = 0; i < 100 && after.sessions > 0; i++) {
      await sleep(100)
      after = await gauges(httpUrl)
    }
    service.child.kill("SIGTERM")
    const exitCode = await service.exited
    const heapSlope = perMinute(samples, "heapUsedBytes")
    const sessionsSlope = perMinute(samples, "sessions")
    process.stdout.write(JSON.stringify(
      {
        benchmark: "soak",
        cpus: os.cpus().length,
        loadAverage: { before: loadBefore.map((l) => Number(l.toFixed(2))), after: os.loadavg().map((l) => Number(l.toFixed(2))) },
        settings: { minutes, sampleSeconds, watchers, fleetWatchers, churnPerSecond, pixelsPerSecond },
        robots: Object.fromEntries(load.robots),
        load: load.stats,
        rpcOutcomes: outcomes,
        idleBeforeLoad: idle,
        afterLoad: after,
        slopesPerMinute: {
          heapUsedBytes: heapSlope,
          heapFloorBytes: perMinute(heapFloor(samples), "heapUsedBytes"),
          residentBytes: perMinute(samples, "residentBytes"),
          sessions: sessionsSlope,
          actors: perMinute(samples, "actors")
        },
        logs: { ...service.logs, exitCode },
        samples
      },
      null,
      2
    ) + "\n")
  } finally {
    if (service && service.child.exitCode === null) service.child.kill("SIGKILL")
    fs.rmSync(dataDir, { recursive: true, force: true })
    clearTimeout(watchdog)
  }
}

void main()
