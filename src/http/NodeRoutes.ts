/**
 * Every HTTP route of a node: its own (health and readiness, the admin page and API, the login
 * page) and its features', with `/` sent to the first feature's page, or to `/admin/` when no
 * feature has one.
 *
 * @since 0.1.0
 */
import type { ActorSystem } from "../actors/ActorSystem.js"
import * as AdminRoutes from "./AdminRoutes.js"
import type * as Authenticator from "./Authenticator.js"
import type * as Feature from "./Feature.js"
import type { GatewayMetrics } from "./GatewayMetrics.js"
import * as HealthRoutes from "./HealthRoutes.js"
import * as LoginRoutes from "./LoginRoutes.js"
import * as PageBundle from "./PageBundle.js"
import * as Route from "./Route.js"
import type * as ServiceConfig from "./ServiceConfig.js"

/** What the node's routes are made of. */
export interface NodeRoutesOptions {
  readonly config: ServiceConfig.ServiceConfig
  readonly system: ActorSystem
  /** The node's name, as the admin API reports it. */
  readonly node: string
  readonly auth: Authenticator.Authenticator
  readonly metrics: GatewayMetrics
  /** The node's own readiness checks; the features' are added. */
  readonly readiness: Readonly<Record<string, HealthRoutes.ReadinessCheck>>
  /** This node's part in a cluster, at `/admin/cluster` (see `AdminRoutes`); none on a single node. */
  readonly cluster?: AdminRoutes.ClusterAdmin | undefined
  /** The features that run (their routes, readiness checks and pages). */
  readonly features: ReadonlyArray<Pick<Feature.Feature<unknown>, "routes" | "readiness" | "home">>
}

/** The node's routes, then its features'. */
export const make = (options: NodeRoutesOptions): ReadonlyArray<Route.Route> => {
  const { auth, config, features, metrics } = options
  const featureRoutes = features.flatMap((feature) => feature.routes)
  return [
    ...HealthRoutes.routes({
      metrics,
      readiness: Object.assign({}, options.readiness, ...features.map((feature) => feature.readiness))
    }),
    ...AdminRoutes.routes({
      system: options.system,
      node: options.node,
      token: config.adminToken,
      checkedByListener: auth.mode !== "none",
      pageDirectory: `${PageBundle.packageRoot}/web/admin`,
      cluster: options.cluster
    }),
    ...LoginRoutes.routes({
      auth,
      allowedOrigins: config.allowedOrigins,
      trustedProxies: config.trustedProxies,
      onRefused: (reason) => metrics.authRefused(reason, "login"),
      home: features.find((feature) => feature.home !== undefined)?.home ?? "/admin/"
    }),
    ...featureRoutes,
    ...(featureRoutes.some((route) => route.path === "/") ? [] : [
      Route.make("GET", "/", (_, response) => {
        response.writeHead(302, { location: "/admin/" })
        response.end()
      }, { access: "public" })
    ])
  ]
}
