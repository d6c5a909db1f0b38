/**
 * What every page needs to talk to the server: the `/ws` address, the typed client over the
 * browser's WebSocket, and a wording of the connection state for people.
 *
 * @since 0.1.0
 */
import * as Socket from "@effect/platform/Socket"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type * as ConnectionState from "../../src/client/ConnectionState.js"
import * as FleetvisorClient from "../../src/client/FleetvisorClient.js"

/** The server's `/ws` on the page's host, or the `?ws=` query parameter when given. */
export const serverUrl = (): string =>
  new URLSearchParams(location.search).get("ws") ??
    `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`

/** The typed client over the browser's WebSocket, MessagePack unless `?wire=json`. */
export const clientLayer = (url = serverUrl()): Layer.Layer<FleetvisorClient.FleetvisorClient> =>
  FleetvisorClient.layer({
    url,
    wire: new URLSearchParams(location.search).get("wire") === "json" ? "json" : "msgpack"
  }).pipe(Layer.provide(Socket.layerWebSocketConstructorGlobal))

/** How a page shows the connection: a short text and a tone for its colour. */
export interface ConnectionView {
  readonly text: string
  readonly tone: "ok" | "wait" | "down" | "fatal"
}

/** Why a socket closed, in words: the close code's meaning rather than a socket error's tag. */
const closedReason = (code: number, reason: string): string => {
  switch (code) {
    case 1006:
      return "Cannot reach the server"
    case 1001:
      return "The server is restarting"
    case 1013:
      return "The server is busy"
    case 4401:
      return "Sign in first"
    case 4403:
      return "Your role does not allow this page"
    default:
      return reason === "" ? `Disconnected (close code ${code})` : `Disconnected: ${reason}`
  }
}

/** The connection state in words. */
export const describe = (state: ConnectionState.ConnectionState): ConnectionView => {
  switch (state._tag) {
    case "Connecting":
      return { text: state.attempt > 1 ? `Reconnecting (attempt ${state.attempt})…` : "Connecting…", tone: "wait" }
    case "Open":
      return { text: "Live", tone: "ok" }
    case "Closed":
      return state.code === 4403
        ? { text: closedReason(state.code, state.reason), tone: "fatal" }
        : { text: `${closedReason(state.code, state.reason)}; retrying…`, tone: "down" }
    case "Refused":
      return { text: "This page is out of date: reload it.", tone: "fatal" }
  }
}

/** The login page, coming back to this page once signed in. */
export const loginUrl = (): string => `/login?next=${encodeURIComponent(location.pathname + location.search)}`

/**
 * Shows the connection state in `element` (text and `data-tone`) and on `<body data-connection>`;
 * when the server refuses the page's credential (4401: none, wrong, expired or revoked), the
 * browser goes to the login page, which brings it back here.
 */
export const showConnection = (element: HTMLElement, state: ConnectionState.ConnectionState): void => {
  const { text, tone } = describe(state)
  element.textContent = text
  element.dataset.tone = tone
  document.body.dataset.connection = state._tag
  if (state._tag === "Closed" && state.code === 4401) location.assign(loginUrl())
}

/**
 * Keeps a page subscribed: retries a subscription that ended in error (a drop, a gap the page
 * detected, a refusal of the server) with backoff, until the server refuses the page's version.
 */
export const keepSubscribed = <E extends { readonly _tag: string }, R>(
  subscription: Effect.Effect<void, E, R>
): Effect.Effect<void, E, R> =>
  Effect.retry(subscription, {
    schedule: Schedule.exponential("250 millis").pipe(Schedule.union(Schedule.spaced("5 seconds"))),
    while: (error) => error._tag !== "VersionRefused"
  })
