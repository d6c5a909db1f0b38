/**
 * The broker-free MQTT replayer, run as a child process (`spawnChild`): a {@link MiniBroker} on
 * 127.0.0.1 and a spare port with `robots` AGVs on it under `prefix` ({@link makeAgvStream}: their
 * retained `connection` ONLINE at once, their `visualization` when told), for measuring a
 * receiver's ingest without a broker and a load generator taking most of a 2-core machine.
 *
 *   spawnChild("bench/lib/replayer.ts", [robots, prefix], true)   → greets with `{ port, url }`
 *
 * Requests over IPC, each answered at once (so they may come while a stream runs):
 * - `{ op: "stream", hz, clients? }` starts streaming every AGV at `hz` to the connections whose
 *   client id starts with `clients` (all by default);
 * - `{ op: "halt" }` stops it and answers with its {@link StreamFigures};
 * - `{ op: "stats" }`: every connection's client id, subscriptions and counts (messages delivered,
 *   dropped, relayed from clients; bytes in and out; bytes unread now), this process' CPU time,
 *   and the clients' publishes by topic (count, last arrival);
 * - `{ op: "arrivals", topic, since }`: the arrival times (epoch ms) of the clients' publishes on
 *   `topic` after `since`, e.g. the `instantActions` of a stop;
 * - `{ op: "close" }` closes the server.
 * It exits when its parent closes the IPC channel.
 */
import { makeAgvStream } from "./agvStream.js"
import { startMiniBroker } from "./miniBroker.js"

/** A request to the replayer. */
export type ReplayerRequest =
  | { readonly op: "stream"; readonly hz: number; readonly clients?: string }
  | { readonly op: "halt" }
  | { readonly op: "stats" }
  | { readonly op: "arrivals"; readonly topic: string; readonly since: number }
  | { readonly op: "close" }

const main = async () => {
  const [robots, prefix] = [Number(process.argv[2]), process.argv[3]]
  const broker = await startMiniBroker()
  const agvs = makeAgvStream(broker, robots, prefix)
  process.on("message", async (request: ReplayerRequest) => {
    switch (request.op) {
      case "stream":
        agvs.start(request.hz, request.clients)
        return process.send!({})
      case "halt":
        return process.send!(agvs.halt() ?? {})
      case "stats": {
        const used = process.cpuUsage()
        return process.send!({
          cpuMs: Math.round((used.user + used.system) / 1000),
          connections: [...broker.connections].map((c) => ({
            clientId: c.clientId,
            protocolVersion: c.protocolVersion,
            filters: [...c.filters.keys()],
            delivered: c.delivered,
            dropped: c.dropped,
            relayed: c.relayed,
            bytesIn: c.bytesIn,
            bytesOut: c.bytesOut,
            unread: c.socket.writableLength
          })),
          received: Object.fromEntries([...broker.arrivals].map(([topic, seen]) => [topic, { count: seen.count, lastAt: seen.at.at(-1) }]))
        })
      }
      case "arrivals":
        return process.send!({ at: (broker.arrivals.get(request.topic)?.at ?? []).filter((at) => at > request.since) })
      case "close":
        agvs.halt()
        await broker.close()
        return process.send!({})
    }
  })
  process.on("disconnect", () => process.exit(0))
  process.send!({ port: broker.port, url: broker.url })
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
