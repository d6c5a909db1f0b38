/**
 * Snapshots of a live actor tree, and their deterministic text rendering for
 * tests and the CLI:
 *
 * ```text
 * root (one_for_one)
 * ├─ sessions (dynamic, 2/20000)
 * │  ├─ session:7 running mailbox=0 restarts=0
 * │  └─ session:9 running mailbox=0 restarts=0
 * └─ canvas running mailbox=0 restarts=1
 * ```
 *
 * @since 0.1.0
 */

/** Where an actor is in its life. `restarting` and `stopped` are supervisor slots without a live actor. */
export type ActorStatus = "starting" | "running" | "suspended" | "stopping" | "stopped" | "restarting"

/** One actor (or supervisor slot) in a snapshot. */
export interface ActorNode {
  /** The actor's id; `null` for a slot that has no live actor. */
  readonly id: number | null
  /** The registered or given name, else `behaviour#id`. */
  readonly name: string
  /** `actor`, `supervisor` or `dynamic_supervisor`. */
  readonly kind: string
  /** The behaviour's name. */
  readonly behaviour: string
  readonly status: ActorStatus
  /** Messages waiting, both lanes. */
  readonly mailbox: number
  /** How many times its supervisor restarted this child. */
  readonly restarts: number
  readonly uptimeMs: number
  /** The supervisor's strategy and counts, e.g. `one_for_one` or `dynamic, 2/20000`. */
  readonly label?: string | undefined
  readonly children: ReadonlyArray<ActorNode>
}

/** Renders a forest of nodes as an indented tree, one line per node, without ids or times. */
export const render = (nodes: ReadonlyArray<ActorNode>): string => {
  const lines: Array<string> = []
  for (const node of nodes) {
    lines.push(line(node))
    renderChildren(node.children, "", lines)
  }
  return lines.join("\n")
}

const renderChildren = (children: ReadonlyArray<ActorNode>, indent: string, lines: Array<string>): void => {
  children.forEach((child, i) => {
    const last = i === children.length - 1
    lines.push(`${indent}${last ? "└─ " : "├─ "}${line(child)}`)
    renderChildren(child.children, indent + (last ? "   " : "│  "), lines)
  })
}

const line = (node: ActorNode): string => {
  if (node.label !== undefined) {
    const status = node.status === "running" ? "" : ` ${node.status}`
    const restarts = node.restarts === 0 ? "" : ` restarts=${node.restarts}`
    return `${node.name} (${node.label})${status}${restarts}`
  }
  if (node.id === null) return `${node.name} ${node.status} restarts=${node.restarts}`
  return `${node.name} ${node.status} mailbox=${node.mailbox} restarts=${node.restarts}`
}

/** Counts the nodes of a forest (slots without actors included). */
export const count = (nodes: ReadonlyArray<ActorNode>): number =>
  nodes.reduce((n, node) => n + 1 + count(node.children), 0)

/** Finds the first node with this name, depth first. */
export const find = (nodes: ReadonlyArray<ActorNode>, name: string): ActorNode | undefined => {
  for (const node of nodes) {
    if (node.name === name) return node
    const found = find(node.children, name)
    if (found !== undefined) return found
  }
  return undefined
}
