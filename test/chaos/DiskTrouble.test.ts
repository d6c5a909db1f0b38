/**
 * Disk trouble: the service's database on a small tmpfs of the test's own, which the test then
 * fills up. Writes fail with SQLITE_FULL: `/readyz` answers 503 with the store's reason while
 * `/healthz`, the WebSocket sessions and their RPCs go on; when space is freed, the next write
 * succeeds and `/readyz` is 200 again. (A read-only file made with chmod would not stop root, who
 * runs CI; a full disk is the failure root meets too. `test/store/StoreHealth.test.ts` covers
 * SQLITE_READONLY with `PRAGMA query_only`.)
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { TestKit } from "../../src/actors/index.js"
import * as TestService from "../http/support/TestService.js"

/** A tmpfs of `size` mounted on a fresh directory, unmounted and removed when the scope closes. */
const smallDisk = (size: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-disk-"))
      execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir])
      return dir
    }),
    (dir) =>
      Effect.sync(() => {
        execFileSync("umount", ["-l", dir])
        fs.rmSync(dir, { recursive: true, force: true })
      })
  )

/** Fills the file system of `file` with it until ENOSPC. */
const fill = (file: string) =>
  Effect.sync(() => {
    const fd = fs.openSync(file, "w")
    const block = Buffer.alloc(64 * 1024, 1)
    try {
      for (;;) fs.writeSync(fd, block)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error
    } finally {
      fs.closeSync(fd)
    }
  })

const get = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url)
    return { status: response.status, body: await response.text() }
  })

describe("disk trouble", () => {
  it.scopedLive("a full disk makes /readyz 503 while live traffic goes on; freeing space makes it ready again", () =>
    Effect.gen(function*() {
      const disk = yield* smallDisk("16m")
      const service = yield* TestService.start({ DATA_DIR: disk })
      const client = yield* TestService.connect(service, "msgpack")
      expect((yield* get(`${service.url}/readyz`)).status).toBe(200)

      // Live traffic throughout: Pings on one session, a painter (each pixel a write of the canvas) on another.
      let pings = 0
      const pinger = yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
        yield* client.rpc.Ping().pipe(Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => new Error("Ping unanswered for 2 s") }))
        pings++
        yield* Effect.sleep("5 millis")
      })))
      const painter = yield* TestService.connect(service, "msgpack")
      const placements = { ok: 0, failed: 0, timedOut: 0 }
      let n = 0
      yield* Effect.forkScoped(Effect.forever(
        painter.rpc.CanvasPlace({ x: n % 64, y: (n++ >> 6) % 64, color: n % 16 }).pipe(
          Effect.timeoutFail({ duration: "1 second", onTimeout: () => "timeout" as const }),
          Effect.match({
            onFailure: (error) => (error === "timeout" ? placements.timedOut++ : placements.failed++),
            onSuccess: () => placements.ok++
          }),
          Effect.zipRight(Effect.sleep("5 millis"))
        )
      ))
      yield* TestKit.awaitUntil(Effect.sync(() => placements.ok > 5))

      const filler = path.join(disk, "filler")
      yield* fill(filler)
      const notReady = yield* TestKit.awaitUntil(
        Effect.map(get(`${service.url}/readyz`), (r) => r.status === 503),
        { timeoutMillis: 10_000, waitedFor: "/readyz to report the full disk" }
      ).pipe(Effect.zipRight(get(`${service.url}/readyz`)))
      expect(JSON.parse(notReady.body).checks.store).toMatch(/^degraded: /)
      // Still live: the process answers, sessions keep answering.
      expect((yield* get(`${service.url}/healthz`)).status).toBe(200)
      const pingsWhileFull = pings
      const placementsWhileFull = { ...placements }
      yield* TestKit.awaitUntil(Effect.sync(() => pings > pingsWhileFull + 20), { waitedFor: "Pings while the disk is full" })
      expect(pinger.unsafePoll()).toBeNull()

      fs.rmSync(filler)
      yield* TestKit.awaitUntil(Effect.map(get(`${service.url}/readyz`), (r) => r.status === 200), {
        timeoutMillis: 10_000,
        waitedFor: "/readyz to recover once space is freed"
      })
      expect(pinger.unsafePoll()).toBeNull()
      yield* Fiber.interrupt(pinger)
      // While the disk was full, pixels were refused with an error, never left hanging.
      expect(placements.failed).toBeGreaterThan(0)
      expect(placements.timedOut).toBe(0)
      const okWhenRecovered = placements.ok
      yield* TestKit.awaitUntil(Effect.sync(() => placements.ok > okWhenRecovered + 5), { waitedFor: "pixels placed after the recovery" })
      console.log(JSON.stringify({ test: "DiskTrouble", pings, placementsWhileFull, placements }))
    }), 30_000)
})
