/**
 * Clients for authentication tests: a raw WebSocket that reports its handshake and close code,
 * HTTP requests with headers, and a token file written with `TokenFile.add`.
 */
import * as Effect from "effect/Effect"
import * as http from "node:http"
import WebSocket from "ws"
import * as TokenFile from "../../../src/http/TokenFile.js"
import type * as Role from "../../../src/http/Role.js"

/** A WebSocket opened by a test: what the server selected, and how it ended. */
export interface OpenedSocket {
  readonly ws: WebSocket
  /** The `Sec-WebSocket-Protocol` of the 101 response (undefined when none). */
  readonly selected: string | undefined
  /** Every header of the 101 response, raw. */
  readonly responseHeaders: http.IncomingHttpHeaders
  /** Resolves with the close code and reason. */
  readonly closed: Promise<{ readonly code: number; readonly reason: string; readonly at: number }>
}

/** Opens a WebSocket; resolves once open (or rejects when the handshake fails). */
export const openSocket = (
  url: string,
  protocols: ReadonlyArray<string>,
  headers: Record<string, string> = {}
): Promise<OpenedSocket> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url, [...protocols], { headers })
    let responseHeaders: http.IncomingHttpHeaders = {}
    ws.once("upgrade", (response) => {
      responseHeaders = response.headers
    })
    const closed = new Promise<{ code: number; reason: string; at: number }>((done) =>
      ws.once("close", (code, reason) => done({ code, reason: reason.toString(), at: Date.now() }))
    )
    ws.once("open", () =>
      resolve({ ws, selected: responseHeaders["sec-websocket-protocol"] as string | undefined, responseHeaders, closed })
    )
    ws.once("error", reject)
  })

/** Opens a WebSocket and waits for the close the server sends at once; its code. */
export const refusedWith = async (url: string, protocols: ReadonlyArray<string>, headers: Record<string, string> = {}) => {
  const socket = await openSocket(url, protocols, headers)
  const { code, reason } = await socket.closed
  return { code, reason, selected: socket.selected }
}

/** A GET (or other method) with headers; resolves with the status, headers and body (the body read up to `maxBytes`). */
export const request = (
  url: string,
  options: { readonly method?: string; readonly headers?: Record<string, string>; readonly body?: string; readonly maxBytes?: number } = {}
): Promise<{ readonly status: number; readonly headers: http.IncomingHttpHeaders; readonly body: string }> =>
  new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? "GET", headers: options.headers }, (response) => {
      let body = ""
      const limit = options.maxBytes ?? 1_000_000
      response.setEncoding("utf8")
      const finish = () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body })
      response.on("data", (chunk: string) => {
        body += chunk
        if (body.length >= limit) {
          finish()
          req.destroy()
        }
      })
      response.on("end", finish)
      response.on("error", () => finish())
    })
    req.on("error", reject)
    req.end(options.body)
  })

/** Adds a token for `user` with `roles` to `file`; its secret. */
export const addToken = (file: string, user: string, roles: ReadonlyArray<Role.Role>, expiresAt?: Date) =>
  Effect.map(TokenFile.add(file, { user, roles, expiresAt }), ({ token }) => token)
