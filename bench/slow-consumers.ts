/**
 * Slow consumers of the canvas: the delivery latency of healthy clients while others stop
 * reading, against phases of the same run without them, on 127.0.0.1.
 *
 *   npm run bench:slow-consumers      → one JSON object on stdout (about two minutes)
 *
 * Knobs: `SLOW_HEALTHY` (1000) healthy clients, `SLOW_SLOW` (100) clients that stop reading,
 * `SLOW_PIXELS_PER_TICK` (100) pixels the painter places per 33 ms, `SLOW_PHASE_SECONDS` (30: past the heartbeat's 15 s + 10 s),
 * `SLOW_REPETITIONS` (2) pairs of phases, `SLOW_BACKLOG` (65536) `CANVAS_CLIENT_BACKLOG` bytes,
 * `SLOW_POLICY` (`disconnect` | `dropping`: `CANVAS_SLOW_CLIENT`), `BENCH_VERBOSE=1` logs the steps.
 * The run gives up (exit 1) after 175 s (or a minute past the phases' length when they are longer).
 *
 * Processes: the service (`src/main.ts` as `test/http` starts it, `CANVAS_COOLDOWN=0`, a 64×64
 * canvas, no rate limit in the way of the painter) in one child with `--expose-gc`; the healthy
 * clients in another; the slow clients in a third; the painter (one WebSocket placing pixels with
 * `CanvasPlace`, 30 ticks a second) in the parent. A sink subscribed first on the canvas hub
 * stamps each `Updates` frame when it is broadcast; the healthy clients stamp it when it arrives
 * (`process.hrtime`, system-wide monotonic on Linux); latency = arrival − broadcast.
 *
 * Phases alternate: `clean` (healthy only) and `slow` (healthy + slow). At the start of a slow
 * phase the slow clients connect, join the canvas and pause their TCP socket (`ws._socket.pause()`);
 * if it sees the server close it, it reconnects at once and pauses again, as a browser tab would
 * (a paused socket rarely sees it); at the end of the phase they are terminated. A paused socket
 * answers no ping either: with the default heartbeat (15 s + 10 s) the session ends by
 * `heartbeat` long before the ~4 MB of loopback kernel buffers fill and `bufferedAmount` (the
 * canvas's `CANVAS_CLIENT_BACKLOG`) comes into play, so phases are 30 s by default. The figure is the p99 over
 * every delivery of every phase of each kind. Heap is `heapUsed` after forced full collections
 * (before, after the last slow phase, at the end with the healthy clients still joined) and the
 * peak `heapUsed` sampled every 250 ms during each kind of phase. How the slow ones were handled
 * comes from `/metrics` (sessions ended and frames dropped, by reason) and the hub's counters.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as os from "node:os"
import { WebSocket } from "ws"
import * as PubSub from "../src/actors/PubSub.js"
import * as Registry from "../src/actors/Registry.js"
import { topic } from "../src/apps/canvas/Canvas.js"
import { CanvasFrame } from "../src/apps/canvas/CanvasFrame.js"
import * as Subprotocol from "../src/protocol/Subprotocol.js"
import * as WireCodec from "../src/protocol/WireCodec.js"
import * as TestService from "../test/http/support/TestService.js"
import { heapAfterGc, spawnChild } from "./lib/childProcess.js"
import { seqOf } from "./lib/updatesSeq.js"

const healthyCount = Number(process.env.SLOW_HEALTHY ?? 1_000)
const slowCount = Number(process.env.SLOW_SLOW ?? 100)
const pixelsPerTick = Number(process.env.SLOW_PIXELS_PER_TICK ?? 100)
const phaseSeconds = Number(process.env.SLOW_PHASE_SECONDS ?? 30)
const repetitions = Number(process.env.SLOW_REPETITIONS ?? 2)
const backlog = process.env.SLOW_BACKLOG ?? "65536"
const policy = process.env.SLOW_POLICY ?? "disconnect"
const hz = 30
const connectConcurrency = 250
// Under three minutes with the defaults; longer phases get their time.
const deadlineMs = Math.max(175_000, (2 * repetitions * (phaseSeconds + 3) + 60) * 1000)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const nowMicros = () => Number(process.hrtime.bigint()) / 1000
const progress = (line: string) => process.env.BENCH_VERBOSE && process.stderr.write(`${new Date().toISOString()} ${line}\n`)

// ---------------------------------------------------------------------------------------------
// IPC between the parent and its children (advanced serialization: typed arrays pass as such).

type ToServer =
  | { readonly _tag: "Heap" }
  | { readonly _tag: "Stamps" }
  | { readonly _tag: "PeakReset" }
  | { readonly _tag: "Hub" }
type FromServer =
  | { readonly _tag: "Ready"; readonly url: string }
  | { readonly _tag: "Heap"; readonly heapUsed: number }
  | {
    readonly _tag: "Stamps"
    readonly stamps: Float64Array
    readonly peakHeapUsed: number
    /** The most and the total bytes the sockets hold unsent now (`bufferedAmount`, beyond the kernel's buffers). */
    readonly buffered: { readonly max: number; readonly total: number }
  }
  | { readonly _tag: "PeakReset" }
  | { readonly _tag: "Hub"; readonly stats: PubSub.Stats }

