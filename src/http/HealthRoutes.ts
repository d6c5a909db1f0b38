/**
 * `/healthz` (the process answers), `/readyz` (it should get traffic: listening, not draining,
 * its checks pass) and `/metrics` (Prometheus text). All three are public whatever `AUTH` is.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type { GatewayMetrics } from "./GatewayMetrics.js"
import * as Route from "./Route.js"

/** One readiness check: `undefined` when fine, else why not. */
export type ReadinessCheck = Effect.Effect<string | undefined>

/** The routes, given the checks of `/readyz` by name. */
export const routes = (options: {
  readonly metrics: GatewayMetrics
  readonly readiness: Readonly<Record<string, ReadinessCheck>>
}): ReadonlyArray<Route.Route> => [
  Route.make("GET", "/healthz", (_, response) => Route.json(response, 200, { status: "ok" }), { access: "public" }),
  Route.make("GET", "/readyz", async (_, response) => {
    const checks = await Effect.runPromise(
      Effect.all(options.readiness, { concurrency: "unbounded" })
    )
    const failing = Object.entries(checks).filter(([, problem]) => problem !== undefined)
    Route.json(response, failing.length === 0 ? 200 : 503, {
      status: failing.length === 0 ? "ready" : "not ready",
      checks: Object.fromEntries(Object.entries(checks).map(([name, problem]) => [name, problem ?? "ok"]))
    })
  }, { access: "public" }),
  Route.make("GET", "/metrics", async (_, response) => {
    const body = await Effect.runPromise(options.metrics.text)
    Route.text(response, 200, body, { "content-type": options.metrics.registry.contentType })
  }, { access: "public" })
]
