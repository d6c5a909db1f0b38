/**
 * The fleet as Server-Sent Events, as operators of the earlier VDA 5050 bridge use it:
 * `GET /stream` for every robot and `GET /stream/{manufacturer}/{serial}` for one AGV (any
 * robot id works: an arm's is `/stream/demo-arm-1`). Each stream starts with one `snapshot`
 * event, then sends an `update` event per conflated fleet update (at most 30 a second) that
 * touches what it watches; `id` is the fleet's tick.
 *
 * ```text
 * event: snapshot
 * id: 1200
 * data: {"tick":1200,"robots":[{"kind":"agv","id":"fleetvisor/demo-001","status":"online",…}]}
 *
 * event: update
 * id: 1201
 * data: {"tick":1201,"robots":[…only the robots that changed…]}
 * ```
 *
 * One robot's events carry `{"tick":…,"robot":{…}}` instead; an unknown robot is a 404.
 *
 * Backpressure: an event is written only once the previous one drained to the socket; while a
 * client is slow, updates wait in a small buffer, and a client that fell behind gets the full
 * view of what it watches, read fresh, as its next `update`, so it never keeps a stale robot. An
 * `update` of `/stream` is encoded once for every client. When the client leaves, its
 * subscription ends with the response.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type { ServerResponse } from "node:http"
import type { Encoded } from "../actors/Encoded.js"
import * as PubSub from "../actors/PubSub.js"
import type { FleetUpdate, RobotView } from "../protocol/FleetRpcs.js"
import * as Route from "./Route.js"

/** What the streams read: the fleet's hub and views topic, and its state now. */
export interface FleetSource {
  readonly hub: PubSub.PubSub
  /** The topic of `Encoded<FleetUpdate>` broadcasts. */
  readonly viewsTopic: string
  readonly state: Effect.Effect<{ readonly tick: number; readonly robots: ReadonlyArray<RobotView> }>
}

/** Options of the streams. */
export interface FleetStreamOptions {
  /** Updates held for a slow client (beyond them, new ones are dropped until it catches up with a full view); default 64. */
  readonly bufferSize?: number | undefined
  /** A comment line this often keeps proxies from closing an idle stream; default 15 s. */
  readonly keepAliveMs?: number | undefined
}

/** The response headers of an event stream. */
export const headers: Readonly<Record<string, string>> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-transform",
  connection: "keep-alive",
  "x-accel-buffering": "no"
}

/** One event, as the bytes of the stream. */
export const event = (name: "snapshot" | "update", tick: number, data: unknown): Buffer =>
  Buffer.from(`event: ${name}\nid: ${tick}\ndata: ${JSON.stringify(data)}\n\n`)

const keepAlive = Buffer.from(": keep-alive\n\n")

/** Writes a chunk; resumes once the socket drained it (or at once if it had room). */
const write = (response: ServerResponse, chunk: Buffer): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (response.write(chunk)) return resume(Effect.void)
    const done = () => {
      response.off("drain", done)
      response.off("close", done)
      resume(Effect.void)
    }
    response.on("drain", done)
    response.on("close", done)
    return Effect.sync(() => {
      response.off("drain", done)
      response.off("close", done)
    })
  })

/** What one stream watches: every robot, or one. */
interface Watch {
  readonly key: string
  readonly pick: (tick: number, robots: ReadonlyArray<RobotView>) => unknown | undefined
}

const everyRobot: Watch = {
  key: "sse",
  pick: (tick, robots) => (robots.length === 0 ? undefined : { tick, robots })
}

const oneRobot = (id: string): Watch => ({
  key: `sse:${id}`,
  pick: (tick, robots) => {
    const robot = robots.find((r) => r.id === id)
    return robot === undefined ? undefined : { tick, robot }
  }
})

const serve = (source: FleetSource, response: ServerResponse, watch: Watch, options: FleetStreamOptions) =>
  Effect.scoped(Effect.gen(function*() {
    // Subscribe before reading the snapshot, so no update falls between them. A full buffer
    // drops the newest updates; the next batch then has more than one and the state is read fresh.
    const updates = yield* PubSub.subscribeQueue<Encoded<typeof FleetUpdate.Type>>(source.hub, source.viewsTopic, {
      bufferSize: options.bufferSize ?? 64,
      overflow: "dropping"
    })
    const snapshot = yield* source.state
    const first = watch.pick(snapshot.tick, snapshot.robots)
    if (first === undefined && watch !== everyRobot) {
      return Route.text(response, 404, "No robot has this id\n")
    }
    response.writeHead(200, headers)
    response.flushHeaders()
    const timer = setInterval(() => {
      if (!response.writableNeedDrain) response.write(keepAlive)
    }, options.keepAliveMs ?? 15_000)
    yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(timer)))
    yield* write(response, event("snapshot", snapshot.tick, first ?? { tick: snapshot.tick, robots: [] }))
    let tick = snapshot.tick
    while (!response.destroyed) {
      const batch = [...yield* Queue.takeBetween(updates, 1, Number.POSITIVE_INFINITY)].filter((e) => e.value.tick > tick)
      if (batch.length === 0) continue
      const encoded = batch[batch.length - 1]
      const update = encoded.value
      let chunk: Buffer | null
      if (batch.length > 1 || update.tick !== tick + 1) {
        // The client fell behind (or lost updates): one full view of what it watches, read now.
        const now = yield* source.state
        const data = watch.pick(now.tick, now.robots)
        chunk = data === undefined ? null : event("update", now.tick, data)
        tick = Math.max(update.tick, now.tick)
      } else {
        chunk = encoded.get(watch.key, (value) => {
          const data = watch.pick(value.tick, value.robots)
          return data === undefined ? null : event("update", value.tick, data)
        })
        tick = update.tick
      }
      if (chunk !== null) yield* write(response, chunk)
    }
  }))

/** Parses `/stream/{manufacturer}/{serial}` (or `/stream/{arm}`) into a robot id. */
export const robotOf = (pathname: string): string | undefined => {
  const parts = pathname.slice("/stream/".length).split("/")
  if (parts.length > 2 || parts.some((part) => part === "")) return undefined
  try {
    return parts.map(decodeURIComponent).join("/")
  } catch {
    return undefined
  }
}

/** `GET /stream` and `GET /stream/{manufacturer}/{serial}`. */
export const routes = (source: FleetSource, options: FleetStreamOptions = {}): ReadonlyArray<Route.Route> => {
  const run = (response: ServerResponse, watch: Watch) => {
    const fiber = Effect.runFork(
      serve(source, response, watch, options).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("fleet event stream failed", cause)),
        Effect.ensuring(Effect.sync(() => response.end()))
      )
    )
    response.once("close", () => fiber.unsafeInterruptAsFork(fiber.id()))
  }
  return [
    Route.make("GET", "/stream", (_, response) => run(response, everyRobot)),
    Route.make("GET", "/stream/*", (_, response, url) => {
      const robot = robotOf(url.pathname)
      if (robot === undefined) return Route.text(response, 404, "Use /stream or /stream/{manufacturer}/{serial}\n")
      run(response, oneRobot(robot))
    })
  ]
}
