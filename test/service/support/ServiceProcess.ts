/**
 * The service as a child process (`node --import tsx src/main.ts`), as systemd or a terminal
 * runs it: port 0 on 127.0.0.1, a temp data directory, JSON logs on stdout.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/** The repository root. */
export const root = fileURLToPath(new URL("../../..", import.meta.url))

/** A running service process. */
export interface ServiceProcess {
  readonly child: ChildProcess
  readonly dataDir: string
  /** `http://127.0.0.1:<port>`, known once ready. */
  url: string
  readonly stdout: Array<string>
  readonly stderr: Array<string>
  /** Resolves with the exit code (or the signal's name). */
  readonly exited: Promise<number | string>
  /** Resolves once a log line matches. */
  readonly logged: (pattern: RegExp, timeoutMs?: number) => Promise<Record<string, unknown>>
  /** Kills the process if it still runs and removes its directory. */
  readonly dispose: () => Promise<void>
}

/** Starts the service; resolves once it logged "ready". A given `dataDir` is kept on dispose. */
export const startProcess = async (
  env: Record<string, string> = {},
  options: {
    readonly args?: ReadonlyArray<string>
    readonly dataDir?: string
    /** Node's arguments before `args`; the TypeScript sources through tsx by default. */
    readonly entry?: ReadonlyArray<string>
  } = {}
): Promise<ServiceProcess> => {
  const owned = options.dataDir === undefined
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-process-"))
  const args = options.args ?? []
  const child = spawn(process.execPath, [...(options.entry ?? ["--import", "tsx", "src/main.ts"]), ...args], {
    cwd: root,
    // With REDIS_URL, the node link listens on loopback too, and says so to the other nodes.
    env: { ...process.env, PORT: "0", HOST: "127.0.0.1", CLUSTER_BIND: "127.0.0.1", CLUSTER_ADVERTISE: "127.0.0.1", DATA_DIR: dataDir, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const stdout: Array<string> = []
  const stderr: Array<string> = []
  const waiters: Array<() => void> = []
  let partial = ""
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    partial += chunk
    const lines = partial.split("\n")
    partial = lines.pop()!
    stdout.push(...lines)
    for (const wake of waiters.splice(0)) wake()
  })
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => stderr.push(chunk))
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => {
      for (const wake of waiters.splice(0)) wake()
      resolve(code ?? signal ?? -1)
    })
  )
  let done = false
  // A test process that ends without disposing (a timeout, a killed worker) must not leave a service running.
  const orphanGuard = () => child.kill("SIGKILL")
  process.once("exit", orphanGuard)
  void exited.then(() => {
    done = true
    process.off("exit", orphanGuard)
  })
  const logged = (pattern: RegExp, timeoutMs = 20_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const deadline = Date.now() + timeoutMs
      const check = () => {
        const line = stdout.find((l) => pattern.test(l))
        if (line !== undefined) return resolve(JSON.parse(line))
        if (done || Date.now() > deadline) {
          return reject(new Error(`no log line matching ${pattern}\nstdout:\n${stdout.join("\n")}\nstderr:\n${stderr.join("")}`))
        }
        waiters.push(check)
        setTimeout(check, 200)
      }
      check()
    })
  const service: ServiceProcess = {
    child,
    dataDir,
    url: "",
    stdout,
    stderr,
    exited,
    logged,
    dispose: async () => {
      if (!done) {
        child.kill("SIGKILL")
        await exited
      }
      if (owned) fs.rmSync(dataDir, { recursive: true, force: true })
    }
  }
  // A service that never became ready (a timeout under load, a refused start) is no one's to dispose: kill it here.
  const ready = await logged(/"message":"ready"/, 45_000).catch(async (error) => {
    await service.dispose()
    throw error
  })
  service.url = `http://127.0.0.1:${(ready.annotations as { port: number }).port}`
  return service
}
