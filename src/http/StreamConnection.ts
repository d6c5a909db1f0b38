/**
 * One Server-Sent Events stream as an actor, a child of `gateway/streams` registered as
 * `stream:<n>` (temporary: `EventSource` reconnects by itself).
 *
 * The actor owns the response: its `init` runs the route (a handler that registers the response
 * wherever its events come from, or a `Route.StreamBody` effect, forked in the actor's scope),
 * and the stream lasts until the response closes. Whatever ends the actor (the client leaving,
 * the stall guard cutting it off, the body ending, the server shutting down with `GoAway`)
 * interrupts the body and ends the response, so no fiber of a stream lives outside the tree.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import type { IncomingMessage, ServerResponse } from "node:http"
import type * as Actor from "../actors/Actor.js"
import * as ExitReason from "../actors/ExitReason.js"
import type * as Connections from "./Connections.js"
import type { GatewayMetrics } from "./GatewayMetrics.js"
import * as Route from "./Route.js"
import type * as ServerSentEvents from "./ServerSentEvents.js"

/** What a stream accepts: its response closed, or the server is going away. */
export type StreamMessage = Connections.GoAway | { readonly _tag: "Closed" }

const closed: StreamMessage = { _tag: "Closed" }

/** What one stream needs. */
export interface StreamOptions {
  readonly request: IncomingMessage
  readonly response: ServerResponse
  readonly url: URL
  readonly route: Route.Route
  /** The client's address (behind a trusted proxy, the forwarded one). */
  readonly address: string
  readonly guard: ServerSentEvents.StallGuard
  readonly metrics: GatewayMetrics
}

/** A stream's state, as `getState` and the admin view see it. */
export interface StreamState {
  readonly path: string
  readonly address: string
  readonly openedAt: number
  readonly response: ServerResponse
}

/** The behaviour of one stream. */
export const make = (options: StreamOptions): Actor.Behaviour<StreamMessage, StreamState> => ({
  name: "event_stream",
  init: (ctx): Effect.Effect<StreamState, never, Scope.Scope> =>
    Effect.gen(function*() {
      const { metrics, request, response, route, url } = options
      const self = ctx.self
      metrics.sse.open++
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          metrics.sse.open--
          // The server ends what the client has not: the body's last bytes go, then the end.
          if (!response.writableEnded && !response.destroyed) response.end()
        })
      )
      if (response.destroyed) self.unsafeTellUrgent(closed)
      else response.once("close", () => self.unsafeTellUrgent(closed))
      options.guard.watch(response)
      const fail = (error: unknown) =>
        Effect.zipRight(
          Effect.logError("request failed", url.pathname, error),
          Effect.sync(() => {
            if (!response.headersSent) Route.text(response, 500, "Internal error\n")
            else response.destroy()
          })
        )
      if (route.body !== undefined) {
        yield* Effect.forkScoped(
          Effect.catchAllDefect(route.body(request, response, url), fail).pipe(
            Effect.ensuring(Effect.sync(() => response.end()))
          )
        )
      } else {
        try {
          const result = route.handler(request, response, url)
          if (result instanceof Promise) {
            result.catch((error) => Effect.runFork(fail(error)))
          }
        } catch (error) {
          yield* fail(error)
        }
      }
      return { path: url.pathname, address: options.address, openedAt: Date.now(), response }
    }),
  receive: (state, message, ctx) => {
    switch (message._tag) {
      case "Closed":
        ctx.stop(ExitReason.normal)
        return state
      case "GoAway":
        ctx.stop(ExitReason.shutdown("server shutting down"))
        return state
    }
  },
  terminate: (state) =>
    Effect.sync(() => {
      // Ended by the server (the finalizer ends it after this): counted as such.
      if (!state.response.writableEnded && !state.response.destroyed) state.response.end()
      options.metrics.sseEnded(options.guard.endOf(state.response))
    })
})
