/**
 * A Redis of a test's own: `redis-server` on a spare port of 127.0.0.1, keeping nothing on disk,
 * that the test can stop, pause (SIGSTOP), and restart empty (a new `run_id`, as a Redis that
 * lost its memory). The machine's own Redis (6379) is never touched.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import { awaitListening, freePort } from "./Ports.js"

/** A running test Redis. */
export interface RedisServer {
  readonly port: number
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string
  /** Stops it (SIGKILL: nothing is saved anyway); `start` brings it back empty on the same port. */
  readonly stop: () => Promise<void>
  /** Starts it again after `stop`, empty, on the same port. */
  readonly start: () => Promise<void>
  /** Stops and starts it: Redis comes back empty with a new `run_id`. */
  readonly restart: () => Promise<void>
  /** SIGSTOP / SIGCONT: a Redis that hangs without closing its connections. */
  readonly pause: () => void
  readonly resume: () => void
}

const binary = fs.existsSync("/usr/bin/redis-server") ? "/usr/bin/redis-server" : "redis-server"

/** Starts a Redis on a spare port; stop it with `stop` (tests do so in `afterAll`). */
export const startRedis = async (): Promise<RedisServer> => {
  const port = await freePort()
  let child: ChildProcess | undefined
  const start = async () => {
    child = spawn(binary, [
      "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
      "--daemonize", "no", "--loglevel", "warning", "--dir", "/tmp"
    ], { stdio: "ignore" })
    await awaitListening(port, "redis-server")
  }
  const stop = () =>
    new Promise<void>((resolve) => {
      const running = child
      child = undefined
      if (running === undefined || running.exitCode !== null) return resolve()
      running.once("exit", () => resolve())
      running.kill("SIGCONT")
      running.kill("SIGKILL")
    })
  await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    restart: async () => {
      await stop()
      await start()
    },
    pause: () => void child?.kill("SIGSTOP"),
    resume: () => void child?.kill("SIGCONT")
  }
}
