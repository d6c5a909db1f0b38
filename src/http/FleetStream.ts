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
 * One subscription and one fiber serve every stream of the routes: each update is handed to
 * every stream in turn and encoded once per watch (an `update` of `/stream` once for all its
 * clients), so a thousand streams cost a thousand socket writes per update, not a thousand
 * fibers. The subscription exists while some stream is open.
 *
 * Backpressure (drop to latest): a stream's next event is written only once its socket drained
 * the previous one; updates that come meanwhile are not kept, and a client that fell behind gets
 * the full view of what it watches, read afresh (one read shared by the streams behind), as its
 * next `update`, so it never keeps a stale robot and the server never buffers for it. The routes
 * are event streams (`Route.eventStream`): the listener bounds how many there are and cuts off
 * one whose client reads nothing for `SSE_STALL_TIMEOUT`.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
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
  /**
   * Updates the shared subscription holds while the streams are being written to (beyond them,
   * new ones are dropped, and the streams catch up with a full view); default 64. A slow client
   * holds none: it skips updates and catches up with a full view when its socket drains.
   */
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

const keepAliveLine = Buffer.from(": keep-alive\n\n")

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

type View = Effect.Effect.Success<FleetSource["state"]>

/**
 * The fleet's view as the streams read it, shared: every stream that asks while a read is on
 * its way gets the next read (started after it asked, so nothing it subscribed to is older), and
 * a stream that fell behind takes the latest view read, when it is as new as the updates it saw.
 * A thousand streams that fall behind together cost one read of `fleet/state` and one encoding
 * per watch, not a thousand.
 */
const sharedViews = (state: FleetSource["state"]) => {
  let last: View | undefined
  let current: Promise<View> | undefined
  let next: Promise<View> | undefined
  const start = (): Promise<View> => {
    const read = Effect.runPromise(state).then((view) => {
      last = view
      return view
    })
    current = read
    void read.then(() => (current = undefined), () => (current = undefined))
    return read
  }
  const fresh = (): Promise<View> => {
    if (current === undefined) return start()
    next ??= current.then(() => undefined, () => undefined).then(() => {
      next = undefined
      return current ?? start()
    })
    return next
  }
  const encoded = new Map<string, { readonly view: View; readonly chunk: Buffer | null }>()
  return {
    /** A view read after this call. */
    fresh,
    /** The latest view read if its tick is at least `tick`, else a fresh one. */
    atLeast: (tick: number): Promise<View> => (last !== undefined && last.tick >= tick ? Promise.resolve(last) : fresh()),
    /** The `update` event of `view` for `watch`, encoded once per view and watch. */
    update: (watch: Watch, view: View): Buffer | null => {
      const cached = encoded.get(watch.key)
      if (cached !== undefined && cached.view === view) return cached.chunk
      const data = watch.pick(view.tick, view.robots)
      const chunk = data === undefined ? null : event("update", view.tick, data)
      encoded.set(watch.key, { view, chunk })
      return chunk
    }
  }
}

/** One open stream. */
interface Client {
  readonly response: ServerResponse
  readonly watch: Watch
  /** The tick of the last event it was sent (its snapshot's, at first). */
  tick: number
  /** The newest tick it has been offered. */
  seen: number
  /** Its snapshot has been written. */
  ready: boolean
  /** Its socket is full (it waits for `drain`), or a full view is being read for it. */
  busy: boolean
}

/**
 * The streams of one set of routes, fed by one subscription and one fiber whatever their number:
 * each fleet update is handed to every stream in turn, synchronously, and written where the
 * socket has room. The subscription exists while a stream is open.
 */
