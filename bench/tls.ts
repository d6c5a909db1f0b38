/**
 * What TLS costs a session: the `Ping` RPC's round trip over `ws://` and over `wss://`
 * (`TLS_CERT_FILE`, an EC P-256 certificate made with openssl), and the time to open a session
 * (TCP, TLS handshake, upgrade, first `Ping`), side by side in one run: two services in this
 * process, the pings of both interleaved so that both see the same machine.
 *
 *   npx tsx bench/tls.ts      → one JSON object on stdout
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Socket from "@effect/platform/Socket"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { WebSocket } from "ws"
import * as FleetvisorClient from "../src/client/FleetvisorClient.js"
import * as ServiceConfig from "../src/http/ServiceConfig.js"
import * as Main from "../src/main.js"
import { makeCa } from "../test/http/support/TlsCertificates.js"
import * as percentiles from "./lib/percentiles.js"

const pings = 500
const warmup = 50
const opens = 50

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-bench-tls-"))
const ca = makeCa(dir)
const certificate = ca.issue("server")

const service = (name: string, env: Record<string, string>) =>
  Effect.gen(function*() {
    const dataDir = path.join(dir, name)
    fs.mkdirSync(dataDir)
    const loaded = ServiceConfig.load(new Map(), { PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir, ...env })
    if (Either.isLeft(loaded)) throw new Error(loaded.left.join("; "))
    const started = yield* Main.start(loaded.right, Option.none())
    yield* Effect.addFinalizer(() => Effect.ignore(started.shutdown))
    return started
  })

const trusting = Layer.succeed(
  Socket.WebSocketConstructor,
  (url, protocols) => new WebSocket(url, protocols, { ca: ca.ca }) as unknown as globalThis.WebSocket
)

const open = (url: string) =>
  Effect.gen(function*() {
    const client = yield* FleetvisorClient.make({ url, wire: "msgpack", disableTracing: true })
    yield* client.ready
    return client
  }).pipe(Effect.provide(url.startsWith("wss") ? trusting : NodeSocket.layerWebSocketConstructor))

const elapsed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = performance.now()
    yield* effect
    return performance.now() - start
  })

const program = Effect.gen(function*() {
  const plain = yield* service("plain", {})
  const secure = yield* service("tls", { TLS_CERT_FILE: certificate.certFile, TLS_KEY_FILE: certificate.keyFile })
  const urls = { ws: `${plain.url.replace(/^http/, "ws")}/ws`, wss: `${secure.url.replace(/^http/, "ws")}/ws` }
  const clients = { ws: yield* open(urls.ws), wss: yield* open(urls.wss) }
  const rtt = { ws: [] as Array<number>, wss: [] as Array<number> }
  for (let i = 0; i < warmup + pings; i++) {
    for (const scheme of ["ws", "wss"] as const) {
      const ms = yield* elapsed(clients[scheme].rpc.Ping())
      if (i >= warmup) rtt[scheme].push(ms)
    }
  }
  const openMs = { ws: [] as Array<number>, wss: [] as Array<number> }
  for (let i = 0; i < opens; i++) {
    for (const scheme of ["ws", "wss"] as const) {
      openMs[scheme].push(yield* elapsed(Effect.scoped(Effect.flatMap(open(urls[scheme]), (client) => client.rpc.Ping()))))
    }
  }
  return {
    benchmark: "tls",
    node: process.version,
    cpus: os.cpus().length,
    certificate: "EC P-256, TLS 1.3",
    pingRoundTrip: { ws: percentiles.summary(rtt.ws, 3), wss: percentiles.summary(rtt.wss, 3) },
    sessionOpen: { ws: percentiles.summary(openMs.ws, 2), wss: percentiles.summary(openMs.wss, 2) }
  }
})

const result = await Effect.runPromise(
  Effect.scoped(program).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.None)))
)
fs.rmSync(dir, { recursive: true, force: true })
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
process.exit(0)
