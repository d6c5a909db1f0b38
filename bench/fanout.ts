/**
 * Fan-out of canvas updates to 1,000 sessions at the highest rate, beside a plain `ws` server
 * broadcasting the same bytes, in the same run, on 127.0.0.1.
 *
 *   npx tsx bench/fanout.ts      → one JSON object on stdout
 *
 * fleetvisor: the real service (`Main.start` on a temp directory, as `test/http` starts it), in
 * this process: every session is a session actor of the gateway, joined to the board with
 * `CanvasJoin` over MessagePack, and each published frame goes through the canvas hub (PubSub
 * sink → `ChunkWriter` → the session's socket), encoded once. Baseline: a `ws` server whose
 * publisher encodes the same `Updates` chunk once and calls `send` on every socket. The
 * publisher skips the canvas's tick and SQLite commit, which are not fan-out: it broadcasts
 * frames as fast as the sessions take them, `framesPerTurn` (`FANOUT_FRAMES_PER_TURN`, default
 * 8) before it lets the event loop turn. With more than one, fleetvisor's sessions write the
 * frames of a turn in one system call (`WriteBatch`); with 1, every frame is a plain `send`.
 *
 * Both servers and both sets of sessions (each in a child process that reports how many frames
 * each session received) stay up for the whole run. Each drives the same closed loop: the
 * publisher keeps at most `window` frames ahead of the slowest session. Phases of `phaseSeconds`
 * (after a short warm-up) alternate between the two, `repetitions` times each
 * (`FANOUT_REPETITIONS`, default 12), so a load that comes and goes on a shared machine hits both
 * alike. Figures are medians of deliveries per second (frames received, summed over sessions)
 * and of the publisher's time per delivery (encoding, framing and `send`); `ratio` is the median
 * of the per-pair ratios. The load average is printed too.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { type ChildProcess, fork } from "node:child_process"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import { WebSocket, WebSocketServer } from "ws"
import * as PubSub from "../src/actors/PubSub.js"
import { topic } from "../src/apps/canvas/Canvas.js"
import { CanvasFrame } from "../src/apps/canvas/CanvasFrame.js"
import { packPixels, Updates } from "../src/protocol/CanvasRpcs.js"
import * as SharedFrame from "../src/protocol/SharedFrame.js"
import * as Subprotocol from "../src/protocol/Subprotocol.js"
import * as WireCodec from "../src/protocol/WireCodec.js"
import * as TestService from "../test/http/support/TestService.js"

const sessionCount = 1_000
const window = 16
const warmupSeconds = 0.25
const phaseSeconds = 1
const repetitions = Number(process.env.FANOUT_REPETITIONS ?? 12)
const pixelsPerFrame = 10
/** Frames the publisher broadcasts before it lets the event loop turn (`FANOUT_FRAMES_PER_TURN`). */
const framesPerTurn = Number(process.env.FANOUT_FRAMES_PER_TURN ?? 8)

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

type ToClients =
  | { readonly _tag: "Connect"; readonly url: string; readonly protocol: string; readonly join: Uint8Array | undefined }
  | { readonly _tag: "Close" }
type FromClients =
  | { readonly _tag: "Connected" }
  | { readonly _tag: "Counts"; readonly total: number; readonly min: number }

/** The child process: `sessions` sockets counting the frames they receive, reported every 5 ms. */
const runClients = () => {
  let sockets: Array<WebSocket> = []
  let counts = new Float64Array(0)
  let timer: NodeJS.Timeout | undefined
  const send = (message: FromClients) => process.send!(message)
  process.on("message", async (message: ToClients) => {
    if (message._tag === "Close") {
      clearInterval(timer)
      for (const socket of sockets) socket.terminate()
      return process.exit(0)
    }
    counts = new Float64Array(sessionCount)
    sockets = await Promise.all(Array.from({ length: sessionCount }, (_, i) =>
      new Promise<WebSocket>((resolve, reject) => {
        const socket = new WebSocket(message.url, [message.protocol], { perMessageDeflate: false })
        socket.on("message", () => counts[i]++)
        socket.once("open", () => {
          if (message.join !== undefined) socket.send(Buffer.from(message.join))
          resolve(socket)
        })
        socket.once("error", reject)
      })))
    // Joined sessions get their snapshot first.
    while (message.join !== undefined && counts.some((n) => n === 0)) await sleep(5)
    send({ _tag: "Connected" })
    timer = setInterval(() => {
      let total = 0
      let min = Infinity
      for (const n of counts) {
        total += n
        if (n < min) min = n
      }
      send({ _tag: "Counts", total, min })
    }, 5)
  })
}

