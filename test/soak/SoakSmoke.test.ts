/**
 * The short version of `npm run soak` that CI runs: half a minute of connection churn, painting,
 * fleet commands and telemetry against the real service process. It checks what must hold
 * whatever the machine's speed: nothing failed, no error log line, and the node is back to its
 * idle shape (no session left, as many actors as before the load). Heap slopes need the
 * 10-minute run (`npm run soak`); they are not asserted here.
 */
import { describe, expect, it } from "vitest"
import { execFile } from "node:child_process"
import * as path from "node:path"

const soak = path.join(import.meta.dirname, "..", "..", "bench", "soak.ts")

interface SoakReport {
  readonly load: { readonly churned: number; readonly churnFailed: number; readonly placed: number; readonly placeFailed: number; readonly rounds: number }
  readonly rpcOutcomes: Record<string, number>
  readonly idleBeforeLoad: { readonly sessions: number; readonly actors: number }
  readonly afterLoad: { readonly sessions: number; readonly actors: number }
  readonly logs: { readonly errors: number; readonly firstErrors: ReadonlyArray<string>; readonly exitCode: number | null }
}

const runSoak = (env: Record<string, string>) =>
  new Promise<SoakReport>((resolve, reject) =>
    execFile(process.execPath, ["--import", "tsx", soak], { env: { ...process.env, ...env }, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
      error === null ? resolve(JSON.parse(stdout)) : reject(new Error(`${error.message}\n${stderr.slice(-2000)}`))
    )
  )

describe("soak, short", () => {
  it("half a minute of everything at once: nothing fails, no error is logged, the node returns to idle", async () => {
    const report = await runSoak({ SOAK_MINUTES: "0.5", SOAK_SAMPLE_SECONDS: "5", SOAK_WATCHERS: "20", SOAK_CHURN_PER_SECOND: "20" })
    expect(report.load.churned).toBeGreaterThan(100)
    expect(report.load.placed).toBeGreaterThan(100)
    expect(report.load.rounds).toBeGreaterThan(5)
    expect([report.load.churnFailed, report.load.placeFailed]).toEqual([0, 0])
    for (const outcome of Object.keys(report.rpcOutcomes)) expect(outcome).toMatch(/:(ok|ControlHeld)$/)
    expect(report.logs.firstErrors).toEqual([])
    expect(report.logs.errors).toBe(0)
    expect(report.logs.exitCode).toBe(0)
    expect(report.afterLoad.sessions).toBe(0)
    expect(report.afterLoad.actors).toBe(report.idleBeforeLoad.actors)
  }, 150_000)
})
