/**
 * A Mosquitto of a test's own: on a spare port of 127.0.0.1, keeping nothing (no persistence),
 * that the test can stop and start again on the same port, as a broker restart. The run's
 * broker (`FLEETVISOR_TEST_MQTT_URL`) and the machine's (1883) are never touched.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { accepts, awaitListening, freePort } from "./Ports.js"

/** A running test broker. */
export interface MosquittoServer {
  readonly port: number
  /** `mqtt://127.0.0.1:<port>`. */
  readonly url: string
  /** Stops it (SIGTERM) and waits until the port refuses connections. */
  readonly stop: () => Promise<void>
  /** Starts it again after `stop`, on the same port, empty. */
  readonly start: () => Promise<void>
  /** Stops and starts it: every client loses its connection, retained messages are gone. */
  readonly restart: () => Promise<void>
  /** Stops it for good and removes its directory (tests do so in `afterAll`). */
  readonly dispose: () => Promise<void>
}

const binary = fs.existsSync("/usr/sbin/mosquitto") ? "/usr/sbin/mosquitto" : "mosquitto"

/** Starts a Mosquitto on a spare port. */
export const startMosquitto = async (): Promise<MosquittoServer> => {
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-test-mosquitto-"))
  const conf = path.join(dir, "mosquitto.conf")
  fs.writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n`)
  let child: ChildProcess | undefined
  const start = async () => {
    child = spawn(binary, ["-c", conf], { stdio: "ignore" })
    await awaitListening(port, "mosquitto")
  }
  const stop = async () => {
    const running = child
    child = undefined
    if (running !== undefined && running.exitCode === null) {
      await new Promise<void>((resolve) => {
        running.once("exit", () => resolve())
        running.kill("SIGTERM")
      })
    }
    for (let i = 0; i < 100 && (await accepts(port)); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  await start()
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    stop,
    start,
    restart: async () => {
      await stop()
      await start()
    },
    dispose: async () => {
      await stop()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}
