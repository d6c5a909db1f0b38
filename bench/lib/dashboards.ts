/**
 * The dashboard side of the ingest benchmark, run as a child process: `sessions` WebSockets on
 * `fleetvisor.v1.msgpack` (the typed client's default), each subscribed to the whole fleet
 * (`FleetSubscribe`), as the fleet page does. Every session counts its frames and bytes; the first `probes` of them also parse each
 * frame and take, for every robot in it, the time from the robot's message (`updatedAt`, the
 * AGV's header timestamp) to the frame's arrival, on the wall clock both processes share
 * (`performance.timeOrigin + performance.now()`, sub-millisecond). Parsing a thousand robots 30
 * times a second is real work, so only the probes do it.
 *
 * Requests over IPC: `{ op: "open" }` → once every session has its snapshot; `{ op: "reset" }`
 * starts a measurement window; `{ op: "report" }` answers with the window's figures;
 * `{ op: "close" }` closes every session.
 */
import { Packr, Unpackr } from "msgpackr"
import { performance } from "node:perf_hooks"
import { WebSocket } from "ws"

const [url, sessionCount, probeCount] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])]

/** Latencies in 0.1 ms buckets up to 10 s; the last bucket holds anything later. */
const bucketMs = 0.1
const histogram = new Float64Array(100_001)
let samples = 0
let maxMs = 0
let frames = 0
let bytes = 0

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
    let snapshot = false
    socket.once("error", reject)
    socket.once("open", () => {
      socket.send(subscribe)
    })
    socket.on("message", (data: Buffer) => {
      const arrived = now()
      frames++
      bytes += data.length
      if (!snapshot) {
        snapshot = true
        resolve()
        return
      }
      if (!probe) return
      for (const frame of unpackr.unpackMultiple(data) as Array<ChunkFrame>) {
        if (frame._tag !== "Chunk" || frame.values === undefined) continue
        for (const value of frame.values) {
          if (value._tag !== "FleetUpdate") continue
          for (const robot of value.robots) {
            if (robot.updatedAt !== undefined) record(arrived - robot.updatedAt)
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
}

let windowStarted = performance.now()
let cpu = process.cpuUsage()

process.on("message", (message: { op: "open" | "reset" | "report" | "close" }) => {
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
        cpuMs: Math.round((used.user + used.system) / 1000)
      })
      return
    }
    case "close":
      for (const socket of sockets) socket.close(1000)
      process.send!({})
      return
  }
})
process.on("disconnect", () => process.exit(0))
