/**
 * The baseline receiver of the replayed ingest benchmark, run as a child process: a plain
 * mqtt.js client (`bench-baseline`) subscribing every AGV under the prefix, parsing each
 * `visualization`'s JSON and following each AGV's headerId: the least a receiver of these
 * messages does, to set beside the service on the same replayer.
 *
 *   spawnChild("bench/lib/plainSubscriber.ts", [url, prefix], false)
 *
 * Requests over IPC: `{ op: "connect" }` → once subscribed; `{ op: "reset" }` starts a window
 * (counts, headerIds followed, CPU time); `{ op: "report" }` answers with the window's figures:
 * visualizations received, headerIds skipped (`gaps`: each AGV's jumps after its first message
 * of the window) and gone backwards, the header timestamp → arrival latency of every 10th
 * message, and this process' CPU time; `{ op: "close" }` disconnects.
 */
import * as mqtt from "mqtt"
import { performance } from "node:perf_hooks"
import { summary } from "./percentiles.js"

const [url, prefix] = [process.argv[2], process.argv[3]]

/** The client id the replayer's streams are aimed at. */
const clientId = "bench-baseline"

const now = () => performance.timeOrigin + performance.now()

let client: mqtt.MqttClient | undefined
let received = 0
let gaps = 0
let backwards = 0
let latencies: Array<number> = []
let lastHeaderId = new Map<string, number>()
let windowStarted = performance.now()
let cpu = process.cpuUsage()

const onMessage = (topic: string, payload: Buffer) => {
  if (!topic.endsWith("/visualization")) return
  const at = now()
  const message = JSON.parse(payload.toString()) as { headerId: number; serialNumber: string; timestamp: string }
  received++
  const last = lastHeaderId.get(message.serialNumber)
  if (last !== undefined) {
    if (message.headerId > last + 1) gaps += message.headerId - last - 1
    else if (message.headerId <= last) backwards++
  }
  lastHeaderId.set(message.serialNumber, message.headerId)
  if (received % 10 === 0) latencies.push(at - Date.parse(message.timestamp))
}

const reset = () => {
  received = 0
  gaps = 0
  backwards = 0
  latencies = []
  lastHeaderId = new Map()
  windowStarted = performance.now()
  cpu = process.cpuUsage()
}

process.on("message", async (message: { op: "connect" | "reset" | "report" | "close" }) => {
  switch (message.op) {
    case "connect":
      client = await mqtt.connectAsync(url, { clientId, reconnectPeriod: 0 })
      client.on("message", onMessage)
      await client.subscribeAsync(`${prefix}/+/+/#`, { qos: 0 })
      return process.send!({})
    case "reset":
      reset()
      return process.send!({})
    case "report": {
      const used = process.cpuUsage(cpu)
      return process.send!({
        seconds: Number(((performance.now() - windowStarted) / 1000).toFixed(2)),
        received,
        gaps,
        backwards,
        latency: summary(latencies),
        cpuMs: Math.round((used.user + used.system) / 1000)
      })
    }
    case "close":
      await client?.endAsync()
      return process.send!({})
  }
})
process.on("disconnect", () => process.exit(0))