type ToClients =
  | { readonly _tag: "Open"; readonly count: number }
  | { readonly _tag: "CloseAll" }
  | { readonly _tag: "Collect" }
  | { readonly _tag: "Slow"; readonly count: number }
type FromClients =
  | { readonly _tag: "Done" }
  | { readonly _tag: "Collected"; readonly received: Float64Array; readonly closes: Record<string, number> }

// ---------------------------------------------------------------------------------------------
// The server child.

const runServer = async () => {
  process.once("disconnect", () => setTimeout(() => process.exit(0), 2000).unref())
  const scope = Effect.runSync(Scope.make())
  process.once("disconnect", () => void Effect.runPromise(Scope.close(scope, Exit.void)))
  const service = await Effect.runPromise(Scope.extend(
    TestService.start({
      MAX_CONNECTIONS: "20000",
      CANVAS_COOLDOWN: "0 millis",
      CANVAS_CLIENT_BACKLOG: backlog,
      CANVAS_SLOW_CLIENT: policy,
      RATE_LIMIT_PER_SECOND: "100000",
      RATE_LIMIT_BURST: "100000",
      // The painter keeps a tick's 100 placements in flight until the tick commits.
      MAX_REQUESTS_IN_FLIGHT: "100000",
      FLEET: "off"
    }),
    scope
  ))
  const canvas = Option.getOrThrow(service.canvas)
  let stamps = new Float64Array(1 << 16)
  let stampsLength = 0
  // Subscribed before any client: called first in every broadcast, so the stamp is its start.
  Effect.runSync(PubSub.subscribeSink(canvas.hub, topic, service.root, {
    deliver: (message) => {
      if (!(message instanceof CanvasFrame) || message.event._tag !== "Updates") return
      if (stampsLength + 2 > stamps.length) {
        const grown = new Float64Array(stamps.length * 2)
        grown.set(stamps)
        stamps = grown
      }
      stamps[stampsLength++] = message.seq
      stamps[stampsLength++] = nowMicros()
    },
    backlog: () => 0
  }, { bufferSize: 1, overflow: "dropping" }))
  let peak = 0
  setInterval(() => (peak = Math.max(peak, process.memoryUsage().heapUsed)), 250)
  const send = (message: FromServer) => process.send!(message)
  process.on("message", async (message: ToServer) => {
    switch (message._tag) {
      case "Heap":
        return send({ _tag: "Heap", heapUsed: await heapAfterGc() })
      case "PeakReset":
        peak = 0
        return send({ _tag: "PeakReset" })
      case "Stamps": {
        const out = stamps.slice(0, stampsLength)
        stampsLength = 0
        let max = 0
        let total = 0
        for (const { ref } of Registry.all(service.registries.sessions)) {
          const session = await Effect.runPromise(Effect.either(service.system.getState(ref)))
          if (session._tag === "Left") continue
          const buffered = (session.right as { readonly socket: { readonly bufferedAmount: number } }).socket.bufferedAmount
          max = Math.max(max, buffered)
          total += buffered
        }
        return send({ _tag: "Stamps", stamps: out, peakHeapUsed: peak, buffered: { max, total } })
      }
      case "Hub":
        return send({ _tag: "Hub", stats: Effect.runSync(PubSub.stats(canvas.hub)) })
    }
  })
  send({ _tag: "Ready", url: TestService.wsUrl(service) })
}

