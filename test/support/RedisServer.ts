/**
 * A Redis of a test's own: `redis-server` on a spare port of 127.0.0.1, keeping nothing on disk,
 * that the test can stop, pause (SIGSTOP), and restart empty (a new `run_id`, as a Redis that
 * lost its memory); a replica of another one; and Sentinels (`redis-server --sentinel`)
 * watching a master. The machine's own Redis (6379) is never touched.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
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
export const startRedis = (): Promise<RedisServer> => launch([])

/** Starts a replica of the Redis on `masterPort` of 127.0.0.1, on a spare port. */
export const startReplica = (masterPort: number): Promise<RedisServer> => launch(["--replicaof", "127.0.0.1", String(masterPort)])

const launch = async (extra: ReadonlyArray<string>): Promise<RedisServer> => {
  const port = await freePort()
  let child: ChildProcess | undefined
  const start = async () => {
    // A directory of its own, emptied at each start: a replica writes the RDB it receives, and a
    // Redis started in a directory holding one would load it (a shared /tmp/dump.rdb did).
    const dir = path.join(os.tmpdir(), `fleetvisor-redis-${port}`)
    fs.rmSync(dir, { recursive: true, force: true })
    fs.mkdirSync(dir, { recursive: true })
    child = spawn(binary, [
      "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
      "--daemonize", "no", "--loglevel", "warning", "--dir", dir, ...extra
    ], { stdio: "ignore" })
    child.once("exit", () => fs.rmSync(dir, { recursive: true, force: true }))
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

/** A running test Sentinel. */
export interface SentinelServer {
  readonly port: number
  /** Stops it (SIGKILL) and removes its configuration file. */
  readonly stop: () => Promise<void>
}

/** How a test's Sentinels watch their master. */
export interface SentinelOptions {
  /** The master group's name (default `mymaster`). */
  readonly name?: string
  /** How many Sentinels must agree that the master is down (default: a majority of `count`). */
  readonly quorum?: number
  /** `down-after-milliseconds` (default 500). */
  readonly downAfterMs?: number
  /** `failover-timeout` (default 2,000). */
  readonly failoverTimeoutMs?: number
}

/**
 * Starts `count` Sentinels on spare ports watching the master on `masterPort`, each with a
 * configuration file of its own (Sentinel rewrites it), and waits until each knows the master.
 */
export const startSentinels = async (masterPort: number, count: number, options: SentinelOptions = {}): Promise<ReadonlyArray<SentinelServer>> => {
  const name = options.name ?? "mymaster"
  const quorum = options.quorum ?? Math.floor(count / 2) + 1
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-sentinel-"))
  const started: Array<SentinelServer> = []
  for (let i = 0; i < count; i++) {
    const port = await freePort()
    const file = path.join(dir, `sentinel-${port}.conf`)
    fs.writeFileSync(file, [
      `port ${port}`,
      "bind 127.0.0.1",
      "daemonize no",
      "loglevel warning",
      `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${masterPort} ${quorum}`,
      `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 500}`,
      `sentinel failover-timeout ${name} ${options.failoverTimeoutMs ?? 2_000}`,
      `sentinel parallel-syncs ${name} 1`,
      ""
    ].join("\n"))
    const child = spawn(binary, [file, "--sentinel"], { stdio: "ignore" })
    await awaitListening(port, "redis-server --sentinel")
    started.push({
      port,
      stop: () =>
        new Promise<void>((resolve) => {
          const done = () => {
            fs.rmSync(file, { force: true })
            resolve()
          }
          if (child.exitCode !== null) return done()
          child.once("exit", done)
          child.kill("SIGKILL")
        })
    })
  }
  return started
}
