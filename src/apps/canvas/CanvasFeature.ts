/**
 * The canvas as a feature of the node (see `src/http/Feature.ts`): the `canvas` actor under
 * `root`, the `CanvasJoin`/`CanvasPlace` handlers, the page at `/canvas/` (also the home page),
 * `/canvas/stream`, and a readiness check. Off (`CANVAS=off`), its handlers answer `Unavailable`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { ActorSystem } from "../../actors/ActorSystem.js"
import * as CanvasUnavailable from "../../http/CanvasUnavailable.js"
import * as Feature from "../../http/Feature.js"
import * as PageBundle from "../../http/PageBundle.js"
import * as Route from "../../http/Route.js"
import * as ServerSentEvents from "../../http/ServerSentEvents.js"
import type { CanvasStore } from "../../store/CanvasStore.js"
import * as Canvas from "./Canvas.js"
import * as CanvasCluster from "./CanvasCluster.js"
import * as CanvasConfig from "./CanvasConfig.js"
import * as CanvasHandlers from "./CanvasHandlers.js"
import * as CanvasStream from "./CanvasStream.js"

/** The RPC handlers the canvas feature provides, on or off. */
export type Handlers = Layer.Layer.Success<typeof CanvasUnavailable.layer>

/** The routes of a running canvas: its page at `/canvas/` (also the home page) and its event stream. */
const routes = (canvas: Canvas.Canvas["Type"]): ReadonlyArray<Route.Route> => [
  Route.make("GET", "/", (_, response) => {
    response.writeHead(302, { location: "/canvas/" })
    response.end()
  }, { access: "public" }),
  // An event stream of the gateway's (an actor under gateway/streams, bounded, cut off when stalled).
  // Each chunk waits for the socket to drain, so a slow client's updates wait in its
  // CANVAS_SSE_BUFFER, whose overflow ends the stream.
  Route.eventStream("/canvas/stream", (_, response) =>
    Effect.suspend(() => {
      response.writeHead(200, { ...CanvasStream.headers })
      response.flushHeaders()
      return CanvasStream.serverSentEvents.pipe(
        Stream.runForEach((chunk) => ServerSentEvents.write(response, chunk)),
        Effect.provideService(Canvas.Canvas, canvas),
        Effect.ignore
      )
    })),
  ...PageBundle.routes(PageBundle.packageRoot, "canvas")
]

/** The canvas feature, and the canvas service when it runs. */
export interface CanvasFeature {
  readonly feature: Feature.Feature<Handlers>
  readonly canvas: Option.Option<Canvas.Canvas["Type"]>
}

/** The canvas feature of a node that does not run the canvas: its handlers answer `Unavailable`. */
export const off: CanvasFeature = { feature: Feature.off("canvas", CanvasUnavailable.layer), canvas: Option.none() }

/**
 * The canvas feature over its settings (`None`: off). With a `cluster` (several nodes), the board
 * is one across them: written by the node that holds its lease, replicated on the others.
 */
export const make = (
  settings: Option.Option<CanvasConfig.CanvasSettings>,
  cluster?: CanvasCluster.CanvasCluster | undefined
): Effect.Effect<CanvasFeature, never, Scope.Scope | CanvasStore | ActorSystem> =>
  Option.match(settings, {
    onNone: () => Effect.succeed(off),
    onSome: (settings) =>
      Effect.map(
        Layer.build(Canvas.layerUnstarted).pipe(
          Effect.provideService(CanvasConfig.CanvasConfig, settings),
          cluster === undefined ? (effect) => effect : Effect.provideService(CanvasCluster.CanvasCluster, cluster)
        ),
        (context): CanvasFeature => {
          const canvas = Context.get(context, Canvas.Canvas)
          const feature: Feature.Feature<Handlers> = {
            name: "canvas",
            enabled: true,
            children: [canvas.child],
            handlers: CanvasHandlers.layer.pipe(Layer.provide(Layer.succeed(Canvas.Canvas, canvas))),
            routes: routes(canvas),
            upgrades: [],
            readiness: {
              canvas: Effect.match(canvas.actor, { onFailure: (error) => error.reason, onSuccess: () => undefined })
            },
            home: "/canvas/"
          }
          return { feature, canvas: Option.some(canvas) }
        }
      )
  })
