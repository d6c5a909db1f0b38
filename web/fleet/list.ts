/**
 * The robot list: one row per robot (connection and safety side by side, the robot's own
 * report, battery, who holds control, alarms), searchable and filtered by state, virtualised so
 * it stays quick with thousands of robots: only the rows in view (and a few around them) exist
 * in the DOM, between two spacer rows that keep the scroll height. Rows have a fixed height.
 *
 * @since 0.1.0
 */
import type { RobotView } from "../../src/protocol/FleetRpcs.js"
import { connectionOf, latchText, reportedOf, safetyOf } from "./words.js"

/** The height of a row, CSS pixels (kept by the stylesheet: `#robots tr[data-id]`). */
export const rowHeight = 46
/** Rows made beyond the visible ones, above and below. */
const overscan = 6

/** The filters of the state menu: each a test on a robot. */
export const filters: Record<string, (robot: RobotView) => boolean> = {
  all: () => true,
  attention: (robot) =>
    safetyOf(robot) !== "normal" || connectionOf(robot) !== "online" || robot.alarms.length > 0,
  stopped: (robot) => safetyOf(robot) === "stopped",
  fault: (robot) => safetyOf(robot) === "fault" || robot.alarms.length > 0,
  paused: (robot) => safetyOf(robot) === "paused",
  unreachable: (robot) => connectionOf(robot) !== "online",
  controlled: (robot) => robot.controlledBy !== undefined,
  arms: (robot) => robot.kind === "arm",
  agvs: (robot) => robot.kind === "agv"
}

/** The table's columns, in order: each cell has its name as class. */
const columns = ["name", "kind", "connection", "safety", "reported", "battery", "control", "alarms"] as const

const setText = (node: Element, text: string) => {
  if (node.textContent !== text) node.textContent = text
}

const element = (tag: string, className: string) => {
  const node = document.createElement(tag)
  node.className = className
  return node
}

/** What the list needs to know besides the robots. */
export interface ListContext {
  readonly selected: () => string | undefined
  /** The robot whose lease this page holds. */
  readonly mine: () => string | undefined
  readonly select: (id: string) => void
}

