/**
 * The fleet on a protected broker: a Mosquitto of this file's own (password file,
 * `allow_anonymous false`), with a plain listener, a TLS listener whose server certificate a
 * private CA signed, and a TLS listener that requires a client certificate, every certificate
 * made with `openssl` in a temp folder. The broker connection, the ingest thread, the stop
 * channel's thread and the demo's simulators sign in with the settings; wrong or missing
 * secrets are a status with one clear line, retried, never a crash.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { WebSocket } from "ws"
import { Registry, TestKit } from "../../../src/actors/index.js"
import * as ServiceConfig from "../../../src/http/ServiceConfig.js"
import * as Setting from "../../../src/node/Setting.js"
import * as BrokerSecurity from "../../../src/links/mqtt/BrokerSecurity.js"
import * as MqttConnection from "../../../src/links/mqtt/MqttConnection.js"
import * as MqttLink from "../../../src/links/vda5050/MqttLink.js"
import * as Main from "../../../src/main.js"
import * as FleetNode from "../../service/support/FleetNode.js"
import { awaitListening, freePort } from "../../support/Ports.js"

const user = "fleet"
const password = "s3cret-Horse-battery"

interface Broker {
  readonly dir: string
  readonly plain: number
  readonly tls: number
  readonly clientCert: number
  /** Path of a file in the broker's folder. */
  readonly file: (name: string) => string
}

let broker: Broker
let mosquitto: ChildProcess | undefined

/** A CA, a server certificate for 127.0.0.1 and a client certificate, each signed by the CA; EC keys (fast). */
const makeCertificates = (dir: string) => {
  const openssl = (...args: Array<string>) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" })
  const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
  openssl("req", "-x509", ...key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=fleetvisor test CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
  fs.writeFileSync(path.join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
  fs.writeFileSync(path.join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n")
  for (const [name, subject] of [["server", "/CN=127.0.0.1"], ["client", "/CN=fleetvisor"]]) {
    openssl("req", ...key, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject)
    openssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
      "-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.ext`)
  }
}

beforeAll(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-broker-security-"))
  const file = (name: string) => path.join(dir, name)
  makeCertificates(dir)
  execFileSync("mosquitto_passwd", ["-b", "-c", file("passwd"), user, password], { stdio: "pipe" })
  execFileSync("mosquitto_passwd", ["-b", file("passwd"), "rotor", "first-password"], { stdio: "pipe" })
  const [plain, tls, clientCert] = [await freePort(), await freePort(), await freePort()]
  const tlsFiles = `cafile ${file("ca.pem")}\ncertfile ${file("server.pem")}\nkeyfile ${file("server.key")}\n`
  fs.writeFileSync(file("mosquitto.conf"), [
    "per_listener_settings false",
    "allow_anonymous false",
    `password_file ${file("passwd")}`,
    "persistence false",
    "set_tcp_nodelay true",
    `listener ${plain} 127.0.0.1`,
    `listener ${tls} 127.0.0.1`,
    tlsFiles,
    `listener ${clientCert} 127.0.0.1`,
    tlsFiles,
    "require_certificate true",
    ""
  ].join("\n"))
  // Mosquitto started as root runs as `mosquitto`: it must be able to read the folder.
  fs.chmodSync(dir, 0o755)
  for (const name of fs.readdirSync(dir)) fs.chmodSync(file(name), 0o644)
  mosquitto = spawn("/usr/sbin/mosquitto", ["-c", file("mosquitto.conf")], { stdio: "ignore" })
  await awaitListening(clientCert, "mosquitto")
  broker = { dir, plain, tls, clientCert, file }
})

afterAll(() => {
  mosquitto?.kill("SIGTERM")
  fs.rmSync(broker.dir, { recursive: true, force: true })
})

/** Log lines, captured instead of printed. */
const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ message }) => {
    lines.push((Array.isArray(message) ? message : [message]).map(String).join(" "))
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** A password file of the test's own holding `content`. */
const passwordFile = (content: string) => {
  const file = path.join(broker.dir, `password-${Math.random().toString(36).slice(2)}`)
  fs.writeFileSync(file, content)
  return file
}

/** Polls `effect` until `predicate` holds, for up to `timeoutMillis`; resolves with the value that passed. */
const until = <A, E>(effect: Effect.Effect<A, E>, predicate: (a: A) => boolean, timeoutMillis = 8_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMillis
    for (;;) {
      const value = yield* effect
      if (predicate(value)) return value
      if (Date.now() > deadline) return yield* Effect.dieMessage(`not reached within ${timeoutMillis} ms: ${JSON.stringify(value)}`)
      yield* Effect.sleep("50 millis")
    }
  })

