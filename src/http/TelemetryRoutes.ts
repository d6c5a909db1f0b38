/**
 * `GET /api/telemetry?robot=<id>&since=<epoch ms>`: the last minutes of one robot's telemetry,
 * from the telemetry log, for the dashboard's plots. The query runs on the telemetry reader's
 * thread (`TelemetryReader`), never on the event loop.
 *
 * - `robot` (required): the robot's id; an AGV's contains `/` (`acme/agv-7`), which the query
 *   string carries as is or as `%2F`.
 * - `since` (optional, epoch ms): the start of the window; default 5 minutes ago. It reaches
 *   back at most `maxWindow` (15 minutes): an earlier `since` is moved up to that, and the
 *   answer's `since` says where it began.
 * - `points` (optional): at most this many samples, evenly thinned (default and most 1,000).
 *
 * The answer is `{ robot, since, until, samples, scanned, truncated }`, samples oldest first as
 * `TelemetrySample`s (`kind` `arm`, `agv-state` or `pose`; see `TelemetryRecorder`). Bad input is
 * a 400 with `{ error }`; a busy or failing reader a 503. The listener applies the `viewer` role
 * when `AUTH` is on, as for any route.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { TelemetryReader } from "../store/TelemetryReader.js"
import * as Route from "./Route.js"

/** How far back a query reaches at most, ms. */
export const maxWindowMs = 15 * 60_000
/** The window when `since` is not given, ms. */
export const defaultWindowMs = 5 * 60_000
/** Samples an answer holds at most. */
export const maxPoints = 1_000
/** The longest robot id taken (an AGV's manufacturer and serial with their `/`). */
const maxRobotLength = 256

/** What a request asks for, or why it cannot be answered. */
export const parse = (
  url: URL,
  now: number
): { readonly robot: string; readonly since: number; readonly until: number; readonly points: number } | { readonly error: string } => {
  const robot = url.searchParams.get("robot")
  if (robot === null || robot === "") return { error: "robot is required: /api/telemetry?robot=<id>&since=<epoch ms>" }
  if (robot.length > maxRobotLength) return { error: `robot is longer than ${maxRobotLength} characters` }
  const sinceText = url.searchParams.get("since")
  const since = sinceText === null ? now - defaultWindowMs : Number(sinceText)
  if (sinceText !== null && (sinceText.trim() === "" || !Number.isFinite(since))) {
    return { error: `since must be a time in milliseconds since the epoch, not "${sinceText.slice(0, 40)}"` }
  }
  const pointsText = url.searchParams.get("points")
  const points = pointsText === null ? maxPoints : Number(pointsText)
  if (!Number.isInteger(points) || points < 2 || points > maxPoints) return { error: `points must be an integer from 2 to ${maxPoints}` }
  return { robot, since: Math.max(Math.floor(since), now - maxWindowMs), until: now, points }
}

/** The route, reading through `reader`. */
export const routes = (reader: TelemetryReader): ReadonlyArray<Route.Route> => [
  Route.make("GET", "/api/telemetry", async (_, response, url) => {
    const query = parse(url, Date.now())
    if ("error" in query) return Route.json(response, 400, { error: query.error })
    const exit = await Effect.runPromiseExit(reader.read(query))
    if (Exit.isSuccess(exit)) {
      const { rows, scanned, truncated } = exit.value
      return Route.json(response, 200, { robot: query.robot, since: query.since, until: query.until, samples: rows, scanned, truncated })
    }
    const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
    Route.json(response, 503, {
      error: failure === undefined ? "the telemetry reader failed" : `telemetry unavailable (${failure.reason}): ${failure.detail}`
    })
  })
]
