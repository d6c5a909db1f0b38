import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import * as WorkerThread from "../../src/node/WorkerThread.js"
import type { SqliteWorkerProtocol } from "./fixtures/sqliteWorker.js"

const here = import.meta.url

describe("WorkerThread.run", () => {
  it.scopedLive("runs a TypeScript module that imports the project's modules and a native package (left out of its bundle)", () =>
    Effect.gen(function*() {
      const answer = yield* Deferred.make<SqliteWorkerProtocol["out"]>()
      const thread = yield* WorkerThread.run<SqliteWorkerProtocol>(
        WorkerThread.entry(here, "./fixtures/sqliteWorker"),
        { greeting: "hello" },
        {
          onMessage: (message) => Deferred.unsafeDone(answer, Effect.succeed(message)),
          onFailure: (reason) => Deferred.unsafeDone(answer, Effect.die(reason))
        }
      )
      thread.post({ host: "[::1]:8080" })
      const expected = new Database(":memory:").prepare<[], { version: string }>("SELECT sqlite_version() AS version").get()!
      expect(yield* Deferred.await(answer)).toEqual({ greeting: "hello", name: "::1", sqlite: expected.version })
    }))

  it.scopedLive("reports a module that fails as it loads to onFailure", () =>
    Effect.gen(function*() {
      const failure = yield* Deferred.make<string>()
      yield* WorkerThread.run(
        WorkerThread.entry(here, "./fixtures/failingWorker"),
        undefined,
        { onMessage: () => {}, onFailure: (reason) => Deferred.unsafeDone(failure, Effect.succeed(reason)) }
      )
      expect(yield* Deferred.await(failure)).toMatch(/broken at load/)
    }))

  it.scopedLive("fails with WorkerEntryFailed for a module that cannot be bundled or does not exist", () =>
    Effect.gen(function*() {
      const hooks = { onMessage: () => {}, onFailure: () => {} }
      const unresolved = yield* Effect.exit(WorkerThread.run(WorkerThread.entry(here, "./fixtures/unresolvedWorker"), undefined, hooks))
      const missing = yield* Effect.exit(WorkerThread.run(WorkerThread.entry(here, "./fixtures/noSuchWorker"), undefined, hooks))
      expect(unresolved).toMatchObject(Exit.fail({ _tag: "WorkerEntryFailed", reason: expect.stringMatching(/noSuchModule/) }))
      expect(missing).toMatchObject(Exit.fail({ _tag: "WorkerEntryFailed", entry: expect.stringMatching(/noSuchWorker\.ts$/) }))
    }))

  it.scopedLive("finds a module compiled to JavaScript when there is no TypeScript beside it (dist/)", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "worker-thread-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      fs.writeFileSync(path.join(dir, "echo.js"), `import { parentPort, workerData } from "node:worker_threads"\nparentPort.postMessage(workerData * 2)\n`)
      const module = WorkerThread.entry(pathToFileURL(path.join(dir, "caller.js")).href, "./echo")
      expect(module.path).toBe(path.join(dir, "echo.js"))
      const answer = yield* Deferred.make<number>()
      yield* WorkerThread.run<{ data: number; in: never; out: number }>(module, 21, {
        onMessage: (message) => Deferred.unsafeDone(answer, Effect.succeed(message)),
        onFailure: (reason) => Deferred.unsafeDone(answer, Effect.die(reason))
      })
      expect(yield* Deferred.await(answer)).toBe(42)
    }))

  it("starts threads without the process's module loaders, in a process with options a thread refuses", () => {
    // A thread refuses per-process options given explicitly (--max-old-space-size, --expose-gc).
    const output = execFileSync(
      process.execPath,
      ["--expose-gc", "--max-old-space-size=512", "--trace-warnings", "--import", "tsx", fileURLToPath(new URL("./fixtures/startThread.ts", here))],
      { encoding: "utf8", timeout: 30_000 }
    )
    const execArgv = JSON.parse(output) as Array<string>
    expect(execArgv).toContain("--trace-warnings")
    expect(execArgv.filter((arg) => /tsx|--import/.test(arg))).toEqual([])
  })
})
