/**
 * Sessions of the real gateway beside a plain `ws` server, in the same run, on 127.0.0.1:
 * heap per idle session, churn, and the delivery latency of 30 Hz updates.
 *
 *   npm run bench:sessions      → one JSON object on stdout (one to three minutes)
 *
 * `SESSIONS_ONLY=churn,idle,latency` picks figures; `SESSIONS_IDLE`, `SESSIONS_CHURN` and
 * `SESSIONS_REPETITIONS` scale them down for a quick look; `BENCH_VERBOSE=1` logs the steps.
 * The whole run gives up (exit 1) after 230 s.
 *
 * Each server runs in its own child process with `--expose-gc`: fleetvisor is the service of
 * `src/main.ts` (`Main.start`, as `test/http` starts it: port 0, a temp SQLite file, a 64×64
 * canvas, `FLEET=off` so that no demo fleet runs beside the gateway), the baseline a `WebSocketServer` that accepts the same subprotocol and ignores what
 * it receives. The clients of each server are in another child process, so their heap never
 * counts. Heap figures are `heapUsed` after forced full collections.
 *
 * 1. Churn: 10,000 connects and disconnects in waves of `churnWave` (half closed cleanly, half
 *    `terminate()`d), then wait until no session is left and collect: the heap against its value
 *    before the first connect, and the sessions left in the tree (`countChildren`), the registry
 *    and the bridge's client table.
 * 2. Heap per idle session: 10,000 sockets opened and left idle; (heap after − heap before) / 10,000.
 * 3. Latency: 1,000 sessions joined to the canvas (`CanvasJoin`), 30 frames a second published on
 *    the canvas hub (the plain server sends the same bytes to every socket); each frame's `seq`
 *    says when it was published, and the clients stamp what they receive with the same
 *    monotonic clock (`process.hrtime`, system-wide on Linux). Phases alternate between the two
 *    servers; the figure is the p99 over every delivery of every phase.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import { WebSocket, WebSocketServer } from "ws"
import * as PubSub from "../src/actors/PubSub.js"
import * as Registry from "../src/actors/Registry.js"
import { topic } from "../src/apps/canvas/Canvas.js"
import { CanvasFrame } from "../src/apps/canvas/CanvasFrame.js"
import * as Gateway from "../src/http/Gateway.js"
import { packPixels, Updates } from "../src/protocol/CanvasRpcs.js"
import * as SharedFrame from "../src/protocol/SharedFrame.js"
import * as Subprotocol from "../src/protocol/Subprotocol.js"
import * as WireCodec from "../src/protocol/WireCodec.js"
import * as DynamicSupervisor from "../src/supervisors/DynamicSupervisor.js"
import * as TestService from "../test/http/support/TestService.js"
import { type Child, heapAfterGc, spawnChild } from "./lib/childProcess.js"
import { seqOf } from "./lib/updatesSeq.js"

const idleSessions = Number(process.env.SESSIONS_IDLE ?? 10_000)
const churnTotal = Number(process.env.SESSIONS_CHURN ?? 10_000)
const churnWave = 500
const latencySessions = 1_000
const hz = 30
const phaseSeconds = 2
const repetitions = Number(process.env.SESSIONS_REPETITIONS ?? 5)
const pixelsPerFrame = 10
const connectConcurrency = 250
const deadlineMs = 230_000
/** Which figures to measure (all by default): `churn`, `idle`, `latency`, comma-separated. */
const only = new Set((process.env.SESSIONS_ONLY ?? "churn,idle,latency").split(","))

type Kind = "ws" | "fleetvisor"

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const nowMicros = () => Number(process.hrtime.bigint()) / 1000
const updatesOf = (seq: number) =>
  Updates.make({
    seq,
    pixels: packPixels(Array.from({ length: pixelsPerFrame }, (_, i) => ({ x: (seq + i) % 64, y: i, color: seq % 16 })))
  })

// ---------------------------------------------------------------------------------------------
// IPC between the parent and its children (advanced serialization: typed arrays pass as such).

type ToServer =
  | { readonly _tag: "Heap" }
  | { readonly _tag: "Sessions" }
  | { readonly _tag: "Publish"; readonly firstSeq: number; readonly frames: number }
type FromServer =
  | { readonly _tag: "Ready"; readonly url: string }
  | { readonly _tag: "Heap"; readonly heapUsed: number }
  | { readonly _tag: "Sessions"; readonly tree: number; readonly registry: number; readonly clients: number }
  | { readonly _tag: "Published"; readonly times: Float64Array }

type ToClients =
  | { readonly _tag: "Open"; readonly count: number; readonly join: boolean }
  | { readonly _tag: "CloseAll" }
  | { readonly _tag: "Churn"; readonly total: number; readonly wave: number }
  | { readonly _tag: "Collect" }
