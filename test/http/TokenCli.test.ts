import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as TokenFile from "../../src/http/TokenFile.js"

const root = fileURLToPath(new URL("../..", import.meta.url))

/** Runs `npx fleetvisor …` as an operator would, with `env` added to the environment. */
const fleetvisor = (env: Record<string, string>, ...args: ReadonlyArray<string>) =>
  Effect.async<{ code: number; stdout: string; stderr: string }>((resume) => {
    execFile("npx", ["--no-install", "fleetvisor", ...args], { cwd: root, timeout: 60_000, env: { ...process.env, ...env } }, (error, stdout, stderr) =>
      resume(Effect.succeed({ code: error === null ? 0 : Number(error.code ?? 1), stdout, stderr })))
  })

describe("npx fleetvisor token", () => {
  it.scopedLive("issues a token shown once, lists it without its secret, revokes it by user; refuses a role that does not exist", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "fv-token-cli-"))),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      )
      // No --file: the service's own default, $DATA_DIR/tokens.json.
      const env = { DATA_DIR: dir, AUTH_TOKENS_FILE: "" }
      const file = path.join(dir, "tokens.json")

      const added = yield* fleetvisor(env, "token", "add", "--user", "alice", "--role", "operator", "--expires", "90d")
      expect(added.code).toBe(0)
      const token = added.stdout.trim()
      expect(token).toMatch(/^fvt_[A-Za-z0-9_-]{43}$/)
      expect(added.stderr).toMatch(/for alice \(operator\), until 20\d\d-.*shown once/)
      const entry = TokenFile.lookup(yield* TokenFile.read(file), token, Date.now())
      expect(entry?.user).toBe("alice")
      expect(Date.parse(entry!.expiresAt!) - Date.now()).toBeGreaterThan(89 * 86_400_000)

      const listed = yield* fleetvisor(env, "token", "list")
      expect(listed.code).toBe(0)
      expect(listed.stdout).toMatch(new RegExp(`^${entry!.id}\\s+alice\\s+operator\\s`, "m"))
      expect(listed.stdout).not.toContain(token)

      const revoked = yield* fleetvisor({ AUTH_TOKENS_FILE: file }, "token", "revoke", "alice")
      expect(revoked.code).toBe(0)
      expect(revoked.stdout).toContain(`revoked ${entry!.id} (alice)`)
      expect((yield* TokenFile.read(file)).tokens).toEqual([])

      const again = yield* fleetvisor(env, "token", "revoke", "alice")
      expect(again.code).toBe(1)
      expect(again.stderr).toContain("no token has the id or user alice")

      const badRole = yield* fleetvisor(env, "token", "add", "--user", "mallory", "--role", "root")
      expect(badRole.code).toBe(64)
      expect(badRole.stderr).toContain("viewer, operator, admin")
    }), { timeout: 120_000 })
})