// ---------------------------------------------------------------------------------------------
// The client children.

const joinFrame = WireCodec.msgpack.encode({ _tag: "Request", id: "1", tag: "CanvasJoin", payload: {}, headers: [] })

/** Opens a socket joined to the canvas; resolves once its snapshot arrived. */
const openJoined = (url: string, onMessage: (data: Buffer) => void) =>
  new Promise<WebSocket>((resolve, reject) => {
    const socket = new WebSocket(url, [Subprotocol.v1MsgPack.name], { perMessageDeflate: false })
    socket.once("error", reject)
    socket.once("open", () => {
      socket.on("error", () => {})
      socket.once("message", () => {
        socket.on("message", onMessage)
        resolve(socket)
      })
      socket.send(joinFrame)
    })
  })

const closed = (socket: WebSocket) =>
  socket.readyState === socket.CLOSED ? Promise.resolve() : new Promise<void>((resolve) => socket.once("close", () => resolve()))

const runClients = (url: string) => {
  process.once("disconnect", () => process.exit(0))
  let sockets: Array<WebSocket> = []
  let received = new Float64Array(1 << 20)
  let receivedLength = 0
  const closes: Record<string, number> = {}
  let slowRunning = false
  const onMessage = (data: Buffer) => {
    const at = nowMicros()
    const seq = seqOf(data)
    if (seq === undefined) return
    if (receivedLength + 2 > received.length) {
      const grown = new Float64Array(received.length * 2)
      grown.set(received)
      received = grown
    }
    received[receivedLength++] = seq
    received[receivedLength++] = at
  }
  const openMany = async (count: number, open: () => Promise<WebSocket>) => {
    const opened: Array<WebSocket> = []
    for (let i = 0; i < count; i += connectConcurrency) {
      opened.push(...(await Promise.all(Array.from({ length: Math.min(connectConcurrency, count - i) }, open))))
    }
    return opened
  }
  /** A client that stops reading: joined, then its TCP socket paused; reconnects when closed by the server. */
  const openSlow = async (): Promise<WebSocket> => {
    const socket = await openJoined(url, () => {})
    ;(socket as unknown as { _socket: { pause: () => void } })._socket.pause()
    socket.once("close", (code) => {
      if (!slowRunning) return
      closes[code] = (closes[code] ?? 0) + 1
      sockets = sockets.filter((s) => s !== socket)
      void openSlow().then((next) => (slowRunning ? sockets.push(next) : next.terminate()), () => {})
    })
    return socket
  }
  process.on("message", async (message: ToClients) => {
    switch (message._tag) {
      case "Open":
        sockets.push(...(await openMany(message.count, () => openJoined(url, onMessage))))
        break
      case "Slow":
        slowRunning = true
        sockets.push(...(await openMany(message.count, openSlow)))
        break
      case "CloseAll": {
        slowRunning = false
        const all = sockets
        sockets = []
        for (const socket of all) socket.terminate()
        await Promise.all(all.map(closed))
        break
      }
      case "Collect": {
        const out = received.slice(0, receivedLength)
        receivedLength = 0
        const counted = { ...closes }
        for (const key of Object.keys(closes)) delete closes[key]
        return process.send!({ _tag: "Collected", received: out, closes: counted } satisfies FromClients)
      }
    }
    process.send!({ _tag: "Done" } satisfies FromClients)
  })
}

// ---------------------------------------------------------------------------------------------
// The parent: the painter, the phases, the figures.

