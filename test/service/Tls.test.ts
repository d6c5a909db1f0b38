/**
 * HTTPS and WSS served by the service itself (`TLS_CERT_FILE`, `TLS_KEY_FILE`), with certificates
 * that `openssl` makes in the test's temp folder: every route, `/ws` and the stop channel over TLS;
 * a reload on SIGHUP that new handshakes see while open sessions stay; bad settings refused.
 */
import * as Socket from "@effect/platform/Socket"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import * as os from "node:os"
import * as path from "node:path"
import * as tls from "node:tls"
import { chromium } from "playwright-core"
import { WebSocket } from "ws"
import * as FleetvisorClient from "../../src/client/FleetvisorClient.js"
import * as ServiceConfig from "../../src/http/ServiceConfig.js"
import * as TlsFiles from "../../src/http/TlsFiles.js"
import * as FleetProbe from "../links/vda5050/support/FleetProbe.js"
import { makeCa } from "../http/support/TlsCertificates.js"
import * as FleetNode from "./support/FleetNode.js"
import { root, startProcess } from "./support/ServiceProcess.js"

/** A temp folder with a CA in it, removed with the scope. */
const testCa = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-tls-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
).pipe(Effect.map((dir) => ({ dir, ...makeCa(dir) })))

/** The `ws` constructor, trusting the test CA, for the typed client. */
const trusting = (ca: string) =>
  Layer.succeed(
    Socket.WebSocketConstructor,
    (url, protocols) => new WebSocket(url, protocols, { ca }) as unknown as globalThis.WebSocket
  )

/** A typed client over `url`, trusting `ca`, open; it closes with the scope. */
const client = (url: string, ca: string) =>
  Effect.gen(function*() {
    const client = yield* FleetvisorClient.make({ url, wire: "json", disableTracing: true })
    yield* client.ready
    return client
  }).pipe(Effect.provide(trusting(ca)))

/** GET over https trusting `ca`: status and body. */
const getHttps = (url: string, ca: string) =>
  Effect.promise(() =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      https.get(url, { ca }, (response) => {
        let body = ""
        response.setEncoding("utf8").on("data", (chunk) => (body += chunk)).on("end", () =>
          resolve({ status: response.statusCode ?? 0, body }))
      }).on("error", reject)
    })
  )

/** What a plain-HTTP GET to a TLS port gets: never an HTTP answer. */
const getPlain = (url: string) =>
  Effect.promise(() =>
    new Promise<string>((resolve) => {
      const request = http.get(url, (response) => resolve(`answered ${response.statusCode}`))
      request.setTimeout(3_000, () => request.destroy(new Error("timed out")))
      request.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
    })
  )

/** The SHA-256 fingerprint of the certificate a new TLS connection to `port` gets. */
const servedFingerprint = (port: number, ca: string) =>
  Effect.promise(() =>
    new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port, ca, servername: "localhost" }, () => {
        resolve(socket.getPeerX509Certificate()!.fingerprint256)
        socket.end()
      })
      socket.on("error", reject)
    })
  )

/** A stop channel client over `wss://`, open; it closes with the scope. */
const stopClient = (url: string, ca: string) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<WebSocket>((resolve, reject) => {
        const socket = new WebSocket(url, "fleetvisor.stop.v1", { ca })
        socket.once("open", () => resolve(socket)).once("error", reject)
      })
    ),
    (socket) => Effect.sync(() => socket.close())
  ).pipe(Effect.map((socket) => ({
    socket,
    ask: (frame: unknown) =>
      Effect.promise(() =>
        new Promise<unknown>((resolve) => {
          socket.once("message", (data) => resolve(JSON.parse(data.toString())))
          socket.send(JSON.stringify(frame))
        })
      )
  })))

/** Whether a plain `ws://` upgrade to `port` opens (it must not on a TLS port). */
const plainUpgrade = (url: string) =>
  Effect.promise(() =>
    new Promise<string>((resolve) => {
      const socket = new WebSocket(url, "fleetvisor.stop.v1", { handshakeTimeout: 3_000 })
      socket.once("open", () => (socket.close(), resolve("open")))
      socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
    })
  )

const pause = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