const fanOut = (source: FleetSource, options: FleetStreamOptions) => {
  const slice = 50
  const views = sharedViews(source.state)
  const clients = new Set<Client>()
  let running: { readonly scope: Scope.CloseableScope; readonly pump: Fiber.RuntimeFiber<never> } | undefined
  let keepAlive: ReturnType<typeof setInterval> | undefined

  const gone = (client: Client) => client.response.destroyed || client.response.writableEnded

  /** Writes; a full socket makes the stream busy until it drains, and a stream behind then catches up. */
  const send = (client: Client, chunk: Buffer) => {
    if (gone(client) || client.response.write(chunk)) return
    client.busy = true
    client.response.once("drain", () => {
      client.busy = false
      if (client.seen > client.tick) catchUp(client)
    })
  }

  /** One full view of what it watches, as new as what it was offered. */
  const catchUp = (client: Client) => {
    client.busy = true
    views.atLeast(client.seen).then((view) => {
      client.busy = false
      if (gone(client)) return
      client.tick = view.tick
      client.seen = Math.max(client.seen, view.tick)
      const chunk = views.update(client.watch, view)
      if (chunk !== null) send(client, chunk)
      // Updates came while the view was read: the next full view (the latest read, or a fresh one).
      if (!client.busy && client.seen > client.tick) catchUp(client)
    }, (error) => {
      Effect.runFork(Effect.logWarning("fleet event stream failed", error))
      client.response.destroy()
    })
  }

  /** One update to one stream: written if it is the next and the socket has room; else noted, to catch up. */
  const deliverTo = (client: Client, encoded: Encoded<typeof FleetUpdate.Type>) => {
    const update = encoded.value
    try {
      if (update.tick <= client.seen) return
      const next = client.seen === client.tick && update.tick === client.tick + 1
      client.seen = update.tick
      if (!client.ready || client.busy) return
      if (!next) return catchUp(client)
      client.tick = update.tick
      const chunk = encoded.get(client.watch.key, (value) => {
        const data = client.watch.pick(value.tick, value.robots)
        return data === undefined ? null : event("update", value.tick, data)
      })
      if (chunk !== null) send(client, chunk)
    } catch (error) {
      Effect.runFork(Effect.logWarning("fleet event stream failed", error))
      client.response.destroy()
    }
  }

  /**
   * Hands one update to every stream, `slice` streams per turn of the event loop, so that a
   * thousand socket writes never hold the loop (and every session's ping) for long. The next
   * update waits for this one; while it waits, the subscription's bounded queue drops the
   * newest, and the streams then catch up with a full view.
   */
  const deliver = (encoded: Encoded<typeof FleetUpdate.Type>) =>
    Effect.async<void>((resume) => {
      const list = [...clients]
      let i = 0
      const step = () => {
        const end = Math.min(list.length, i + slice)
        for (; i < end; i++) if (!gone(list[i])) deliverTo(list[i], encoded)
        if (i < list.length && running !== undefined) setImmediate(step)
        else resume(Effect.void)
      }
      step()
    })

  const start = () => {
    const scope = Effect.runSync(Scope.make())
    const updates = Effect.runSync(Scope.extend(
      PubSub.subscribeQueue<Encoded<typeof FleetUpdate.Type>>(source.hub, source.viewsTopic, {
        bufferSize: options.bufferSize ?? 64,
        overflow: "dropping"
      }),
      scope
    ))
    // Behind (several updates waiting): only the latest is handed out; the streams see the gap
    // and catch up with one full view, read and encoded once for all of them.
    const pump = Effect.runFork(Effect.forever(Effect.flatMap(
      Queue.takeBetween(updates, 1, Number.POSITIVE_INFINITY),
      (batch) => deliver(Chunk.unsafeLast(batch))
    )))
    running = { scope, pump }
    keepAlive = setInterval(() => {
      for (const client of clients) if (client.ready && !client.busy && !gone(client)) client.response.write(keepAliveLine)
    }, options.keepAliveMs ?? 15_000)
    keepAlive.unref()
  }

  const stop = () => {
    if (running === undefined) return
    const { pump, scope } = running
    running = undefined
    clearInterval(keepAlive)
    Effect.runFork(Effect.zipRight(Fiber.interrupt(pump), Scope.close(scope, Exit.void)))
  }

  /** Serves one stream on `response` until it closes. */
  const open = (response: ServerResponse, watch: Watch) => {
    // Join (and subscribe) before reading the snapshot, so no update falls between them.
    if (clients.size === 0) start()
    const client: Client = { response, watch, tick: -1, seen: -1, ready: false, busy: false }
    clients.add(client)
    response.once("close", () => {
      clients.delete(client)
      if (clients.size === 0) stop()
    })
    views.fresh().then((snapshot) => {
      if (gone(client)) return
      const first = watch.pick(snapshot.tick, snapshot.robots)
      if (first === undefined && watch !== everyRobot) return Route.text(response, 404, "No robot has this id\n")
      response.writeHead(200, headers)
      client.tick = snapshot.tick
      client.seen = Math.max(client.seen, snapshot.tick)
      client.ready = true
      send(client, event("snapshot", snapshot.tick, first ?? { tick: snapshot.tick, robots: [] }))
      if (!client.busy && client.seen > client.tick) catchUp(client)
    }, (error) => {
      Effect.runFork(Effect.logWarning("fleet event stream failed", error))
      if (!response.headersSent) Route.text(response, 503, "The fleet's state is not available\n")
      else response.destroy()
    })
  }

  return { open, count: () => clients.size }
}

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
  const streams = fanOut(source, options)
  return [
    Route.make("GET", "/stream", (_, response) => streams.open(response, everyRobot), { eventStream: true }),
    Route.make("GET", "/stream/*", (_, response, url) => {
      const robot = robotOf(url.pathname)
      if (robot === undefined) return Route.text(response, 404, "Use /stream or /stream/{manufacturer}/{serial}\n")
      streams.open(response, oneRobot(robot))
    }, { eventStream: true })
  ]
}