/** Places `pixelsPerTick` pixels every tick until stopped; counts answers. */
const startPainter = async (url: string) => {
  const socket = new WebSocket(url, [Subprotocol.v1MsgPack.name], { perMessageDeflate: false })
  await new Promise((resolve, reject) => {
    socket.once("open", resolve)
    socket.once("error", reject)
  })
  let answers = 0
  socket.on("message", () => answers++)
  let id = 0
  let sent = 0
  const timer = setInterval(() => {
    for (let i = 0; i < pixelsPerTick; i++) {
      id++
      socket.send(WireCodec.msgpack.encode({
        _tag: "Request",
        id: String(id),
        tag: "CanvasPlace",
        payload: { x: id % 64, y: Math.floor(id / 64) % 64, color: id % 16 },
        headers: []
      }))
      sent++
    }
  }, 1000 / hz)
  return {
    stop: () => {
      clearInterval(timer)
      socket.terminate()
      return { sent, answers }
    }
  }
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
const ms = (micros: number) => Number((micros / 1000).toFixed(3))
const ratio = (a: number, b: number) => Number((a / b).toFixed(3))

/** The counters of `/metrics` whose name is in `names`, keyed `name{labels}`. */
const scrape = async (httpUrl: string, names: ReadonlyArray<string>) => {
  const text = await (await fetch(`${httpUrl}/metrics`)).text()
  const out: Record<string, number> = {}
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue
    const [key, value] = line.split(" ")
    if (names.some((name) => key.startsWith(name))) out[key] = Number(value)
  }
  return out
}
const delta = (after: Record<string, number>, before: Record<string, number>) =>
  Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => v !== 0))

interface Phase {
  readonly micros: Array<number>
  readonly frames: number
  readonly peakHeapUsed: number
  readonly buffered: { readonly max: number; readonly total: number }
}