describe("TLS served by the service", () => {
  it("takes both files or neither, and says which is missing", () => {
    expect(ServiceConfig.load(new Map([["TLS_CERT_FILE", "/etc/fleetvisor/cert.pem"]]), {})).toEqual(
      Either.left(["TLS_KEY_FILE: must be set with TLS_CERT_FILE (set both to serve TLS, or neither)"])
    )
    expect(ServiceConfig.load(new Map(), { TLS_KEY_FILE: "/k.pem" })).toEqual(
      Either.left(["TLS_CERT_FILE: must be set with TLS_KEY_FILE (set both to serve TLS, or neither)"])
    )
    const both = ServiceConfig.load(new Map(), { TLS_CERT_FILE: "/c.pem", TLS_KEY_FILE: "/k.pem" })
    expect(Either.map(both, (config) => config.tls)).toEqual(Either.right(Option.some({ certFile: "/c.pem", keyFile: "/k.pem" })))
    expect(Either.map(ServiceConfig.load(new Map(), {}), (config) => config.tls)).toEqual(Either.right(Option.none()))
  })

  it.scoped("refuses files that cannot be read or are not a pair, and a reload of such keeps the pair in use", () =>
    Effect.gen(function*() {
      const { dir, issue } = yield* testCa
      const a = issue("a")
      const b = issue("b")
      const missing = yield* Effect.flip(TlsFiles.read({ certFile: path.join(dir, "none.crt"), keyFile: a.keyFile }))
      expect(missing.message).toMatch(/^cannot read TLS_CERT_FILE .*none\.crt: ENOENT$/)
      const mismatched = yield* Effect.flip(TlsFiles.read({ certFile: a.certFile, keyFile: b.keyFile }))
      expect(mismatched.message).toMatch(/are not a PEM certificate and its key: the key is not the certificate's$/)
      fs.writeFileSync(path.join(dir, "garbage.crt"), "not a certificate\n")
      yield* Effect.flip(TlsFiles.read({ certFile: path.join(dir, "garbage.crt"), keyFile: a.keyFile }))

      const files = { certFile: path.join(dir, "live.crt"), keyFile: path.join(dir, "live.key") }
      fs.copyFileSync(a.certFile, files.certFile)
      fs.copyFileSync(a.keyFile, files.keyFile)
      const certificate = yield* TlsFiles.make(files)
      const seen: Array<string> = []
      certificate.subscribe((pair) => seen.push(pair.fingerprint256))
      fs.copyFileSync(b.certFile, files.certFile) // the key is still a's
      yield* Effect.flip(certificate.reload)
      expect(certificate.current().fingerprint256).toBe(a.fingerprint256)
      fs.copyFileSync(b.keyFile, files.keyFile)
      yield* certificate.reload
      expect(certificate.current().fingerprint256).toBe(b.fingerprint256)
      expect(seen).toEqual([b.fingerprint256])
    }))

  it.scopedLive("serves every route, /ws and the stop channel over TLS; plain HTTP and WS get nothing; the stop channel stops an AGV over WSS", () =>
    Effect.gen(function*() {
      const { ca, issue } = yield* testCa
      const server = issue("server")
      const node = yield* FleetNode.start({
        arms: 0,
        agvs: 1,
        env: { TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: server.keyFile, FLEET_STOP_PORT: "0" }
      })
      const { port } = node.service.address
      expect(node.service.url).toBe(`https://127.0.0.1:${port}`)

      expect(yield* getHttps(`https://127.0.0.1:${port}/healthz`, ca)).toMatchObject({ status: 200 })
      expect(yield* getHttps(`https://localhost:${port}/readyz`, ca)).toMatchObject({ status: 200 })
      expect(yield* servedFingerprint(port, ca)).toBe(server.fingerprint256)
      // Not trusted without the CA.
      const untrusted = yield* Effect.flip(Effect.tryPromise(() =>
        new Promise((resolve, reject) => https.get(`https://127.0.0.1:${port}/healthz`, resolve).on("error", reject))
      ))
      expect(String((untrusted.cause as NodeJS.ErrnoException).code)).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED/)
      // Plain HTTP to the TLS port: the connection ends without an HTTP answer.
      expect(yield* getPlain(`http://127.0.0.1:${port}/healthz`)).not.toMatch(/^answered/)

      // The typed client (protocol v1) over wss:// pings.
      const rpc = yield* client(`wss://127.0.0.1:${port}/ws`, ca)
      yield* rpc.rpc.Ping()
      const time = yield* rpc.rpc.ServerTime()
      expect(time.now).toBeDefined()

      // The stop channel: its port, from the page's endpoint over https, serves WSS only.
      const found = yield* getHttps(`https://127.0.0.1:${port}/fleet/stop-channel`, ca)
      const stopPort = (JSON.parse(found.body) as { port: number }).port
      expect(stopPort).toBe(node.fleet.stopChannel?.port())
      expect(yield* servedFingerprint(stopPort, ca)).toBe(server.fingerprint256)
      expect(yield* plainUpgrade(`ws://127.0.0.1:${stopPort}/`)).not.toBe("open")
      const agv = node.agvs[0]
      const stop = yield* stopClient(`wss://127.0.0.1:${stopPort}/`, ca)
      expect(yield* stop.ask({ id: 1, robot: agv })).toEqual({
        id: 1,
        ok: true,
        writtenAt: expect.any(Number),
        reached: [agv],
        latchedOnly: []
      })
      expect(node.fleet.latches.get(agv)).toMatchObject({ robot: agv })
      expect(node.fleet.stopChannel?.stats()).toMatchObject({ published: 1, forwarded: 0 })
    }), { timeout: 40_000 })

  it.scopedLive("the dashboard served over https opens its stop channel as wss:// and stops an AGV over it", () =>
    Effect.gen(function*() {
      const { issue } = yield* testCa
      const server = issue("server")
      const node = yield* FleetNode.start({
        arms: 0,
        agvs: 1,
        env: { TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: server.keyFile, FLEET_STOP_PORT: "0" }
      })
      const agv = node.agvs[0]
      const chrome = yield* Effect.acquireRelease(
        Effect.promise(() => chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] })),
        (browser) => Effect.promise(() => browser.close())
      )
      yield* Effect.promise(async () => {
        // The test CA is not the browser's: its errors are ignored, the scheme is what is tested.
        const page = await (await chrome.newContext({ ignoreHTTPSErrors: true })).newPage()
        const sockets: Array<string> = []
        page.on("websocket", (socket) => sockets.push(socket.url()))
        await page.goto(`${node.service.url}/fleet/`)
        await page.waitForFunction(() => document.body.dataset.connection === "Open")
        for (let i = 0; i < 100 && (node.fleet.stopChannel?.stats().connections ?? 0) === 0; i++) await page.waitForTimeout(50)
        expect(node.fleet.stopChannel?.stats().connections).toBe(1)
        expect(sockets).toContain(`wss://127.0.0.1:${node.fleet.stopChannel!.port()}/`)
        expect(sockets.every((url) => url.startsWith("wss://"))).toBe(true)
        await page.waitForSelector(`#robots tr[data-id="${agv}"]`)
        await page.click(`#robots tr[data-id="${agv}"]`)
        await page.waitForSelector("#detail:not([hidden])")
        await page.click("#estop-one")
        await page.waitForFunction((agv) => document.querySelector("#message")?.textContent === `Stopped ${agv}`, agv)
        expect(await page.evaluate(() => document.body.dataset.stopPath)).toBe("channel")
      })
      expect(node.fleet.stopChannel?.stats().published).toBe(1)
    }), { timeout: 60_000 })

  it.scopedLive("on SIGHUP new handshakes on both ports get the new certificate while open WSS sessions stay; a bad pair keeps it", () =>
    Effect.gen(function*() {
      const { ca, dir, issue } = yield* testCa
      const first = issue("first")
      const second = issue("second")
      const files = { certFile: path.join(dir, "live.crt"), keyFile: path.join(dir, "live.key") }
      fs.copyFileSync(first.certFile, files.certFile)
      fs.copyFileSync(first.keyFile, files.keyFile)
      fs.chmodSync(files.keyFile, 0o600)
      const service = yield* Effect.acquireRelease(
        Effect.promise(() =>
          startProcess({
            TLS_CERT_FILE: files.certFile,
            TLS_KEY_FILE: files.keyFile,
            CANVAS: "off",
            FLEET_DEMO: "on",
            FLEET_DEMO_ARMS: "0",
            FLEET_DEMO_AGVS: "1",
            FLEET_MQTT_URL: FleetProbe.MOSQUITTO_URL,
            FLEET_MQTT_PREFIX: `fvtls${process.pid}/v2`,
            FLEET_STOP_PORT: "0"
          })
        ),
        (service) => Effect.promise(() => service.dispose())
      )
      const ready = yield* Effect.promise(() => service.logged(/"message":"ready"/))
      const port = (ready.annotations as { port: number }).port
      expect((ready.annotations as { url: string }).url).toBe(`https://127.0.0.1:${port}/`)
      const stopPort = (JSON.parse((yield* getHttps(`https://127.0.0.1:${port}/fleet/stop-channel`, ca)).body) as {
        port: number
      }).port
      expect(yield* servedFingerprint(port, ca)).toBe(first.fingerprint256)
      expect(yield* servedFingerprint(stopPort, ca)).toBe(first.fingerprint256)

      const session = yield* client(`wss://127.0.0.1:${port}/ws`, ca)
      yield* session.rpc.Ping()
      const stop = yield* stopClient(`wss://127.0.0.1:${stopPort}/`, ca)
      let closed = false
      stop.socket.once("close", () => (closed = true))

      // The new pair is written over the old files (as certbot's deploy hook or a renewal does).
      fs.copyFileSync(second.certFile, files.certFile)
      fs.copyFileSync(second.keyFile, files.keyFile)
      service.child.kill("SIGHUP")
      const reloaded = yield* Effect.promise(() => service.logged(/"message":"TLS certificate reloaded"/))
      expect(reloaded.annotations).toMatchObject({ fingerprint256: second.fingerprint256, subject: "CN=second" })
      // The stop channel's thread gets it by message: give it a moment.
      yield* pause(200)
      expect(yield* servedFingerprint(port, ca)).toBe(second.fingerprint256)
      expect(yield* servedFingerprint(stopPort, ca)).toBe(second.fingerprint256)
      // The sessions opened before are the same connections, and answer.
      yield* session.rpc.Ping()
      expect(yield* stop.ask({ id: "x", robot: "nobody/here" })).toMatchObject({ id: "x", ok: false, error: { _tag: "UnknownRobot" } })
      expect(closed).toBe(false)
      expect(stop.socket.readyState).toBe(WebSocket.OPEN)

      // A certificate without its key: logged in one line, the pair in use stays.
      fs.copyFileSync(first.certFile, files.certFile)
      service.child.kill("SIGHUP")
      const refused = yield* Effect.promise(() => service.logged(/TLS certificate not reloaded/))
      expect(refused.logLevel).toBe("ERROR")
      expect(String(refused.message)).toMatch(/the one in use stays: .*live\.crt and .*live\.key are not a PEM certificate and its key/)
      expect(yield* servedFingerprint(port, ca)).toBe(second.fingerprint256)
      expect(yield* servedFingerprint(stopPort, ca)).toBe(second.fingerprint256)
      yield* session.rpc.Ping()
      expect(service.child.exitCode).toBe(null)
    }), { timeout: 60_000 })

  it.scopedLive("exits 78 with one line when the files are not a certificate and its key", () =>
    Effect.gen(function*() {
      const { issue } = yield* testCa
      const a = issue("a")
      const b = issue("b")
      const exited = yield* Effect.promise(async () => {
        // startProcess waits for "ready", which never comes: watch the child directly.
        const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-tls-bad-"))
        const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
          cwd: root,
          env: { ...process.env, PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir, FLEET: "off", TLS_CERT_FILE: a.certFile, TLS_KEY_FILE: b.keyFile },
          stdio: ["ignore", "ignore", "pipe"]
        })
        let stderr = ""
        child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
        const code = await new Promise<number | null>((resolve) => child.once("exit", resolve))
        fs.rmSync(dataDir, { recursive: true, force: true })
        return { code, stderr }
      })
      expect(exited.code).toBe(78)
      expect(exited.stderr).toMatch(/^fleetvisor: .*a\.crt and .*b\.key are not a PEM certificate and its key: the key is not the certificate's\n$/)
    }), { timeout: 30_000 })
})