/** The fleet's broker connection alone (no AGVs needed): its stats tell whether it got in. */
const mqttLink = (url: string, security: BrokerSecurity.BrokerSecurity) =>
  Effect.gen(function*() {
    const system = yield* TestKit.system()
    const registry = yield* Registry.make<string, any>({ keys: "unique" })
    const mqtt = yield* system.spawn(
      MqttLink.make({ url, security, registry, startAgv: () => Effect.die("no AGVs here") }),
      { name: "mqtt" }
    )
    return { system, mqtt }
  })

/** The demo fleet of one AGV on the protected broker, with `env` on top. */
const node = (url: string, env: Record<string, string>) =>
  FleetNode.start({ arms: 0, agvs: 1, env: { FLEET_MQTT_URL: url, FLEET_MQTT_USERNAME: user, ...env } })

describe("the broker connection, like a plant's", () => {
  it("settings: the five are read, a certificate without its key is one line naming the missing one, and main exits 78", async () => {
    const load = (env: Record<string, string>) => ServiceConfig.loadConfig(Main.config, new Map(), env)
    const loaded = load({
      FLEET_MQTT_URL: "mqtts://broker:8883",
      FLEET_MQTT_USERNAME: "fleet",
      FLEET_MQTT_PASSWORD_FILE: "/run/credentials/x/mqtt-password",
      FLEET_MQTT_CA_FILE: "/etc/fleetvisor/ca.pem",
      FLEET_MQTT_CERT_FILE: "/etc/fleetvisor/client.pem",
      FLEET_MQTT_KEY_FILE: "/etc/fleetvisor/client.key"
    })
    expect(Option.getOrThrow(Either.getOrThrow(loaded).fleet).mqttSecurity).toEqual({
      username: "fleet",
      passwordFile: "/run/credentials/x/mqtt-password",
      caFile: "/etc/fleetvisor/ca.pem",
      certFile: "/etc/fleetvisor/client.pem",
      keyFile: "/etc/fleetvisor/client.key"
    })
    const lines = Option.getOrThrow(Either.getLeft(load({ FLEET_MQTT_CERT_FILE: "/etc/fleetvisor/client.pem" })))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^FLEET_MQTT_KEY_FILE: .*set both .* or neither/)
    const usage = Setting.usage(Main.allSettings)
    const readme = fs.readFileSync(new URL("../../../README.md", import.meta.url), "utf8")
    const service = fs.readFileSync(new URL("../../../docs/service.md", import.meta.url), "utf8")
    for (const name of ["USERNAME", "PASSWORD_FILE", "CA_FILE", "CERT_FILE", "KEY_FILE"].map((n) => `FLEET_MQTT_${n}`)) {
      const flag = `--${name.toLowerCase().replaceAll("_", "-")}`
      expect(usage, name).toContain(flag)
      expect(readme, name).toContain(`| \`${name}\` | \`${flag}\` |`)
      expect(service, name).toContain(`| \`${name}\` | \`${flag}\` |`)
    }
    const stderr = process.stderr.write
    process.stderr.write = () => true
    try {
      expect(await Main.main(["--fleet-mqtt-key-file", "/etc/fleetvisor/client.key"])).toBe(78)
    } finally {
      process.stderr.write = stderr
    }
  })

  it("a URL's password is redacted for logs; the settings win over credentials inline in the URL", () => {
    expect(BrokerSecurity.redactUrl("mqtt://fleet:hunter2@broker:1883")).toBe("mqtt://fleet:***@broker:1883")
    expect(BrokerSecurity.redactUrl("mqtt://broker:1883")).toBe("mqtt://broker:1883")
    expect(BrokerSecurity.hasInlinePassword("mqtt://fleet:hunter2@broker:1883")).toBe(true)
    const file = passwordFile(`${password}\n`)
    const target = BrokerSecurity.connectArguments("mqtt://old:hunter2@broker:1883", { username: user, passwordFile: file }, {})
    expect(target.url).toBe("mqtt://broker:1883")
    expect(target.options).toMatchObject({ username: user, password })
  })

  it.scopedLive("right credentials from a password file: a whole fleet node sees its AGV, and stops it through the stop channel's own connection", () =>
    Effect.gen(function*() {
      const { agvs, fleet } = yield* node(`mqtt://127.0.0.1:${broker.plain}`, {
        FLEET_MQTT_PASSWORD_FILE: passwordFile(`${password}\n`),
        FLEET_STOP_PORT: "0"
      })
      const stats = yield* fleet.stats
      expect(stats.mqtt).toMatchObject({ connected: true })
      const port = yield* until(Effect.sync(() => fleet.stopChannel?.port()), (port) => port !== undefined)
      const reply = yield* Effect.promise(() =>
        new Promise<any>((resolve, reject) => {
          const socket = new WebSocket(`ws://127.0.0.1:${port}/`, "fleetvisor.stop.v1")
          socket.once("open", () => socket.send(JSON.stringify({ id: 1, robot: agvs[0] })))
          socket.once("message", (data) => (resolve(JSON.parse(data.toString())), socket.close()))
          socket.once("error", reject)
        })
      )
      // `writtenAt`: the stop channel's thread published the stop on its own connection to the protected broker.
      expect(reply).toMatchObject({ id: 1, ok: true, reached: [agvs[0]] })
      expect(reply.writtenAt).toBeTypeOf("number")
    }))

  it.scopedLive("a wrong password: refused, one clear line, no crash, retried with backoff; the rotated file is read at the next attempt", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const file = passwordFile("not-the-password\n")
      const { mqtt, system } = yield* mqttLink(`mqtt://127.0.0.1:${broker.plain}`, { username: user, passwordFile: file })
      // Mosquitto answers a wrong password with CONNACK 5 (not authorized); other brokers with 4 (bad user name or password).
      const credentials = /not authorized|bad user name or password/
      const refused = yield* until(
        mqtt.ask(MqttLink.getStats),
        (s) => s.connectFailures["not-authorized"] + s.connectFailures["bad-credentials"] >= 2
      )
      expect(refused.connected).toBe(false)
      expect(refused.lastConnectFailure).toMatch(credentials)
      expect(refused.lastConnectFailure).toContain("FLEET_MQTT_PASSWORD_FILE")
      const lines = logs.lines.filter((line) => credentials.test(line))
      expect(lines).toHaveLength(1)
      expect(lines[0]).toContain(`to mqtt://127.0.0.1:${broker.plain}: refused by the broker`)
      expect(logs.lines.join("\n")).not.toContain("not-the-password")
      expect(yield* system.render).toMatch(/mqtt running .*restarts=0/)
      fs.writeFileSync(file, `${password}\n`)
      yield* until(mqtt.ask(MqttLink.getStats), (s) => s.connected, 12_000)
      expect(yield* system.render).toMatch(/mqtt running .*restarts=0/)
    }).pipe(Effect.provide(logs.layer))
  }, 30_000)

  it.scopedLive("a password rotated while connected is read again at the reconnect, without a restart", () =>
    Effect.gen(function*() {
      const file = passwordFile("first-password\n")
      const connection = yield* MqttConnection.connect({
        url: `mqtt://127.0.0.1:${broker.plain}`,
        clientId: `rotor-${process.pid}`,
        security: { username: "rotor", passwordFile: file }
      })
      // The broker's password changes (a SIGHUP reloads its password file), then the credential file.
      execFileSync("mosquitto_passwd", ["-b", broker.file("passwd"), "rotor", "second-password"], { stdio: "pipe" })
      fs.chmodSync(broker.file("passwd"), 0o644)
      mosquitto?.kill("SIGHUP")
      fs.writeFileSync(file, "second-password\n")
      yield* connection.drop
      yield* connection.reconnect
      yield* until(connection.isConnected, (connected) => connected)
    }))

  it.scopedLive("TLS with FLEET_MQTT_CA_FILE: connected, the ingest thread too; without it: refused for an unknown CA, one clear line", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const url = `mqtts://127.0.0.1:${broker.tls}`
      const file = passwordFile(password)
      const { fleet } = yield* node(url, {
        FLEET_MQTT_PASSWORD_FILE: file,
        FLEET_MQTT_CA_FILE: broker.file("ca.pem"),
        FLEET_MQTT_INGEST_THREAD: "on"
      })
      expect(yield* fleet.stats).toMatchObject({ mqtt: { connected: true } })

      const { mqtt } = yield* mqttLink(url, { username: user, passwordFile: file })
      const refused = yield* until(mqtt.ask(MqttLink.getStats), (s) => s.connectFailures["unknown-ca"] >= 1)
      expect(refused.connected).toBe(false)
      const lines = logs.lines.filter((line) => /not signed by a CA this node trusts/.test(line))
      expect(lines).toHaveLength(1)
      expect(lines[0]).toContain("FLEET_MQTT_CA_FILE")
    }).pipe(Effect.provide(logs.layer))
  }, 30_000)

  it.scopedLive("a listener that requires client certificates: connected with FLEET_MQTT_CERT_FILE and KEY_FILE, refused without", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const url = `mqtts://127.0.0.1:${broker.clientCert}`
      const security = { username: user, passwordFile: passwordFile(password), caFile: broker.file("ca.pem") }
      const failures: Array<BrokerSecurity.Refusal> = []
      const connection = yield* MqttConnection.connect({
        url,
        clientId: `cert-${process.pid}`,
        security: { ...security, certFile: broker.file("client.pem"), keyFile: broker.file("client.key") },
        onFailure: (refusal) => failures.push(refusal)
      })
      expect(yield* connection.isConnected).toBe(true)
      expect(failures).toEqual([])

      const { mqtt } = yield* mqttLink(url, security)
      const refused = yield* until(mqtt.ask(MqttLink.getStats), (s) => s.connectFailures["certificate-required"] >= 1)
      expect(refused.connected).toBe(false)
      expect(logs.lines.filter((line) => /requires a client certificate/.test(line))).toHaveLength(1)
    }).pipe(Effect.provide(logs.layer))
  }, 30_000)
})
