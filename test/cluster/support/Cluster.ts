/**
 * What the cluster's process tests share: a Redis and the processes of a test file, the robot
 * links a service process runs (read from its actor tree), and waiting with a deadline.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { afterAll, beforeAll } from "vitest"
import type { ActorNode } from "../../../src/actors/Inspection.js"
import type { ServiceProcess } from "../../service/support/ServiceProcess.js"
import { type RedisServer, startRedis } from "../../support/RedisServer.js"
import * as FleetProbe from "../../links/vda5050/support/FleetProbe.js"

/**
 * The robot links running on a node: the names of its running `agv:` and `robot:` actors. Fails
 * when the node does not answer within `timeoutMs` (a paused node never answers).
 */
export const linksOf = async (service: ServiceProcess, timeoutMs = 10_000): Promise<Set<string>> => {
  const response = await fetch(`${service.url}/admin/actors`, { signal: AbortSignal.timeout(timeoutMs) })
  const tree = (await response.json()) as { readonly actors: ReadonlyArray<ActorNode> }
  const found = new Set<string>()
  const walk = (nodes: ReadonlyArray<ActorNode>) => {
    for (const node of nodes) {
      if (node.id !== null && node.status === "running" && /^(agv|robot):/.test(node.name)) found.add(node.name)
      walk(node.children)
    }
  }
  walk(tree.actors)
  return found
}

/**
 * The environment of a service process of a test cluster on the run's Mosquitto under `prefix`:
 * no canvas, no demo fleet, a lease TTL of 3 s (long enough that no lease lapses on a loaded
 * machine: these tests measure no fail-over), and `extra`.
 */
export const agvNodeEnv = (redisUrl: string, prefix: string, extra: Record<string, string> = {}): Record<string, string> => ({
  CANVAS: "off",
  FLEET_DEMO: "off",
  FLEET_MQTT_URL: FleetProbe.MOSQUITTO_URL,
  FLEET_MQTT_PREFIX: prefix,
  REDIS_URL: redisUrl,
  CLUSTER_LEASE_TTL_MS: "3000",
  ...extra
})

/** Resolves once each AGV of `ids` has its link on exactly one of `nodes`; fails after `timeoutMs`. */
export const untilEachAgvOnOne = (nodes: ReadonlyArray<ServiceProcess>, ids: ReadonlyArray<string>, timeoutMs = 20_000) =>
  until("every AGV's link on exactly one node", timeoutMs, async () => {
    const links = await Promise.all(nodes.map(agvLinksOf))
    return ids.every((id) => links.filter((onNode) => onNode.has(id)).length === 1)
  })

/** The AGV links running on a node, by robot id. */
export const agvLinksOf = async (service: ServiceProcess): Promise<Set<string>> =>
  new Set([...(await linksOf(service))].filter((name) => name.startsWith("agv:")).map((name) => name.slice("agv:".length)))

/** A node of a test cluster, by name. */
export interface NamedNode {
  readonly name: string
  readonly service: ServiceProcess
}

/** Which nodes run each robot's link (`agv:…`, `robot:…`), from one concurrent read of every node's tree. */
export const placementOf = async (nodes: ReadonlyArray<NamedNode>, timeoutMs?: number): Promise<Map<string, Array<string>>> => {
  const trees = await Promise.all(nodes.map((node) => linksOf(node.service, timeoutMs)))
  const placement = new Map<string, Array<string>>()
  trees.forEach((links, i) => {
    for (const link of links) placement.set(link, [...(placement.get(link) ?? []), nodes[i]!.name])
  })
  return placement
}

/** Whether each of `expected` runs on exactly one of the nodes read, and nothing else runs. */
export const eachOnce = (placement: ReadonlyMap<string, ReadonlyArray<string>>, expected: ReadonlySet<string>) =>
  placement.size === expected.size && [...expected].every((link) => placement.get(link)?.length === 1)

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `f` every 50 ms until it holds; fails after `timeoutMs`, naming `what`. */
export const until = async (what: string, timeoutMs: number, f: () => Promise<boolean>) => {
  const deadline = Date.now() + timeoutMs
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

/**
 * A test file's cluster, set up by calling this at its top: a Redis of its own started before its
 * tests, and the service processes (`running`) and simulators (in `scope`) its tests start, all
 * stopped after them.
 */
export const clusterFixture = () => {
  let redis: RedisServer | undefined
  const running: Array<ServiceProcess> = []
  const scope = Effect.runSync(Scope.make())
  beforeAll(async () => {
    redis = await startRedis()
  })
  afterAll(async () => {
    await Promise.all(running.splice(0).map((service) => service.dispose()))
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await redis?.stop()
  })
  return {
    /** The Redis, once the tests run. */
    get redis(): RedisServer {
      return redis!
    },
    running,
    scope
  }
}
