import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as TestKit from "../../src/actors/TestKit.js"
import * as FleetNode from "../service/support/FleetNode.js"

const root = fileURLToPath(new URL("../..", import.meta.url))

/** Runs `npx fleetvisor …` as an operator would, in a process of its own. */
const fleetvisor = (...args: ReadonlyArray<string>) =>
  Effect.async<{ code: number; stdout: string; stderr: string }>((resume) => {
    execFile("npx", ["--no-install", "fleetvisor", ...args], { cwd: root, timeout: 60_000 }, (error, stdout, stderr) =>
      resume(Effect.succeed({ code: error === null ? 0 : Number(error.code ?? 1), stdout, stderr })))
  })

describe("the fleet from a terminal", () => {
  it.scopedLive("robots, watch, stop and reset against a running service, with exit codes scripts can use", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 1 })
      const url = `--url=${node.service.url}`
      const [arm] = node.arms
      const [agv] = node.agvs

      const listed = yield* fleetvisor("robots", url)
      expect(listed.code).toBe(0)
      expect(listed.stdout).toMatch(new RegExp(`^${arm}\\s+arm\\s+online\\s+online\\s+normal`, "m"))
      expect(listed.stdout).toMatch(new RegExp(`^${agv}\\s+agv\\s+online`, "m"))

      const watched = yield* fleetvisor("watch", agv, "--count", "2", "--json", url)
      expect(watched.code).toBe(0)
      const views = watched.stdout.trim().split("\n").map((line) => JSON.parse(line))
      expect(views).toHaveLength(2)
      expect(views.every((view) => view.id === agv && view.kind === "agv")).toBe(true)

      const stopped = yield* fleetvisor("stop", arm, url)
      expect(stopped.code).toBe(0)
      expect(stopped.stdout).toContain(`stopped: ${arm}`)
      yield* TestKit.awaitUntil(
        Effect.map(node.fleet.state, (state) => state.robots.find((r) => r.id === arm)?.safety === "stopped"),
        { waitedFor: "the arm latched" }
      )

      const reset = yield* fleetvisor("reset", arm, url)
      expect(reset.code).toBe(0)
      yield* TestKit.awaitUntil(
        Effect.map(node.fleet.state, (state) => state.robots.find((r) => r.id === arm)?.safety === "normal"),
        { waitedFor: "the arm's latch cleared" }
      )

      const unknown = yield* fleetvisor("stop", "no-such-robot", url)
      expect(unknown.code).toBe(1)
      expect(unknown.stderr).toContain("no robot no-such-robot")
      const usage = yield* fleetvisor("stop", url)
      expect(usage.code).toBe(64)

      // A token file that does not exist is a usage error; an existing one is read, not echoed.
      const missing = yield* fleetvisor("robots", url, "--token-file", path.join(os.tmpdir(), "no-such-token-file"))
      expect(missing.code).toBe(64)
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fv-cli-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      fs.writeFileSync(path.join(dir, "token"), "fvt_not-checked-when-AUTH-is-none\n")
      const withToken = yield* fleetvisor("robots", url, "--token-file", path.join(dir, "token"))
      expect(withToken.code).toBe(0)
      expect(withToken.stdout + withToken.stderr).not.toContain("fvt_")
    }), { timeout: 180_000 })
})