/** One server under test: a URL, what a session sends to subscribe, and a publisher. */
interface Target {
  readonly url: string
  readonly protocol: string
  readonly join: Uint8Array | undefined
  /** Broadcasts frame `n` to every session. */
  readonly publish: (n: number) => void
}

const updatesOf = (n: number) =>
  Updates.make({
    seq: n * pixelsPerFrame,
    pixels: packPixels(Array.from({ length: pixelsPerFrame }, (_, i) => ({ x: (n + i) % 64, y: i, color: n % 16 })))
  })

/** What one phase measured. */
interface PhaseResult {
  /** Frames received per second, summed over sessions. */
  readonly deliveriesPerSecond: number
  /** Time the publisher spent handing one frame to one session (encoding, framing, `send`), in µs. */
  readonly publishMicrosPerDelivery: number
}

/** The sessions of one target, in a child process, and the latest counts it reported. */
interface Sessions {
  readonly latest: () => { readonly total: number; readonly min: number }
  /** Resolves at the next report. */
  readonly report: () => Promise<void>
  readonly close: () => Promise<void>
}

/** Opens `sessions` sockets to `target` in a child process; resolves once every one is subscribed. */
const openSessions = async (target: Target): Promise<Sessions> => {
  const child: ChildProcess = fork(import.meta.filename, ["--clients"], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  let latest = { total: 0, min: 0 }
  let waiting: Array<() => void> = []
  const connected = new Promise<void>((resolve) =>
    child.on("message", (message: FromClients) => {
      if (message._tag === "Connected") return resolve()
      latest = message
      const wake = waiting
      waiting = []
      for (const resolve of wake) resolve()
    })
  )
  child.send({ _tag: "Connect", url: target.url, protocol: target.protocol, join: target.join } satisfies ToClients)
  await connected
  const report = () => new Promise<void>((resolve) => waiting.push(resolve))
  await report()
  return {
    latest: () => latest,
    report,
    close: async () => {
      child.send({ _tag: "Close" } satisfies ToClients)
      await new Promise((resolve) => child.once("exit", resolve))
    }
  }
}

/** Drives `target` with the closed loop for a warm-up and a phase, then lets the frames in flight land. */
const phase = async (target: Target, sessions: Sessions): Promise<PhaseResult> => {
  const base = sessions.latest()
  let published = 0
  let publishing = 0
  const run = async (seconds: number) => {
    const until = performance.now() + seconds * 1000
    while (performance.now() < until) {
      if (published - (sessions.latest().min - base.min) < window) {
        const before = performance.now()
        target.publish(published++)
        publishing += performance.now() - before
        if (published % framesPerTurn === 0) await new Promise((resolve) => setImmediate(resolve))
      } else {
        await sessions.report()
      }
    }
  }
  await run(warmupSeconds)
  const startTotal = sessions.latest().total
  const startPublished = published
  publishing = 0
  const started = performance.now()
  await run(phaseSeconds)
  const deliveries = sessions.latest().total - startTotal
  const elapsed = (performance.now() - started) / 1000
  const handedOver = (published - startPublished) * sessionCount
  const drainUntil = performance.now() + 5_000
  while (sessions.latest().min - base.min < published && performance.now() < drainUntil) await sessions.report()
  return { deliveriesPerSecond: deliveries / elapsed, publishMicrosPerDelivery: (publishing * 1000) / handedOver }
}

/** A plain `ws` server that sends every session the same bytes. */
const plainWs = async () => {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false })
  await new Promise((resolve) => server.once("listening", resolve))
  const target: Target = {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`,
    protocol: Subprotocol.v1MsgPack.name,
    join: undefined,
    publish: (n) => {
      const frame = SharedFrame.chunkFrame(new CanvasFrame(updatesOf(n)).rpc, "msgpack", "1")
      for (const socket of server.clients) socket.send(frame)
    }
  }
  return { target, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

/** The real service (`Main.start`, as `test/http` starts it), publishing on its canvas hub. */
const fleetvisor = async () => {
  const scope = Effect.runSync(Scope.make())
  const service = await Effect.runPromise(Scope.extend(TestService.start({ FLEET: "off" }), scope))
  const canvas = Option.getOrThrow(service.canvas)
  const join = WireCodec.msgpack.encode({
    _tag: "Request",
    id: "1",
    tag: "CanvasJoin",
    payload: {},
    headers: []
  }) as Uint8Array
  const target: Target = {
    url: TestService.wsUrl(service),
    protocol: Subprotocol.v1MsgPack.name,
    join,
    publish: (n) => Effect.runSync(PubSub.broadcast(canvas.hub, topic, new CanvasFrame(updatesOf(n))))
  }
  return { target, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

const main = async () => {
  const baseline = await plainWs()
  const server = await fleetvisor()
  const baselineSessions = await openSessions(baseline.target)
  const serverSessions = await openSessions(server.target)
  const ws: Array<PhaseResult> = []
  const ours: Array<PhaseResult> = []
  // Short phases, alternating which goes first: a load that comes and goes hits both alike.
  for (let i = 0; i < repetitions; i++) {
    if (i % 2 === 0) {
      ws.push(await phase(baseline.target, baselineSessions))
      ours.push(await phase(server.target, serverSessions))
    } else {
      ours.push(await phase(server.target, serverSessions))
      ws.push(await phase(baseline.target, baselineSessions))
    }
  }
  await baselineSessions.close()
  await serverSessions.close()
  await baseline.close()
  await server.close()
  const summary = (all: ReadonlyArray<PhaseResult>) => {
    const results = all.filter((r) => r.deliveriesPerSecond > 0)
    return {
      deliveriesPerSecond: Math.round(median(results.map((r) => r.deliveriesPerSecond))),
      publishMicrosPerDelivery: Number(median(results.map((r) => r.publishMicrosPerDelivery)).toFixed(3)),
      runs: all.map((r) => Math.round(r.deliveriesPerSecond))
    }
  }
  const wsSummary = summary(ws)
  const ourSummary = summary(ours)
  process.stdout.write(JSON.stringify(
    {
      benchmark: "canvas fan-out",
      sessions: sessionCount,
      window,
      framesPerTurn,
      phaseSeconds,
      repetitions,
      frameBytes: (SharedFrame.chunkFrame(new CanvasFrame(updatesOf(1)).rpc, "msgpack", "1") as Uint8Array).length,
      cpus: os.cpus().length,
      loadAverage: os.loadavg().map((load) => Number(load.toFixed(2))),
      ws: wsSummary,
      fleetvisor: ourSummary,
      // A phase in which the machine did not schedule the sessions at all says nothing of either server.
      stalledPhases: [...ws, ...ours].filter((r) => r.deliveriesPerSecond === 0).length,
      ratio: Number(median(
        ours.flatMap((r, i) =>
          r.deliveriesPerSecond > 0 && ws[i].deliveriesPerSecond > 0 ? [r.deliveriesPerSecond / ws[i].deliveriesPerSecond] : []
        )
      ).toFixed(3)),
      ratioOfMedians: Number((ourSummary.deliveriesPerSecond / wsSummary.deliveriesPerSecond).toFixed(3)),
      publishCostRatio: Number((wsSummary.publishMicrosPerDelivery / ourSummary.publishMicrosPerDelivery).toFixed(3)),
      target: 0.9
    },
    null,
    2
  ) + "\n")
}

if (process.argv.includes("--clients")) runClients()
else void main()
