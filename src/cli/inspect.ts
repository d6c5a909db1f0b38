/**
 * `fleetvisor inspect`: prints the actor tree of a running service, as the tests render it.
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
  return options.json === true ? JSON.stringify(tree, null, 2) : Inspection.render(tree.actors)
}
