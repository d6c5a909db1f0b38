/**
 * Benchmarks that keep servers and clients in separate processes: forking the script itself as
 * a child that answers one request at a time over IPC, and reading a process' heap after GC.
 */
import { type ChildProcess, fork } from "node:child_process"

/** A child process answering one request at a time. */
export interface Child<In, Out> {
  /** The child's first message, when it greets (else never settles). */
  readonly first: Promise<Out>
  /** Its process id, to read its CPU time from /proc. */
  readonly pid: number
  readonly request: (message: In) => Promise<Out>
  /** Closes the IPC channel; a child ends (closing its scope) when it sees that. */
  readonly kill: () => void
}

/**
 * Forks `script` (with `--expose-gc`, under tsx) with `args`, its stdout and stderr to this
 * process' stderr; `first` is its first message when it `greets`. `BENCH_CHILD_ARGS` adds Node options, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`.
 */
export const spawnChild = <In, Out>(script: string, args: ReadonlyArray<string>, greets: boolean): Child<In, Out> => {
  const child: ChildProcess = fork(script, [...args], {
    execArgv: [
      "--expose-gc",
      "--max-old-space-size=2048",
      "--import",
      "tsx",
      ...(process.env.BENCH_CHILD_ARGS?.split(" ").filter((arg) => arg !== "") ?? [])
    ],
    // The child's stdout goes to this process' stderr: a benchmark's stdout is its JSON alone.
    stdio: ["ignore", 2, "inherit", "ipc"],
    serialization: "advanced"
  })
  let pending: Array<(message: Out) => void> = []
  const first = new Promise<Out>((resolve) => greets && pending.push(resolve))
  child.on("message", (message: Out) => {
    const [next, ...rest] = pending
    pending = rest
    next?.(message)
  })
  return {
    first,
    pid: child.pid!,
    request: (message) =>
      new Promise<Out>((resolve) => {
        pending.push(resolve)
        child.send(message as object)
      }),
    kill: () => child.connected && child.disconnect()
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** This process' heap in use after repeated full collections (needs `--expose-gc`). */
export const heapAfterGc = async (): Promise<number> => {
  const gc = (globalThis as { gc?: () => void }).gc!
  for (let i = 0; i < 4; i++) {
    gc()
    await sleep(50)
  }
  gc()
  return process.memoryUsage().heapUsed
}