const main = async () => {
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench/slow-consumers: not done after ${deadlineMs / 1000} s, giving up\n`)
    process.exit(1)
  }, deadlineMs)
  const loadBefore = os.loadavg()
  const server = spawnChild<ToServer, FromServer>(import.meta.filename, ["--server"], true)
  const { url } = (await server.first) as Extract<FromServer, { _tag: "Ready" }>
  const httpUrl = url.replace(/^ws/, "http").replace(/\/ws$/, "")
  const healthy = spawnChild<ToClients, FromClients>(import.meta.filename, ["--clients", url], false)
  const slow = spawnChild<ToClients, FromClients>(import.meta.filename, ["--clients", url], false)
  const metricNames = ["fleetvisor_sessions_ended_total", "fleetvisor_ws_frames_dropped_total"]
  const heap = async () => ((await server.request({ _tag: "Heap" })) as Extract<FromServer, { _tag: "Heap" }>).heapUsed
  const hub = async () => ((await server.request({ _tag: "Hub" })) as Extract<FromServer, { _tag: "Hub" }>).stats
  let painter: Awaited<ReturnType<typeof startPainter>> | undefined
  try {
    progress("open healthy")
    await healthy.request({ _tag: "Open", count: healthyCount })
    const heapBefore = await heap()
    const metricsBefore = await scrape(httpUrl, metricNames)
    const hubBefore = await hub()
    painter = await startPainter(url)
    await sleep(2000)
    await server.request({ _tag: "Stamps" })
    await healthy.request({ _tag: "Collect" })

    const phase = async (withSlow: boolean): Promise<Phase> => {
      progress(withSlow ? "slow phase" : "clean phase")
      await server.request({ _tag: "PeakReset" })
      await server.request({ _tag: "Stamps" })
      await healthy.request({ _tag: "Collect" })
      if (withSlow) await slow.request({ _tag: "Slow", count: slowCount })
      await sleep(phaseSeconds * 1000)
      const { buffered, peakHeapUsed, stamps } = (await server.request({ _tag: "Stamps" })) as Extract<
        FromServer,
        { _tag: "Stamps" }
      >
      // Late frames still count: a delivery is lost only if it has not arrived a second later.
      await sleep(1000)
      const { received } = (await healthy.request({ _tag: "Collect" })) as Extract<FromClients, { _tag: "Collected" }>
      const sentAt = new Map<number, number>()
      for (let i = 0; i < stamps.length; i += 2) sentAt.set(stamps[i], stamps[i + 1])
      const micros: Array<number> = []
      for (let i = 0; i < received.length; i += 2) {
        const at = sentAt.get(received[i])
        if (at !== undefined) micros.push(received[i + 1] - at)
      }
      return { micros, frames: stamps.length / 2, peakHeapUsed, buffered }
    }

    const clean: Array<Phase> = []
    const slowPhases: Array<Phase> = []
    let heapWithSlow = 0
    let slowCloses: Record<string, number> = {}
    for (let i = 0; i < repetitions; i++) {
      for (const withSlow of i % 2 === 0 ? [false, true] : [true, false]) {
        const result = await phase(withSlow)
        ;(withSlow ? slowPhases : clean).push(result)
        if (withSlow) {
          if (i === repetitions - 1) heapWithSlow = await heap()
          const { closes } = (await slow.request({ _tag: "Collect" })) as Extract<FromClients, { _tag: "Collected" }>
          for (const [code, n] of Object.entries(closes)) slowCloses[code] = (slowCloses[code] ?? 0) + n
          await slow.request({ _tag: "CloseAll" })
          await sleep(500)
        }
      }
    }
    const painted = painter.stop()
    painter = undefined
    const hubAfter = await hub()
    const metricsAfter = await scrape(httpUrl, metricNames)
    await sleep(1000)
    // Same clients as `heapBefore`: the healthy ones, still joined.
    const heapEnd = await heap()
    await healthy.request({ _tag: "CloseAll" })

    const summarize = (phases: ReadonlyArray<Phase>) => {
      const all = phases.flatMap((p) => p.micros).sort((a, b) => a - b)
      const frames = phases.reduce((sum, p) => sum + p.frames, 0)
      return {
        frames,
        deliveries: all.length,
        lost: frames * healthyCount - all.length,
        p50Ms: ms(percentile(all, 50)),
        p99Ms: ms(percentile(all, 99)),
        maxMs: ms(all[all.length - 1] ?? NaN),
        p99MsByPhase: phases.map((p) => ms(percentile([...p.micros].sort((a, b) => a - b), 99))),
        peakHeapUsedBytes: Math.max(...phases.map((p) => p.peakHeapUsed)),
        // At the end of each phase: what the server's sockets held unsent beyond the kernel's buffers.
        bufferedAtEndByPhase: phases.map((p) => p.buffered)
      }
    }
    const withoutSlow = summarize(clean)
    const withSlow = summarize(slowPhases)
    const latencyRatio = ratio(withSlow.p99Ms, withoutSlow.p99Ms)
    const heapGrowth = Number((heapEnd / heapBefore - 1).toFixed(4))
    process.stdout.write(JSON.stringify(
      {
        benchmark: "canvas slow consumers",
        cpus: os.cpus().length,
        loadAverage: { before: loadBefore.map((l) => Number(l.toFixed(2))), after: os.loadavg().map((l) => Number(l.toFixed(2))) },
        settings: {
          healthy: healthyCount,
          slow: slowCount,
          hz,
          pixelsPerTick,
          phaseSeconds,
          repetitions,
          canvasClientBacklog: Number(backlog),
          slowClientPolicy: policy
        },
        painter: painted,
        latency: {
          withoutSlow,
          withSlow,
          ratio: latencyRatio,
          target: 1.2,
          met: latencyRatio <= 1.2
        },
        slowClients: {
          closesSeenByClients: slowCloses,
          metrics: delta(metricsAfter, metricsBefore),
          hub: {
            dropped: hubAfter.dropped - hubBefore.dropped,
            disconnected: hubAfter.disconnected - hubBefore.disconnected,
            subscriptionsAtEnd: hubAfter.subscriptions
          }
        },
        heap: {
          beforeBytes: heapBefore,
          afterLastSlowPhaseBytes: heapWithSlow,
          endBytes: heapEnd,
          peakCleanBytes: withoutSlow.peakHeapUsedBytes,
          peakSlowBytes: withSlow.peakHeapUsedBytes,
          growth: heapGrowth,
          target: { growth: 0.1 },
          met: heapGrowth <= 0.1
        }
      },
      null,
      2
    ) + "\n")
  } finally {
    painter?.stop()
    healthy.kill()
    slow.kill()
    server.kill()
    clearTimeout(watchdog)
  }
}

if (process.argv.includes("--server")) void runServer()
else if (process.argv.includes("--clients")) runClients(process.argv[process.argv.indexOf("--clients") + 1])
else void main()
