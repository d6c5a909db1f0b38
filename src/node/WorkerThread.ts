/**
 * A Node worker thread owned by a scope, for actors and services that run part of their work
 * on a thread of its own: it starts when the resource is acquired and is terminated when the
 * scope closes. Its messages go to `onMessage`; an error, or an exit before the scope closes, is
 * reported once to `onFailure` with the reason, for the owner to fail with (an actor then
 * crashes and its supervisor restarts it, thread included).
 *
 * Every thread of the service runs a module of the project, TypeScript under `src` or the
 * JavaScript `tsc` compiles into `dist`, started the same way ({@link run}): the module and the
 * project's modules it imports are bundled with esbuild once per process into one ES module,
 * started from a `data:` URL. So a thread loads alike under node, tsx and vitest, none of which
 * gives a thread its TypeScript loader. The packages it imports (effect, mqtt.js, ws, native
 * addons such as better-sqlite3) are left out of the bundle and imported by the absolute
 * `file:` URL esbuild resolves them to (a `data:` URL module cannot resolve a bare name): Node
 * loads them as it does on the main thread, and the bundle stays small and quick to build.
 * The thread gets the process's Node options but not its module loaders (`--import tsx`):
 * its bundle needs none, and a loader's hooks on every import of its packages made a thread
 * start 1.5 times slower.
 *
 * A worker module declares its {@link Protocol} (the `workerData` it starts with, the
 * messages it takes and posts) and takes it with `ParentPort.make`; the owner starts it with
 * the same type.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as esbuild from "esbuild"
import * as fs from "node:fs"
import { isBuiltin } from "node:module"
import { fileURLToPath, pathToFileURL } from "node:url"
import { type Transferable, Worker } from "node:worker_threads"

/** What the owner does with the thread's messages and failure. */
export interface WorkerThreadHooks<Message> {
  readonly onMessage: (message: Message) => void
  readonly onFailure: (reason: string) => void
}

/**
 * The messages of a worker module, declared once by the module and used by both sides: the
 * `workerData` it starts with (structured-cloned; a SharedArrayBuffer is shared), the messages
 * it takes (`in`) and those it posts (`out`).
 */
export interface Protocol {
  readonly data: unknown
  readonly in: unknown
  readonly out: unknown
}

/** A module to run as a thread. */
export interface Entry {
  /** Absolute path of the `.ts` or `.js` file. */
  readonly path: string
}

/** The thread's module could not be bundled or found. */
export class WorkerEntryFailed extends Data.TaggedError("WorkerEntryFailed")<{
  readonly entry: string
  readonly reason: string
}> {
  override get message() {
    return `worker module ${this.entry}: ${this.reason}`
  }
}

/**
 * The worker module `specifier` (relative, without extension, e.g. `./internal/fooWorker`) next
 * to the module `from` (its `import.meta.url`): the `.ts` file under `src`, or the `.js` file
 * `tsc` compiled into `dist`, whichever exists.
 */
export const entry = (from: string, specifier: string): Entry => {
  const base = fileURLToPath(new URL(specifier, from))
  const found = [".ts", ".js"].map((extension) => base + extension).find((file) => fs.existsSync(file))
  return { path: found ?? `${base}.ts` }
}

/** Bundles of this process, by entry file. */
const bundles = new Map<string, Promise<string>>()

const resolving = Symbol("resolving")

/** Leaves packages out of the bundle: each is imported by the absolute `file:` URL esbuild resolves it to. */
const packagesByUrl: esbuild.Plugin = {
  name: "packages-by-url",
  setup: (build) => {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData === resolving || isBuiltin(args.path)) return undefined
      const resolved = await build.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: resolving
      })
      if (resolved.errors.length > 0) return { errors: resolved.errors }
      return { path: pathToFileURL(resolved.path).href, external: true }
    })
  }
}

const build = (module: Entry): Promise<string> =>
  esbuild.build({
    entryPoints: [module.path],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    write: false,
    logLevel: "silent",
    plugins: [packagesByUrl]
  }).then((result) => `data:text/javascript;base64,${Buffer.from(result.outputFiles[0].text).toString("base64")}`)

/**
 * The entry and the project's modules it imports as one ES module, bundled once per process:
 * a URL to start a thread from, or to `import()` in one.
 */
