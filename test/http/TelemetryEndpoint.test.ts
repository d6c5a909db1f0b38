import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestKit from "../../src/actors/TestKit.js"
import * as TelemetryRoutes from "../../src/http/TelemetryRoutes.js"
import * as FleetNode from "../service/support/FleetNode.js"

interface Answer {
  readonly robot: string
  readonly since: number
  readonly until: number
  readonly samples: ReadonlyArray<{ readonly at: number; readonly kind: string; readonly payload?: any }>
  readonly scanned: number
  readonly truncated: boolean
  readonly error?: string
}

const get = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url)
    return { status: response.status, body: (await response.json()) as Answer }
  })

describe("GET /api/telemetry", () => {
  it("parse: bounds the window to 15 minutes, defaults to 5, refuses what it cannot read", () => {
    const now = 1_000_000_000_000
    const at = (query: string) => TelemetryRoutes.parse(new URL(`http://x/api/telemetry?${query}`), now)
    expect(at("robot=acme/agv-1")).toEqual({ robot: "acme/agv-1", since: now - 5 * 60_000, until: now, points: 1_000 })
    expect(at("robot=acme%2Fagv-1&since=0")).toMatchObject({ robot: "acme/agv-1", since: now - 15 * 60_000 })
    expect(at(`robot=a&since=${now - 60_000}&points=50`)).toMatchObject({ since: now - 60_000, points: 50 })
    for (const bad of ["", "robot=", "robot=a&since=soon", "robot=a&since=", "robot=a&points=1", "robot=a&points=5000", `robot=${"x".repeat(300)}`]) {
      expect(at(bad), bad).toHaveProperty("error")
    }
  })

  it.scopedLive("answers a robot's recent samples from the telemetry log, AGV ids with / included; bad input is 400", () =>
    Effect.gen(function*() {
      const node = yield* FleetNode.start({ arms: 1, agvs: 2 })
      const base = `${node.service.url}/api/telemetry`
      const [agv] = node.agvs
      const [arm] = node.arms
      // The recorder batches rows for the writer thread: wait until both kinds are readable.
      yield* TestKit.awaitUntil(
        Effect.map(
          Effect.all([get(`${base}?robot=${agv}`), get(`${base}?robot=${arm}`)]),
          ([a, b]) => a.body.samples?.some((s) => s.kind === "agv-state") === true && (b.body.samples?.length ?? 0) > 2
        ),
        { timeoutMillis: 10_000, waitedFor: "telemetry of both robots in the log" }
      )
      const raw = yield* get(`${base}?robot=${agv}&since=0`)
      const encoded = yield* get(`${base}?robot=${encodeURIComponent(agv)}`)
      expect(raw.status).toBe(200)
      expect(raw.body.robot).toBe(agv)
      expect(encoded.body.robot).toBe(agv)
      // since=0 reaches back 15 minutes at most.
      expect(raw.body.until - raw.body.since).toBe(15 * 60_000)
      const states = raw.body.samples.filter((s) => s.kind === "agv-state")
      expect(typeof states[0].payload.battery).toBe("number")
      const times = raw.body.samples.map((s) => s.at)
      expect([...times].sort((a, b) => a - b)).toEqual(times)
      const armSamples = (yield* get(`${base}?robot=${arm}&points=2`)).body
      expect(armSamples.samples).toHaveLength(2)
      expect(armSamples.samples[0].payload.joints).toHaveProperty("J1")
      expect(armSamples.scanned).toBeGreaterThan(2)
      const unknown = yield* get(`${base}?robot=nobody/here`)
      expect(unknown).toMatchObject({ status: 200, body: { samples: [] } })

      for (const query of ["", "?robot=", `?robot=${arm}&since=yesterday`, `?robot=${arm}&points=0`, `?robot=${"a".repeat(400)}`]) {
        const refused = yield* get(`${base}${query}`)
        expect(refused.status, query).toBe(400)
        expect(refused.body.error, query).toMatch(/robot|since|points/)
      }
      const post = yield* Effect.promise(() => fetch(`${base}?robot=${arm}`, { method: "POST" }))
      expect(post.status).toBe(405)
    }), { timeout: 30_000 })
})
