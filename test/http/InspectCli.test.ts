import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import * as net from "node:net"
import { fileURLToPath } from "node:url"
import * as TestService from "./support/TestService.js"

const root = fileURLToPath(new URL("../..", import.meta.url))

/** Runs `npx fleetvisor …` as a user would (the package's bin). */
const fleetvisorWith = (env: Record<string, string>, ...args: ReadonlyArray<string>) =>
  Effect.async<{ code: number; stdout: string; stderr: string }>((resume) => {
    execFile("npx", ["--no-install", "fleetvisor", ...args], { cwd: root, timeout: 30_000, env: { ...process.env, ...env } }, (error, stdout, stderr) =>
      resume(Effect.succeed({ code: error === null ? 0 : Number(error.code ?? 1), stdout, stderr })))
  })

const fleetvisor = (...args: ReadonlyArray<string>) => fleetvisorWith({}, ...args)

/** A port nothing listens on: bound, then released. */
const closedPort = Effect.async<number>((resume) => {
  const server = net.createServer().listen(0, "127.0.0.1", () => {
    const { port } = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

describe("npx fleetvisor inspect", () => {
  it.scopedLive("prints the tree of a running service as Inspection.render does", () =>
    Effect.gen(function*() {
      const service = yield* TestService.start()
      yield* TestService.connect(service)
      const { code, stdout } = yield* fleetvisor("inspect", "--url", service.url)
      expect(code).toBe(0)
      expect(stdout).toBe(`${yield* service.system.render}\n`)
      expect(stdout).toMatch(/└─ session:1 running mailbox=0 restarts=0/)
    }))

  it.scopedLive("passes the bearer token, and says so when it is missing", () =>
    Effect.gen(function*() {
      const token = "an-admin-token-for-the-test"
      const service = yield* TestService.start({ ADMIN_TOKEN: token })
      const refused = yield* fleetvisor("inspect", "--url", service.url)
      expect(refused.code).toBe(1)
      expect(refused.stderr).toMatch(/401, pass an admin's token \(or the service's ADMIN_TOKEN\) with --token-file or \$FLEETVISOR_TOKEN/)
      const allowed = yield* fleetvisor("inspect", "--url", service.url, "--token", token)
      expect(allowed.code).toBe(0)
      expect(allowed.stdout).toMatch(/^root \(one_for_one\)$/m)
      // Kept off the command line: from the environment, as `tree`.
      const fromEnv = yield* fleetvisorWith({ FLEETVISOR_TOKEN: token }, "tree", "--url", service.url)
      expect(fromEnv.code).toBe(0)
      expect(fromEnv.stdout).toMatch(/^root \(one_for_one\)$/m)
    }))

  it.live("reports a service it cannot reach", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const { code, stderr } = yield* fleetvisor("inspect", "--url", `http://127.0.0.1:${port}`)
      expect(code).toBe(1)
      expect(stderr).toContain(`cannot reach http://127.0.0.1:${port}: ECONNREFUSED`)
    }))
})
