import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as TokenFile from "../../src/http/TokenFile.js"

const tempFile = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "fv-tokens-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
).pipe(Effect.map((dir) => path.join(dir, "tokens.json")))

describe("TokenFile", () => {
  it.scoped("a token added is found by its secret, which the file never holds; revoking it removes it", () =>
    Effect.gen(function*() {
      const file = yield* tempFile
      const { entry, token } = yield* TokenFile.add(file, { user: "alice", roles: ["operator"] })
      const text = fs.readFileSync(file, "utf8")
      expect(text).not.toContain(token)
      expect(fs.statSync(file).mode & 0o777).toBe(0o600)
      const contents = yield* TokenFile.read(file)
      expect(TokenFile.lookup(contents, token, Date.now())).toEqual(entry)
      expect(TokenFile.lookup(contents, `${token}x`, Date.now())).toBeUndefined()
      expect((yield* TokenFile.revoke(file, entry.id)).map((e) => e.user)).toEqual(["alice"])
      expect(TokenFile.lookup(yield* TokenFile.read(file), token, Date.now())).toBeUndefined()
    }))

  it.scoped("an expired token is not found; a missing file is empty; a file that is not a token file is a typed error", () =>
    Effect.gen(function*() {
      const file = yield* tempFile
      expect(yield* TokenFile.read(file)).toEqual(TokenFile.empty)
      const { token } = yield* TokenFile.add(file, { user: "bob", roles: ["viewer"], expiresAt: new Date(Date.now() + 60_000) })
      const contents = yield* TokenFile.read(file)
      expect(TokenFile.lookup(contents, token, Date.now())?.user).toBe("bob")
      expect(TokenFile.lookup(contents, token, Date.now() + 61_000)).toBeUndefined()
      const bad = TokenFile.parse(JSON.stringify({ version: 1, tokens: [{ user: "x", roles: ["root"] }] }), file)
      expect(Either.isLeft(bad) && bad.left._tag).toBe("TokenFileError")
    }))
})
