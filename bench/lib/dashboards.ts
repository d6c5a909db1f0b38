/**
 * The dashboard side of the ingest benchmark, run as a child process: `sessions` WebSockets on
 * `fleetvisor.v1.msgpack` (the typed client's default), each subscribed to the whole fleet
 * (`FleetSubscribe`), as the fleet page does. Every session counts its frames and bytes; the first `probes` of them also parse each
 * frame and take, for every robot in it, the time from the robot's message (`updatedAt`, the
 * AGV's header timestamp) to the frame's arrival, on the wall clock both processes share
 * (`performance.timeOrigin + performance.now()`, sub-millisecond). Parsing a thousand robots 30
 * times a second is real work, so only the probes do it.
 *
 * The probes also count sequence gaps (a `FleetUpdate` whose tick is not the previous one + 1)
 * and, with a fifth argument `views`, keep each robot's latest status, for the cluster benchmark.
 *
 * Requests over IPC: `{ op: "open" }` → once every session has its snapshot; `{ op: "reset" }`
 * starts a measurement window; `{ op: "report" }` answers with the window's figures;
 * `{ op: "only", robots }` measures latency for those robots alone (absent: every robot);
 * `{ op: "online", since }` answers, for each probe, how many robots it shows online with a
 * message made at `since` (epoch ms) or later; `{ op: "close" }` closes every session.
 */
import { Packr, Unpackr } from "msgpackr"
import { performance } from "node:perf_hooks"
import { WebSocket } from "ws"

const [url, sessionCount, probeCount] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])]
/** Keep each robot's latest status on the probes (a fifth argument `views`), for `online`. */
const keepViews = process.argv[5] === "views"

/** Latencies in 0.1 ms buckets up to 10 s; the last bucket holds anything later. */
const bucketMs = 0.1
const histogram = new Float64Array(100_001)
let samples = 0
let maxMs = 0
let frames = 0
let bytes = 0
let gaps = 0
/** The robots whose latency is measured; undefined: every robot. */
let only: Set<string> | undefined
/** Each probe's robots: latest status and message time. */
const probeViews: Array<Map<string, { status: string; updatedAt: number }>> = []

const now = () => performance.timeOrigin + performance.now()

const record = (ms: number) => {
  const clamped = Math.max(0, ms)
  histogram[Math.min(histogram.length - 1, Math.floor(clamped / bucketMs))]++
  samples++
  if (clamped > maxMs) maxMs = clamped
}

const quantile = (q: number) => {
  const target = q * samples
  let seen = 0
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i]
    if (seen >= target && seen > 0) return Number(((i + 1) * bucketMs).toFixed(1))
  }
  return 0
}

interface RobotItem {
  readonly id: string
  readonly status: string
  readonly updatedAt?: number
}
interface ChunkFrame {
  readonly _tag: string
  readonly values?: ReadonlyArray<{ readonly _tag: string; readonly robots: ReadonlyArray<RobotItem> }>
}

const sockets: Array<WebSocket> = []
// The options of @effect/rpc's MessagePack serialization (src/protocol/WireCodec.ts).
const packr = new Packr({ useRecords: true })
const unpackr = new Unpackr({ useRecords: true })
const subscribe = packr.pack({ _tag: "Request", id: "1", tag: "FleetSubscribe", payload: {}, headers: [] })

const openOne = (index: number) =>
  new Promise<void>((resolve, reject) => {
    const socket = new WebSocket(url, "fleetvisor.v1.msgpack", { perMessageDeflate: false })
    const probe = index < probeCount
    const views = new Map<string, { status: string; updatedAt: number }>()
    if (probe) probeViews.push(views)
    let snapshot = false
    let tick: number | undefined
    socket.once("error", reject)
    socket.once("open", () => {
      socket.send(subscribe)
    })
    socket.on("message", (data: Buffer) => {
      const arrived = now()
      frames++
      bytes += data.length
      const first = !snapshot
      if (first) {
        snapshot = true
        resolve()
      }
      if (!probe) return
      for (const frame of unpackr.unpackMultiple(data) as Array<ChunkFrame>) {
        if (frame._tag !== "Chunk" || frame.values === undefined) continue
        for (const value of frame.values as Array<{ readonly _tag: string; readonly tick?: number; readonly robots: ReadonlyArray<RobotItem> }>) {
          if (value._tag !== "FleetUpdate" && value._tag !== "FleetSnapshot") continue
          if (value.tick !== undefined) {
            if (value._tag === "FleetUpdate" && tick !== undefined && value.tick !== tick + 1) gaps++
            tick = value.tick
          }
          for (const robot of value.robots) {
            if (keepViews) views.set(robot.id, { status: robot.status, updatedAt: robot.updatedAt ?? 0 })
            if (value._tag === "FleetUpdate" && robot.updatedAt !== undefined && (only === undefined || only.has(robot.id))) {
              record(arrived - robot.updatedAt)
            }
          }
        }
      }
    })
    sockets.push(socket)
  })

const openAll = async () => {
  for (let i = 0; i < sessionCount; i += 25) {
    await Promise.all(Array.from({ length: Math.min(25, sessionCount - i) }, (_, k) => openOne(i + k)))
  }
}

const reset = () => {
  histogram.fill(0)
  samples = 0
  maxMs = 0
  frames = 0
  bytes = 0
  gaps = 0
}

let windowStarted = performance.now()
let cpu = process.cpuUsage()

type Request =
  | { readonly op: "open" | "reset" | "report" | "close" }
  | { readonly op: "only"; readonly robots: ReadonlyArray<string> }
  | { readonly op: "online"; readonly since: number }

process.on("message", (message: Request) => {
  switch (message.op) {
    case "open":
      openAll().then(() => process.send!({ open: sockets.length }), (error) => {
        console.error(error)
        process.exit(1)
      })
      return
    case "reset":
      reset()
      windowStarted = performance.now()
      cpu = process.cpuUsage()
      process.send!({})
      return
    case "report": {
      const seconds = (performance.now() - windowStarted) / 1000
      const used = process.cpuUsage(cpu)
      process.send!({
        sessions: sockets.filter((s) => s.readyState === WebSocket.OPEN).length,
        framesPerSecondPerSession: Number((frames / seconds / sockets.length).toFixed(1)),
        megabytesPerSecond: Number((bytes / seconds / 1e6).toFixed(1)),
        latencySamples: samples,
        p50Ms: quantile(0.5),
        p99Ms: quantile(0.99),
        maxMs: Number(maxMs.toFixed(1)),
        sequenceGaps: gaps,
        cpuMs: Math.round((used.user + used.system) / 1000)
      })
      return
    }
    case "only":
      only = new Set(message.robots)
      process.send!({})
      return
    case "online":
      process.send!({
        online: probeViews.map((views) =>
          [...views.values()].filter((view) => view.status === "online" && view.updatedAt >= message.since).length
        )
      })
      return
    case "close":
      for (const socket of sockets) socket.close(1000)
      process.send!({})
      return
  }
})
process.on("disconnect", () => process.exit(0))
