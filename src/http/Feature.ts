/**
 * One feature of a node (the canvas, the fleet): everything it adds to the service, as one value.
 * `start` in `src/main.ts` folds over the features: their subtrees go under `root` before the
 * gateway, their handlers into the RPC bridge, their routes and upgrades into the listener, their
 * readiness checks into `/readyz`. A feature that is off is a value too: its handlers answer
 * (`Unavailable`, an empty fleet) and it adds nothing else.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type { ChildSpec } from "../supervisors/ChildSpec.js"
import type { UpgradeHandler } from "./Listener.js"
import type { Route } from "./Route.js"

/** What a feature adds to the node; `Handlers` are the RPC handler services it provides. */
export interface Feature<Handlers> {
  /** Its name in the `Hello` reply's features when it runs. */
  readonly name: string
  /** Whether it runs (off: only its handlers, which say so). */
  readonly enabled: boolean
  /** Its subtrees, started under `root` in this order, before the gateway. */
  readonly children: ReadonlyArray<ChildSpec>
  /** Its RPC handlers. */
  readonly handlers: Layer.Layer<Handlers>
  /** Its HTTP routes. */
  readonly routes: ReadonlyArray<Route>
  /** Its WebSocket endpoints besides `/ws`, by path. */
  readonly upgrades: ReadonlyArray<readonly [path: string, handler: UpgradeHandler]>
  /** Checks of `/readyz`, by name: a reason when not ready, `undefined` when ready. */
  readonly readiness: Readonly<Record<string, Effect.Effect<string | undefined>>>
  /** What the login page sends a user to, when the feature has a page. */
  readonly home?: string | undefined
}

/** A feature that is off: only its handlers. */
export const off = <Handlers>(name: string, handlers: Layer.Layer<Handlers>): Feature<Handlers> => ({
  name,
  enabled: false,
  children: [],
  handlers,
  routes: [],
  upgrades: [],
  readiness: {}
})
