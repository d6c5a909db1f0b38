/**
 * The views of robots that cross nodes: what a node tells the others of the robots it runs, and
 * what it keeps of theirs.
 *
 * Each node's `fleet/state` broadcasts {@link NodeViews} on {@link Topic}, the one fleet topic the
 * hub shares on the backplane ({@link shares}; link events and samples stay on their node): at each
 * of its ticks the views of the robots it runs that changed, and those it stopped running; when a
 * resync asks (a gap in its numbering, a reconnect, a node that started), the views of every robot
 * it runs, `full`. The backplane numbers each node's broadcasts, so gaps are told per origin.
 *
 * A node keeps the latest view of each robot another node sent ({@link RemoteViews}) and shows it,
 * unless it runs the robot itself: then its own view wins. A view whose sender stopped running the
 * robot (it said so, or its `full` list left it out) or left the cluster is shown disconnected
 * (connection `broken`, as a lost link) until a node that runs the robot sends its own.
 *
 * @since 0.1.0
 */
import type { RobotView } from "../../protocol/FleetRpcs.js"

/** The topic of {@link NodeViews} broadcasts, shared between nodes. */
export const Topic = "fleet/nodes"

/** Which of the fleet hub's topics cross nodes: only {@link Topic}. */
export const shares = (topic: string): boolean => topic === Topic

/** One node's word on the robots it runs. */
export interface NodeViews {
  readonly _tag: "NodeViews"
  /** The node that runs the robots (its cluster id). */
  readonly node: string
  /** `robots` is every robot the node runs: one it no longer lists, it no longer runs. */
  readonly full: boolean
  readonly robots: ReadonlyArray<RobotView>
  /** Robots the node stopped running since its previous broadcast. */
  readonly released: ReadonlyArray<string>
  /**
   * The fencing tokens (`epoch.counter`) of the node's leases on robots listed in `robots`, where
   * they are new to this broadcast (every one when `full`): what a command sent to the node
   * carries, so that it acts only on the lease the sender knew. Absent from older nodes.
   */
  readonly tokens?: Readonly<Record<string, string>> | undefined
  /**
   * Every robot a session of the node holds the control lease of, with its user, when that changed
   * since the node's previous broadcast (and when `full`): the other nodes show who controls a
   * robot, whichever node the session is on. Absent: unchanged (or an older node).
   */
  readonly holders?: Readonly<Record<string, string>> | undefined
}

const isStringRecord = (value: unknown) =>
  value === undefined ||
  (typeof value === "object" && value !== null && Object.values(value).every((item) => typeof item === "string"))

/** Whether a message heard on {@link Topic} is a {@link NodeViews} (another node's bytes are checked before use). */
export const isNodeViews = (message: unknown): message is NodeViews => {
  if (typeof message !== "object" || message === null) return false
  const m = message as Record<string, unknown>
  return m._tag === "NodeViews" && typeof m.node === "string" && typeof m.full === "boolean" &&
    Array.isArray(m.robots) && Array.isArray(m.released) &&
    m.robots.every((view) => typeof view === "object" && view !== null && typeof (view as { id?: unknown }).id === "string") &&
    m.released.every((robot) => typeof robot === "string") &&
    isStringRecord(m.tokens) && isStringRecord(m.holders)
}

/** How a view looks once its sender no longer runs the robot: disconnected, as a lost link. */
const orphaned = (view: RobotView): RobotView => ({
  ...view,
  status: view.status === "estop" ? "estop" : "disconnected",
  connection: "broken"
})

interface Entry {
  readonly origin: string
  readonly view: RobotView
  /** The origin's lease token for the robot, when it sent one. */
  readonly token: string | undefined
  /** Its origin no longer runs the robot. */
  orphan: boolean
}

/** The latest view of each robot other nodes sent, with its origin. */
export class RemoteViews {
  readonly #entries = new Map<string, Entry>()
  /** The control leases each other node's sessions hold: node → robot → user. */
  readonly #holders = new Map<string, ReadonlyMap<string, string>>()
  /** Nodes seen live: only those can leave (a node this one has not seen live yet may simply be new to its view). */
  readonly #seenLive = new Set<string>()

  /** Takes in one node's broadcast; returns the robots whose view changed. */
  apply(message: NodeViews): Array<string> {
    const changed: Array<string> = []
    for (const view of message.robots) {
      const before = this.#entries.get(view.id)
      const token = message.tokens?.[view.id] ?? (before?.origin === message.node ? before.token : undefined)
      this.#entries.set(view.id, { origin: message.node, view, token, orphan: false })
      changed.push(view.id)
    }
    const drop = (robot: string) => {
      const entry = this.#entries.get(robot)
      if (entry === undefined || entry.origin !== message.node || entry.orphan) return
      entry.orphan = true
      changed.push(robot)
    }
    for (const robot of message.released) drop(robot)
    if (message.holders !== undefined) {
      const before = this.#holders.get(message.node) ?? new Map<string, string>()
      const after = new Map(Object.entries(message.holders))
      for (const robot of new Set([...before.keys(), ...after.keys()])) {
        if (before.get(robot) !== after.get(robot)) changed.push(robot)
      }
      this.#holders.set(message.node, after)
    }
    if (message.full) {
      const listed = new Set(message.robots.map((view) => view.id))
      for (const robot of this.#entries.keys()) if (!listed.has(robot)) drop(robot)
    }
    return changed
  }

  /** Orphans the views of the nodes that were live and `isLive` no longer counts; returns the robots whose view changed. */
  leave(isLive: (node: string) => boolean): Array<string> {
    const changed: Array<string> = []
    const gone = new Map<string, boolean>()
    for (const [robot, entry] of this.#entries) {
      if (entry.orphan) continue
      let left = gone.get(entry.origin)
      if (left === undefined) {
        const alive = isLive(entry.origin)
        if (alive) this.#seenLive.add(entry.origin)
        gone.set(entry.origin, left = !alive && this.#seenLive.has(entry.origin))
      }
      if (!left) continue
      entry.orphan = true
      changed.push(robot)
    }
    for (const [node, held] of this.#holders) {
      if (isLive(node)) {
        this.#seenLive.add(node)
        continue
      }
      if (!this.#seenLive.has(node)) continue
      this.#holders.delete(node)
      changed.push(...held.keys())
    }
    return changed
  }

  /** The robot's view as another node sent it (disconnected once orphaned). */
  view(robot: string): RobotView | undefined {
    const entry = this.#entries.get(robot)
    return entry === undefined ? undefined : entry.orphan ? orphaned(entry.view) : entry.view
  }

  /** The node that runs the robot, as its views say, and its lease token if it sent one; none once orphaned. */
  owner(robot: string): { readonly node: string; readonly token: string | undefined } | undefined {
    const entry = this.#entries.get(robot)
    return entry === undefined || entry.orphan ? undefined : { node: entry.origin, token: entry.token }
  }

  /** The user of another node's session that holds the robot's control lease, if one does. */
  holderOf(robot: string): string | undefined {
    for (const held of this.#holders.values()) {
      const user = held.get(robot)
      if (user !== undefined) return user
    }
    return undefined
  }

  /** Every robot another node sent a view of. */
  robots(): IterableIterator<string> {
    return this.#entries.keys()
  }
}