/** The list in `scroller` (the scrolling box), `body` (its table body), with `search`, `filter` and a `count` line. */
export const make = (
  parts: {
    readonly scroller: HTMLElement
    readonly body: HTMLTableSectionElement
    readonly search: HTMLInputElement
    readonly filter: HTMLSelectElement
    readonly count: HTMLElement
  },
  context: ListContext
) => {
  const { body, count, filter, scroller, search } = parts
  const top = element("tr", "spacer") as HTMLTableRowElement
  const bottom = element("tr", "spacer") as HTMLTableRowElement
  body.replaceChildren(top, bottom)
  /** Rows in the DOM by robot id, reused across draws (a row replaced at 30 Hz would swallow clicks). */
  const rows = new Map<string, HTMLTableRowElement>()
  let ids: Array<string> = []
  let shown: Array<string> = []
  let idsChanged = true

  const rowOf = (id: string) => {
    let row = rows.get(id)
    if (row === undefined) {
      row = document.createElement("tr")
      row.dataset.id = id
      row.title = "Open its controls"
      for (const column of columns) row.append(element("td", column))
      const [, , connection, safety, , , , alarms] = row.cells
      connection.append(element("span", "badge"))
      safety.append(element("span", "badge"), element("span", "latched"), element("div", "latch-info"))
      alarms.classList.add("alarm")
      row.onclick = () => context.select(id)
      rows.set(id, row)
    }
    return row
  }

  const fill = (row: HTMLTableRowElement, robot: RobotView) => {
    const connection = connectionOf(robot)
    const safety = safetyOf(robot)
    row.dataset.status = robot.status
    row.dataset.connection = connection
    row.dataset.safety = safety
    row.classList.toggle("selected", robot.id === context.selected())
    const [name, kind, connectionCell, safetyCell, reportedCell, battery, control, alarms] = row.cells
    setText(name, robot.id)
    setText(kind, robot.kind)
    const connectionBadge = connectionCell.firstElementChild as HTMLElement
    connectionBadge.dataset.connection = connection
    setText(connectionBadge, connection)
    const [safetyBadge, latched, latchInfo] = safetyCell.children as unknown as ReadonlyArray<HTMLElement>
    safetyBadge.dataset.safety = safety
    setText(safetyBadge, safety)
    latched.hidden = robot.stop === undefined
    setText(latched, robot.stop === undefined ? "" : "STOPPED — reset required")
    setText(latchInfo, latchText(robot) ?? "")
    const reported = reportedOf(robot)
    setText(reportedCell, reported === undefined ? "—" : reported.lines.join("\n"))
    reportedCell.classList.toggle("attention", reported?.attention === true)
    setText(battery, robot.battery === undefined ? "—" : `${Math.round(robot.battery)} %`)
    setText(
      control,
      context.mine() === robot.id ? "you" : robot.controlledBy ?? "free"
    )
    control.classList.toggle("free", context.mine() !== robot.id && robot.controlledBy === undefined)
    setText(alarms, robot.alarms.length === 0 ? "none" : robot.alarms.map((a) => a.code).join(", "))
    alarms.title = robot.alarms.map((a) => `${a.code}: ${a.message}`).join("\n")
    alarms.classList.toggle("none", robot.alarms.length === 0)
  }

  const matches = (robot: RobotView, needle: string, test: (robot: RobotView) => boolean) =>
    test(robot) &&
    (needle === "" || robot.id.toLowerCase().includes(needle) ||
      (robot.controlledBy?.toLowerCase().includes(needle) ?? false) ||
      robot.alarms.some((a) => a.code.toLowerCase().includes(needle)))

  /** Draws the rows in view of the robots that match the search and the filter. */
  const draw = (robots: ReadonlyMap<string, RobotView>) => {
    if (idsChanged || ids.length !== robots.size) {
      ids = [...robots.keys()].sort()
      idsChanged = false
    }
    const needle = search.value.trim().toLowerCase()
    const test = filters[filter.value] ?? filters.all
    shown = needle === "" && filter.value === "all" ? ids : ids.filter((id) => matches(robots.get(id)!, needle, test))
    setText(count, shown.length === ids.length ? `${ids.length} robots` : `${shown.length} of ${ids.length} robots`)
    const first = Math.max(0, Math.floor(scroller.scrollTop / rowHeight) - overscan)
    const last = Math.min(shown.length, Math.ceil((scroller.scrollTop + (scroller.clientHeight || 400)) / rowHeight) + overscan)
    top.style.height = `${first * rowHeight}px`
    bottom.style.height = `${(shown.length - last) * rowHeight}px`
    const visible = new Set(shown.slice(first, last))
    for (const [id, row] of rows) {
      if (!visible.has(id)) {
        row.remove()
        rows.delete(id)
      }
    }
    let previous: HTMLTableRowElement = top
    for (let i = first; i < last; i++) {
      const row = rowOf(shown[i])
      fill(row, robots.get(shown[i])!)
      if (previous.nextSibling !== row) previous.after(row)
      previous = row
    }
  }

  return {
    draw,
    /** The robot set changed (a robot came or a snapshot replaced them): sort again on the next draw. */
    invalidate: () => void (idsChanged = true),
    /** The ids the filter and search let through, in order. */
    shown: () => shown,
    /** Scrolls so that `id`'s row is in view. */
    reveal: (id: string) => {
      const index = shown.indexOf(id)
      if (index < 0) return
      const y = index * rowHeight
      if (y < scroller.scrollTop || y + rowHeight > scroller.scrollTop + scroller.clientHeight) {
        scroller.scrollTop = Math.max(0, y - scroller.clientHeight / 2)
      }
    }
  }
}
