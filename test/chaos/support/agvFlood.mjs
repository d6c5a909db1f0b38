// An attacker on the fleet's broker, in a process of its own: publishes VDA 5050 `connection`
// ONLINE (retained, QoS 1, as the specification has it) for `count` fake manufacturer/serial
// pairs under `prefix`, `perSecond` a second, every 100th with a 60 KB serial number (so a
// 60 KB topic), and keeps itself under half a core (it sleeps whenever its CPU time passes 45 %
// of the wall time). `clear` as the mode removes those retained messages again.
// Prints one JSON line: what it sent, in how long, at what share of a core.
//
//   node test/chaos/support/agvFlood.mjs mqtt://127.0.0.1:1883 uagv/v2 3000 1000 [flood|clear]
import mqtt from "mqtt"

const [url, prefix, countText, perSecondText, mode = "flood"] = process.argv.slice(2)
const count = Number(countText)
const perSecond = Number(perSecondText)
const maxCpu = 0.45

const serialOf = (i) => (i % 100 === 0 ? `long-${i}-${"x".repeat(60_000)}` : `fake-${String(i).padStart(5, "0")}`)
const manufacturerOf = (i) => `mfr-${i % 50}`

const client = await mqtt.connectAsync(url, { clientId: `agv-flood-${process.pid}`, clean: true })
const started = performance.now()
const cpuAtStart = process.cpuUsage()
const cpuSeconds = () => {
  const used = process.cpuUsage(cpuAtStart)
  return (used.user + used.system) / 1e6
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

let bytes = 0
let throttled = 0
const batch = Math.max(1, Math.round(perSecond / 50))
for (let i = 0; i < count; i += batch) {
  const sends = []
  for (let j = i; j < Math.min(count, i + batch); j++) {
    const manufacturer = manufacturerOf(j)
    const serialNumber = serialOf(j)
    const topic = `${prefix}/${manufacturer}/${serialNumber}/connection`
    const payload = mode === "clear"
      ? ""
      : JSON.stringify({
        headerId: 0,
        timestamp: new Date().toISOString(),
        version: "2.0.0",
        manufacturer,
        serialNumber,
        connectionState: "ONLINE"
      })
    bytes += topic.length + payload.length
    sends.push(client.publishAsync(topic, payload, { qos: 1, retain: true }))
  }
  await Promise.all(sends)
  // Paced to `perSecond`, and never past half a core.
  const due = ((i + batch) / perSecond) * 1000
  const wait = due - (performance.now() - started)
  if (wait > 0) await sleep(wait)
  while (cpuSeconds() > maxCpu * ((performance.now() - started) / 1000)) {
    throttled++
    await sleep(10)
  }
}
const seconds = (performance.now() - started) / 1000
await client.endAsync()
process.stdout.write(
  JSON.stringify({ mode, sent: count, seconds: Math.round(seconds * 100) / 100, bytes, cpuShare: Math.round((cpuSeconds() / seconds) * 100) / 100, throttled }) + "\n"
)
