/**
 * What the cluster's process tests share: the robot links a service process runs (read from its
 * actor tree), and waiting on a condition with a deadline.
 */
import type { ActorNode } from "../../../src/actors/Inspection.js"
import type { ServiceProcess } from "../../service/support/ServiceProcess.js"

/** The robot links running on a node: the names of its running `agv:` and `robot:` actors. */
export const linksOf = async (service: ServiceProcess): Promise<Set<string>> => {
  const tree = (await (await fetch(`${service.url}/admin/actors`)).json()) as { readonly actors: ReadonlyArray<ActorNode> }
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

/** The AGV links running on a node, by robot id. */
export const agvLinksOf = async (service: ServiceProcess): Promise<Set<string>> =>
  new Set([...(await linksOf(service))].filter((name) => name.startsWith("agv:")).map((name) => name.slice("agv:".length)))

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `f` every 50 ms until it holds; fails after `timeoutMs`, naming `what`. */
export const until = async (what: string, timeoutMs: number, f: () => Promise<boolean>) => {
  const deadline = Date.now() + timeoutMs
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}