export const bundle = (module: Entry): Effect.Effect<URL, WorkerEntryFailed> =>
  Effect.tryPromise({
    try: () => {
      let bundled = bundles.get(module.path)
      if (bundled === undefined) {
        bundled = fs.existsSync(module.path) ? build(module) : Promise.reject(new Error("no such file"))
        bundles.set(module.path, bundled)
        bundled.catch(() => bundles.delete(module.path))
      }
      return bundled.then((code) => new URL(code))
    },
    catch: (error) =>
      new WorkerEntryFailed({
        entry: module.path,
        reason: error instanceof Error ? error.message.split("\n").slice(0, 4).join(" ") : String(error)
      })
  })

/** Options that add module loaders or preload modules, with their value (`--import tsx`, `--require=x`). */
const loaderOption = /^(--import|--require|-r|--loader|--experimental-loader)(=|$)/

/** The process's `execArgv` without its module loaders. */
const withoutLoaders = (argv: ReadonlyArray<string>): Array<string> => {
  const kept: Array<string> = []
  for (let i = 0; i < argv.length; i++) {
    const match = loaderOption.exec(argv[i])
    if (match === null) kept.push(argv[i])
    else if (match[2] === "") i++
  }
  return kept
}

/**
 * The `execArgv` of the threads: `undefined` (the process's, inherited) when it has no module
 * loader, else the process's without them, less the per-process options a thread refuses
 * when they are given rather than inherited (`--max-old-space-size`, `--expose-gc`), learnt
 * from the first refusal.
 */
let threadExecArgv: Array<string> | undefined = process.execArgv.some((arg) => loaderOption.test(arg))
  ? withoutLoaders(process.execArgv)
  : undefined

const makeWorker = (url: URL, data: unknown): Worker => {
  try {
    return new Worker(url, { workerData: data, execArgv: threadExecArgv })
  } catch (error) {
    if ((error as { readonly code?: unknown }).code !== "ERR_WORKER_INVALID_EXEC_ARGV" || threadExecArgv === undefined) throw error
    // "Initiated Worker with invalid execArgv flags: --expose-gc, --max-old-space-size=2048"
    const refused = new Set(String((error as Error).message).split(": ").slice(1).join(": ").split(", "))
    const kept = threadExecArgv.filter((arg) => !refused.has(arg))
    // Not understood: inherit them all, loaders included (slower to start, never refused).
    threadExecArgv = kept.length < threadExecArgv.length ? kept : undefined
    return new Worker(url, { workerData: data, execArgv: threadExecArgv })
  }
}

/** The owner's end of a thread started by {@link run}: its messages typed by the module's protocol. */
export interface Thread<In> {
  readonly post: (message: In, transfer?: ReadonlyArray<Transferable>) => void
  readonly worker: Worker
}

/**
 * Starts the worker module `entry` with `data` (see {@link Protocol}) and owns it as
 * {@link start} does; fails if the module cannot be bundled.
 */
export const run = <P extends Protocol>(
  module: Entry,
  data: P["data"],
  hooks: WorkerThreadHooks<P["out"]>
): Effect.Effect<Thread<P["in"]>, WorkerEntryFailed, Scope.Scope> =>
  Effect.flatMap(bundle(module), (url) =>
    Effect.map(
      start(() => makeWorker(url, data), hooks),
      (worker) => ({ worker, post: (message, transfer) => worker.postMessage(message, transfer) })
    ))

/**
 * Owns the thread `make` starts; it is terminated when the scope closes.
 */
export const start = <Message>(
  make: () => Worker,
  hooks: WorkerThreadHooks<Message>
): Effect.Effect<Worker, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => {
        const worker = make()
        let done = false
        const fail = (reason: string) => {
          if (done) return
          done = true
          hooks.onFailure(reason)
        }
        worker.on("message", hooks.onMessage)
        worker.on("error", (error) => fail(String(error)))
        worker.on("exit", (code) => fail(`exited with code ${code}`))
        return {
          worker,
          terminate: () => {
            done = true
            return worker.terminate()
          }
        }
      }),
      (thread) => Effect.promise(thread.terminate)
    ),
    (thread) => thread.worker
  )