type FromClients =
  | { readonly _tag: "Done" }
  | { readonly _tag: "Collected"; readonly received: Float64Array }

// ---------------------------------------------------------------------------------------------
// The server child.

interface Server {
  readonly url: string
  readonly sessions: () => Promise<Omit<Extract<FromServer, { _tag: "Sessions" }>, "_tag">>
  readonly publish: (seq: number) => void
}

const plainServer = async (): Promise<Server> => {
  const server = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has(Subprotocol.v1MsgPack.name) ? Subprotocol.v1MsgPack.name : false)
  })
  server.on("connection", (socket) => {
    socket.on("message", () => {})
    socket.on("error", () => {})
  })
  await new Promise((resolve) => server.once("listening", resolve))
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`,
    sessions: async () => ({ tree: server.clients.size, registry: server.clients.size, clients: server.clients.size }),
    publish: (seq) => {
      const frame = SharedFrame.chunkFrame(new CanvasFrame(updatesOf(seq)).rpc, "msgpack", "1")
      for (const socket of server.clients) socket.send(frame)
    }
  }
}

const fleetvisorServer = async (): Promise<Server> => {
  const scope = Effect.runSync(Scope.make())
  process.once("disconnect", () => void Effect.runPromise(Scope.close(scope, Exit.void)))
  const service = await Effect.runPromise(Scope.extend(TestService.start({ MAX_CONNECTIONS: "20000", FLEET: "off" }), scope))
  const canvas = Option.getOrThrow(service.canvas)
  return {
    url: TestService.wsUrl(service),
    sessions: async () => {
      const tree = await Option.match(Gateway.sessionsOf(service.registries), {
        onNone: () => Promise.resolve(-1),
        onSome: (ref) => Effect.runPromise(Effect.map(DynamicSupervisor.countChildren(ref), (counts) => counts.active))
      })
      return {
        tree,
        registry: Registry.count(service.registries.sessions),
        clients: Registry.count(service.registries.byAddress)
      }
    },
    publish: (seq) => Effect.runSync(PubSub.broadcast(canvas.hub, topic, new CanvasFrame(updatesOf(seq))))
  }
}

const runServer = async (kind: Kind) => {
  process.once("disconnect", () => setTimeout(() => process.exit(0), 2000).unref())
  const server = kind === "ws" ? await plainServer() : await fleetvisorServer()
  const send = (message: FromServer) => process.send!(message)
  process.on("message", async (message: ToServer) => {
    switch (message._tag) {
      case "Heap":
        return send({ _tag: "Heap", heapUsed: await heapAfterGc() })
      case "Sessions":
        return send({ _tag: "Sessions", ...(await server.sessions()) })
      case "Publish": {
        const times = new Float64Array(message.frames)
        const start = performance.now()
        for (let n = 0; n < message.frames; n++) {
          const wait = start + (n * 1000) / hz - performance.now()
          if (wait > 0) await sleep(wait)
          times[n] = nowMicros()
          server.publish(message.firstSeq + n)
        }
        return send({ _tag: "Published", times })
      }
    }
  })
  send({ _tag: "Ready", url: server.url })
}

// ---------------------------------------------------------------------------------------------
// The clients child.

const runClients = (url: string) => {
  process.once("disconnect", () => process.exit(0))
  const join = WireCodec.msgpack.encode({ _tag: "Request", id: "1", tag: "CanvasJoin", payload: {}, headers: [] })
  let sockets: Array<WebSocket> = []
  let received = new Float64Array(1 << 20)
  let receivedLength = 0
  const record = (seq: number, at: number) => {
    if (receivedLength + 2 > received.length) {
      const grown = new Float64Array(received.length * 2)
      grown.set(received)
      received = grown
    }
    received[receivedLength++] = seq
    received[receivedLength++] = at
  }
  const onMessage = (data: Buffer) => {
    const at = nowMicros()
    const seq = seqOf(data)
    if (seq !== undefined) record(seq, at)
  }
  /** Opens one socket; resolves once it is open (and, when joining, has its first frame). */
  const open = (joinCanvas: boolean) =>
    new Promise<WebSocket>((resolve, reject) => {
      const socket = new WebSocket(url, [Subprotocol.v1MsgPack.name], { perMessageDeflate: false })
      socket.once("error", reject)
      socket.once("open", () => {
        socket.on("error", () => {})
        if (!joinCanvas) {
          socket.on("message", onMessage)
          return resolve(socket)
        }
        socket.once("message", () => {
          socket.on("message", onMessage)
          resolve(socket)
        })
        socket.send(join)
      })
    })
  const openMany = async (count: number, joinCanvas: boolean) => {
    const opened: Array<WebSocket> = []
    for (let i = 0; i < count; i += connectConcurrency) {
      opened.push(...(await Promise.all(Array.from({ length: Math.min(connectConcurrency, count - i) }, () => open(joinCanvas)))))
    }
    return opened
  }
  const closed = (socket: WebSocket) =>
    socket.readyState === socket.CLOSED ? Promise.resolve() : new Promise<void>((resolve) => socket.once("close", () => resolve()))
  process.on("message", async (message: ToClients) => {
    switch (message._tag) {
      case "Open":
        sockets.push(...(await openMany(message.count, message.join)))
        break
      case "CloseAll": {
        const all = sockets
        sockets = []
        for (const socket of all) socket.terminate()
        await Promise.all(all.map(closed))
        break
      }
      case "Churn":
        for (let done = 0; done < message.total; done += message.wave) {
          const wave = await openMany(Math.min(message.wave, message.total - done), false)
          wave.forEach((socket, i) => (i % 2 === 0 ? socket.close(1000) : socket.terminate()))
          await Promise.all(wave.map(closed))
        }
        break
      case "Collect": {
        const out = received.slice(0, receivedLength)
        receivedLength = 0
        return process.send!({ _tag: "Collected", received: out } satisfies FromClients)
      }
    }
    process.send!({ _tag: "Done" } satisfies FromClients)
  })
}

// ---------------------------------------------------------------------------------------------
// The parent.

interface Side {
  readonly kind: Kind
  readonly server: Child<ToServer, FromServer>
  readonly clients: Child<ToClients, FromClients>
}

const startSide = async (kind: Kind): Promise<Side> => {
  const server = spawnChild<ToServer, FromServer>(import.meta.filename, ["--server", kind], true)
  const ready = (await server.first) as Extract<FromServer, { _tag: "Ready" }>
  const clients = spawnChild<ToClients, FromClients>(import.meta.filename, ["--clients", ready.url], false)
  return { kind, server, clients }
}

const progress = (line: string) => process.env.BENCH_VERBOSE && process.stderr.write(`${new Date().toISOString()} ${line}\n`)

const heap = async (side: Side) => ((await side.server.request({ _tag: "Heap" })) as Extract<FromServer, { _tag: "Heap" }>).heapUsed
const sessions = async (side: Side) => {
  const { _tag, ...counts } = (await side.server.request({ _tag: "Sessions" })) as Extract<FromServer, { _tag: "Sessions" }>
  return counts
}
/** Waits (up to 20 s) until the server counts `expected` sessions everywhere; returns the last counts. */
const settle = async (side: Side, expected: number) => {
  const until = Date.now() + 20_000
  for (;;) {
    const counts = await sessions(side)
    if ((counts.tree === expected && counts.registry === expected && counts.clients === expected) || Date.now() > until) {
      return counts
    }
    await sleep(50)
  }
}

const churn = async (side: Side) => {
  await settle(side, 0)
  const before = await heap(side)
  const started = performance.now()
  await side.clients.request({ _tag: "Churn", total: churnTotal, wave: churnWave })
  const seconds = (performance.now() - started) / 1000
  const left = await settle(side, 0)
  const after = await heap(side)
  return {
    connects: churnTotal,
    seconds: Number(seconds.toFixed(2)),
    heapBeforeBytes: before,
    heapAfterBytes: after,
    heapGrowth: Number((after / before - 1).toFixed(4)),
    left
  }
}

const idleHeap = async (side: Side) => {
  const before = await heap(side)
  await side.clients.request({ _tag: "Open", count: idleSessions, join: false })
  const counts = await settle(side, idleSessions)
  const after = await heap(side)
  await side.clients.request({ _tag: "CloseAll" })
  await settle(side, 0)
  return {
    sessions: counts.tree,
    heapBeforeBytes: before,
    heapAfterBytes: after,
    bytesPerSession: Math.round((after - before) / idleSessions)
  }
}

interface Latencies {
  readonly micros: Array<number>
  readonly expected: number
}

const latencyPhase = async (side: Side, firstSeq: number): Promise<Latencies> => {
  const frames = phaseSeconds * hz
  const { times } = (await side.server.request({ _tag: "Publish", firstSeq, frames })) as Extract<
    FromServer,
    { _tag: "Published" }
  >
  await sleep(300)
  const { received } = (await side.clients.request({ _tag: "Collect" })) as Extract<FromClients, { _tag: "Collected" }>
  const micros: Array<number> = []
  for (let i = 0; i < received.length; i += 2) {
    const n = received[i] - firstSeq
    if (n >= 0 && n < frames) micros.push(received[i + 1] - times[n])
  }
  return { micros, expected: frames * latencySessions }
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
const ms = (micros: number) => Number((micros / 1000).toFixed(3))

const summarize = (phases: ReadonlyArray<Latencies>) => {
  const all = phases.flatMap((phase) => phase.micros).sort((a, b) => a - b)
  const p99s = phases.map((phase) => percentile([...phase.micros].sort((a, b) => a - b), 99))
  return {
    deliveries: all.length,
    lost: phases.reduce((sum, phase) => sum + phase.expected - phase.micros.length, 0),
    p50Ms: ms(percentile(all, 50)),
    p99Ms: ms(percentile(all, 99)),
    maxMs: ms(all[all.length - 1] ?? NaN),
    p99MsByPhase: p99s.map(ms)
  }
}

/** Latency phases on both sides, alternating which goes first, after one uncounted phase each. */
const latency = async (ws: Side, ours: Side) => {
  await Promise.all([
    ws.clients.request({ _tag: "Open", count: latencySessions, join: false }),
    ours.clients.request({ _tag: "Open", count: latencySessions, join: true })
  ])
  await Promise.all([settle(ws, latencySessions), settle(ours, latencySessions)])
  let seq = 1
  const phaseOf = async (side: Side) => {
    const phase = await latencyPhase(side, seq)
    seq += phaseSeconds * hz
    return phase
  }
  await phaseOf(ws)
  await phaseOf(ours)
  const latencyWs: Array<Latencies> = []
  const latencyOurs: Array<Latencies> = []
  for (let i = 0; i < repetitions; i++) {
    for (const side of i % 2 === 0 ? [ws, ours] : [ours, ws]) {
      ;(side === ws ? latencyWs : latencyOurs).push(await phaseOf(side))
    }
  }
  await Promise.all([ws.clients.request({ _tag: "CloseAll" }), ours.clients.request({ _tag: "CloseAll" })])
  return { ws: summarize(latencyWs), fleetvisor: summarize(latencyOurs) }
}

const ratio = (a: number, b: number) => Number((a / b).toFixed(3))
const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

const main = async () => {
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench/sessions: not done after ${deadlineMs / 1000} s, giving up\n`)
    process.exit(1)
  }, deadlineMs)
  const loadBefore = os.loadavg()
  const [ws, ours] = await Promise.all([startSide("ws"), startSide("fleetvisor")])
  try {
    progress("churn")
    const churnWs = only.has("churn") ? await churn(ws) : undefined
    const churnOurs = only.has("churn") ? await churn(ours) : undefined
    progress("idle heap")
    const idleWs = only.has("idle") ? await idleHeap(ws) : undefined
    const idleOurs = only.has("idle") ? await idleHeap(ours) : undefined
    progress("latency")
    const delivery = only.has("latency") ? await latency(ws, ours) : undefined
    const idleRatio = idleOurs && idleWs && ratio(idleOurs.bytesPerSession, idleWs.bytesPerSession)
    const latencyRatio = delivery && ratio(delivery.fleetvisor.p99Ms, delivery.ws.p99Ms)
    process.stdout.write(JSON.stringify(
      {
        benchmark: "gateway sessions",
        cpus: os.cpus().length,
        loadAverage: { before: loadBefore.map((l) => Number(l.toFixed(2))), after: os.loadavg().map((l) => Number(l.toFixed(2))) },
        idleHeap: {
          sessions: idleSessions,
          ws: idleWs,
          fleetvisor: idleOurs,
          ratio: idleRatio,
          target: 2,
          met: idleRatio !== undefined && idleRatio <= 2
        },
        churn: {
          connects: churnTotal,
          wave: churnWave,
          ws: churnWs,
          fleetvisor: churnOurs,
          target: { heapGrowth: 0.1, left: 0 },
          met: churnOurs !== undefined && churnOurs.heapGrowth <= 0.1 && churnOurs.left.tree === 0 &&
            churnOurs.left.registry === 0 && churnOurs.left.clients === 0
        },
        latency: delivery && {
          sessions: latencySessions,
          hz,
          phaseSeconds,
          repetitions,
          frameBytes: (SharedFrame.chunkFrame(new CanvasFrame(updatesOf(1)).rpc, "msgpack", "1") as Uint8Array).length,
          ws: delivery.ws,
          fleetvisor: delivery.fleetvisor,
          ratio: latencyRatio,
          // Phase by phase (each beside the other side's phase of the same round): less exposed to a load burst.
          medianPhaseRatio: ratio(
            median(delivery.fleetvisor.p99MsByPhase.map((p99, i) => p99 / delivery.ws.p99MsByPhase[i])),
            1
          ),
          target: 1.1,
          met: latencyRatio !== undefined && latencyRatio <= 1.1
        }
      },
      null,
      2
    ) + "\n")
  } finally {
    for (const side of [ws, ours]) {
      side.clients.kill()
      side.server.kill()
    }
    clearTimeout(watchdog)
  }
}

const role = process.argv.indexOf("--server")
if (role !== -1) void runServer(process.argv[role + 1] as Kind)
else if (process.argv.includes("--clients")) runClients(process.argv[process.argv.indexOf("--clients") + 1])
else void main()
