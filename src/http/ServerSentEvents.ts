/**
 * Server-Sent Events on a Node response: the headers, one event at a time, keep-alive comments,
 * and the end of the stream when the client goes away or the server stops; and the stall guard
 * every event stream of the node shares.
 *
 * Every writer honours backpressure (`response.write` returning `false`) in one of two ways:
 *
 * - **drop to latest**: while the socket is full nothing more is written; what the client then
 *   gets is the latest state, once the socket drained (`open` below, for the admin tree;
 *   `FleetStream`, which reads the fleet's full view afresh);
 * - **end the stream**: the writer waits for the socket to drain before it takes the next event,
 *   so events wait in the writer's bounded queue; when that overflows the stream ends and
 *   EventSource reconnects to a fresh snapshot (`/canvas/stream`, `CANVAS_SSE_BUFFER`).
 *
 * Either way a client that reads nothing holds one event beyond its socket buffers. How many
 * streams there are at once (`MAX_SSE_STREAMS`) and from one address (`MAX_SSE_STREAMS_PER_ADDRESS`)
 * is the `gateway/streams` supervisor's business (`StreamConnection`); `stallGuard` cuts off a
 * stream whose socket stayed full for `SSE_STALL_TIMEOUT`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type { ServerResponse } from "node:http"

/** An open event stream. */
export interface EventStream {
  /**
   * Sends one event, or, while the socket is full, keeps it to send when the socket drains,
   * in place of any event kept before (each event must be a whole state). `false` once the
   * client is gone.
   */
  readonly send: (event: string, data: string) => boolean
  /** Whether the client is gone. */
  readonly closed: () => boolean
  /** Runs `f` once when the client goes away (or the response ends). */
  readonly onClose: (f: () => void) => void
}

/** Opens an event stream on `response`, with a comment every `keepAliveMs` so proxies keep it open. */
export const open = (response: ServerResponse, keepAliveMs = 15_000): EventStream => {
  response.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store",
    connection: "keep-alive",
    "x-accel-buffering": "no"
  })
  response.flushHeaders()
  let closed = false
  // The latest event that came while the socket was full.
  let pending: string | undefined
  const flush = () => {
    if (closed || pending === undefined) return
    const text = pending
    pending = undefined
    response.write(text)
  }
  response.on("drain", flush)
  const keepAlive = setInterval(() => {
    if (!response.writableNeedDrain) response.write(": keep-alive\n\n")
  }, keepAliveMs)
  response.once("close", () => {
    closed = true
    pending = undefined
    clearInterval(keepAlive)
    response.off("drain", flush)
  })
  return {
    send: (event, data) => {
      if (closed) return false
      const lines = data.split("\n").map((line) => `data: ${line}`).join("\n")
      const text = `event: ${event}\n${lines}\n\n`
      if (response.writableNeedDrain) pending = text
      else response.write(text)
      return true
    },
    closed: () => closed,
    onClose: (f) => {
      if (closed) f()
      else response.once("close", f)
    }
  }
}

/**
 * Writes a chunk; resumes once the socket took it: at once if it had room, else at its next
 * `drain` (or when the response closes). A writer that awaits this before it takes its next
 * event never buffers more than one event beyond the socket.
 */
export const write = (response: ServerResponse, chunk: Uint8Array): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (response.destroyed) return resume(Effect.void)
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

/** The bounds of a node's event streams. */
export interface StreamLimits {
  /** Streams at once (`MAX_SSE_STREAMS`). */
  readonly maxStreams: number
  /** Streams from one client address (`MAX_SSE_STREAMS_PER_ADDRESS`); 0: no limit. */
  readonly maxStreamsPerAddress: number
  /** How long a stream's socket may stay full (`SSE_STALL_TIMEOUT`) before it is destroyed. */
  readonly stallMs: number
}

/** How a stream ended: the client left (`closed`), the server ended it (`ended`), or it was cut off (`stalled`). */
export type EndReason = "closed" | "ended" | "stalled"

/** Cuts off the event streams whose socket stays full too long. */
export interface StallGuard {
  /** Watches `response` until it closes; it is destroyed once its socket stayed full for the guard's time. */
  readonly watch: (response: ServerResponse) => void
  /** Streams watched now. */
  readonly count: () => number
  /** How a watched stream ended (once its response closed). */
  readonly endOf: (response: ServerResponse) => EndReason
}

interface Watched {
  readonly response: ServerResponse
  /** When the socket last had room (or drained). */
  progressAt: number
}

/**
 * The guard of a node's streams. One timer for all of them (running only while some are
 * watched) checks every second (or a quarter of `stallMs`, if shorter) whether a stream's socket
 * has stayed full since `stallMs` ago; such a stream is destroyed, whatever its writer waits
 * for, and its slot is free at once.
 */
export const stallGuard = (stallMs: number): StallGuard => {
  const watched = new Set<Watched>()
  const stalled = new WeakSet<ServerResponse>()
  let timer: ReturnType<typeof setInterval> | undefined
  const period = Math.max(10, Math.min(1000, Math.floor(stallMs / 4)))

  // Full: a write waits for the socket, or the stream ended with bytes the client has not taken.
  const full = (response: ServerResponse) =>
    response.writableNeedDrain || (response.writableEnded && !response.writableFinished)
  const check = () => {
    const now = Date.now()
    for (const stream of watched) {
      if (!full(stream.response)) stream.progressAt = now
      else if (now - stream.progressAt >= stallMs && !stalled.has(stream.response)) {
        stalled.add(stream.response)
        stream.response.destroy()
      }
    }
  }

  const watch = (response: ServerResponse): void => {
    const stream: Watched = { response, progressAt: Date.now() }
    watched.add(stream)
    const drained = () => {
      stream.progressAt = Date.now()
    }
    response.on("drain", drained)
    response.once("close", () => {
      response.off("drain", drained)
      watched.delete(stream)
      if (watched.size === 0 && timer !== undefined) {
        clearInterval(timer)
        timer = undefined
      }
    })
    if (timer === undefined) {
      timer = setInterval(check, period)
      timer.unref()
    }
  }

  return {
    watch,
    count: () => watched.size,
    endOf: (response) => (stalled.has(response) ? "stalled" : response.writableEnded ? "ended" : "closed")
  }
}
