/**
 * The shared pixel canvas: the board actor, its RPC handlers and its Server-Sent Events.
 *
 * Wiring it into a node (what `src/main.ts` does):
 *
 * ```ts
 * import { Canvas, CanvasConfig, CanvasHandlers, CanvasStream } from "./apps/canvas/index.js"
 *
 * // CanvasConfig.layer reads CANVAS_* (fails with a ConfigError naming the variable).
 * // The store must be opened with the same shape: CanvasStore.layer(CanvasConfig.storeOptions(settings)).
 * //
 * // Canvas.layer        needs CanvasConfig | CanvasStore | ActorSystem, and starts the actor under a
 * //                     supervisor of its own ("canvas-supervisor" → "canvas").
 * // Canvas.layerUnstarted needs the same and starts nothing: put `canvas.child` (ChildSpec "canvas")
 * //                     in the root supervisor's children, as in DESIGN.md's tree.
 * //
 * // CanvasHandlers.layer  provides the CanvasJoin and CanvasPlace handlers for
 * //                     RpcBridge.layer(FleetvisorRpcs); it needs Canvas, and reads each request's
 * //                     `Caller` (src/protocol/Caller.ts), which the gateway's session provides
 * //                     through the bridge: its actor and socket backlog, so that slow sockets meet
 * //                     CANVAS_SLOW_CLIENT, and its user, whom a pixel counts for (the client's
 * //                     address when there is no login). Nothing of it comes from the wire, so a
 * //                     client cannot name itself to dodge the cooldown.
 * //
 * // CanvasStream.serverSentEvents is the body of GET /canvas/stream (Stream<Uint8Array, Unavailable,
 * //                     Canvas>), with CanvasStream.headers as response headers. Write it with the
 * //                     response's backpressure (wait for 'drain'), so a slow reader stays bounded.
 * //
 * // With several nodes, CanvasFeature.make(settings, cluster) gives the canvas a CanvasCluster (the
 * //                     board's lease and the backplane, built by src/main.ts from ClusterNode.singleton):
 * //                     one board across the nodes (docs/cluster.md#the-canvas-on-several-nodes).
 * //
 * // The page: web/canvas/index.html at /canvas/ (or /), and `bundle("web/canvas/main.ts")` from
 * //                     src/http/PageBundle.ts as main.js next to it (text/javascript).
 * const settings = yield* CanvasConfig.config
 * const store = Store.layer({ database: { filename }, canvas: CanvasConfig.storeOptions(settings) })
 * const canvas = Canvas.layer.pipe(
 *   Layer.provide(Layer.succeed(CanvasConfig.CanvasConfig, settings)),
 *   Layer.provide(store),
 *   Layer.provide(systemLayer) // the node's ActorSystem layer (the same value everywhere, so it is built once)
 * )
 * const bridge = RpcBridge.layer(FleetvisorRpcs).pipe(
 *   Layer.provide(Layer.mergeAll(CanvasHandlers.layer, FleetHandlers, SystemHandlers)),
 *   Layer.provide(canvas)
 * )
 * ```
 *
 * @since 0.1.0
 */
export * as BoardMessages from "./BoardMessages.js"
export * as Canvas from "./Canvas.js"
export * as CanvasCluster from "./CanvasCluster.js"
export * as CanvasConfig from "./CanvasConfig.js"
export * as CanvasFrame from "./CanvasFrame.js"
export * as CanvasHandlers from "./CanvasHandlers.js"
export * as CanvasStream from "./CanvasStream.js"
