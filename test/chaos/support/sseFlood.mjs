// An attacker in a process of its own (so that its work does not run on the service's event
// loop): opens `/stream` clients from several loopback addresses, reads each answer's status
// line and then nothing more, prints one JSON line of what it got, and holds the connections
// until its stdin closes.
//
// node sseFlood.mjs <port> <plan: address=count,address=count,...>
import * as net from "node:net"

const [port, plan] = [Number(process.argv[2]), process.argv[3]]
const sockets = []
const statuses = {}
const accepted = {}

const open = (address) =>
  new Promise((resolve) => {
    let data = ""
    let done = false
    const socket = net.connect({ port, host: "127.0.0.1", localAddress: address })
    sockets.push(socket)
    const finish = (status) => {
      if (done) return
      done = true
      socket.pause()
      socket.removeAllListeners("data")
      statuses[status] = (statuses[status] ?? 0) + 1
      if (status === 200) accepted[address] = (accepted[address] ?? 0) + 1
      else socket.destroy()
      resolve()
    }
    socket.on("connect", () => socket.write(`GET /stream HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`))
    socket.setEncoding("latin1").on("data", (chunk) => {
      data += chunk
      if (data.includes("\r\n\r\n")) finish(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0))
    })
    socket.on("error", () => {})
    socket.on("close", () => finish(0))
    setTimeout(() => finish(-1), 10_000)
  })

for (const entry of plan.split(",")) {
  const [address, count] = entry.split("=")
  for (let i = 0; i < Number(count); i += 25) {
    await Promise.all(Array.from({ length: Math.min(25, Number(count) - i) }, () => open(address)))
  }
}
process.stdout.write(`${JSON.stringify({ statuses, accepted })}\n`)
process.stdin.resume()
process.stdin.on("end", () => {
  for (const socket of sockets) socket.destroy()
  process.exit(0)
})
