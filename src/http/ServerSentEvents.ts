/**
 * Server-Sent Events on a Node response: the headers, one event at a time, keep-alive comments,
 * and the end of the stream when the client goes away or the server stops.
 *
 * @since 0.1.0
 */
import type { ServerResponse } from "node:http"

/** An open event stream. */
export interface EventStream {
  /** Sends one event; `false` once the client is gone. */
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
  const keepAlive = setInterval(() => response.write(": keep-alive\n\n"), keepAliveMs)
  response.once("close", () => {
    closed = true
    clearInterval(keepAlive)
  })
  return {
    send: (event, data) => {
      if (closed) return false
      const lines = data.split("\n").map((line) => `data: ${line}`).join("\n")
      response.write(`event: ${event}\n${lines}\n\n`)
      return true
    },
    closed: () => closed,
    onClose: (f) => {
      if (closed) f()
      else response.once("close", f)
    }
  }
}
