/**
 * `fleetvisor inspect`: prints the actor tree of a running service, as the tests render it, and,
 * when the service is one node of a cluster (`REDIS_URL`), which node it is, the live nodes and
 * the robots it runs.
 *
 * ```text
 * $ npx fleetvisor inspect --url http://127.0.0.1:8080
 * root (one_for_one)
 * ├─ store running mailbox=0 restarts=0
 * └─ gateway (rest_for_one)
 * ...
 * ```
 *
 * @since 0.1.0
 */
import * as Inspection from "../actors/Inspection.js"
import type { ActorTree } from "../http/AdminRoutes.js"

/** Options of `inspect`. */
export interface InspectOptions {
  /** The service's base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string
  /** The admin bearer token, when the service has one. */
  readonly token?: string | undefined
  /** Print the JSON of `/admin/actors` instead of the text tree. */
  readonly json?: boolean | undefined
}

/** A failure to report to the user, without a stack trace. */
export class InspectError extends Error {
  override readonly name = "InspectError"
}

/** Fetches the tree of a running service and renders it. */
export const inspect = async (options: InspectOptions): Promise<string> => {
  const endpoint = new URL("/admin/actors", options.url)
  let response: Response
  try {
    response = await fetch(endpoint, {
      headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
      signal: AbortSignal.timeout(10_000)
    })
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause
    const why = cause?.code ?? cause?.message ?? (error as Error).message
    throw new InspectError(`cannot reach ${endpoint.origin}: ${why}`)
  }
  if (response.status === 401) throw new InspectError(`${endpoint}: 401, pass an admin's token (or the service's ADMIN_TOKEN) with --token-file or $FLEETVISOR_TOKEN`)
  if (response.status === 403) throw new InspectError(`${endpoint}: 403, ${(await response.json()).error}`)
  if (!response.ok) throw new InspectError(`${endpoint}: HTTP ${response.status}`)
  const tree = (await response.json()) as ActorTree
  if (options.json === true) return JSON.stringify(tree, null, 2)
  const cluster = await clusterOf(options)
  return cluster === undefined ? Inspection.render(tree.actors) : `${Inspection.render(tree.actors)}\n${renderCluster(cluster)}`
}

/** What `/admin/cluster` says of a node in a cluster. */
interface ClusterView {
  readonly node: string
  readonly epoch: number
  readonly live: ReadonlyArray<{ readonly id: string; readonly draining: boolean }>
  readonly owned: ReadonlyArray<string>
}

/** The node's part in a cluster, or undefined on a single node (404) or when it cannot be read. */
const clusterOf = async (options: InspectOptions): Promise<ClusterView | undefined> => {
  try {
    const response = await fetch(new URL("/admin/cluster", options.url), {
      headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
      signal: AbortSignal.timeout(10_000)
    })
    return response.ok ? ((await response.json()) as ClusterView) : undefined
  } catch {
    return undefined
  }
}

/** Which node this is, the live nodes, and the robots this node runs. */
const renderCluster = (cluster: ClusterView): string =>
  [
    `cluster: this node ${cluster.node}, epoch ${cluster.epoch}`,
    `live nodes: ${cluster.live.map((member) => (member.draining ? `${member.id} (draining)` : member.id)).join(", ")}`,
    `runs ${cluster.owned.length} robots${cluster.owned.length === 0 ? "" : `: ${cluster.owned.join(", ")}`}`
  ].join("\n")
