/**
 * The events panel: the last things that happened to the fleet, newest first, each with its
 * time and robot — alarms raised and cleared, stops latched and reset, control taken and given
 * back, connections lost and back (found by comparing each robot's view with the one before),
 * and the refusals this page received (the server's words). It keeps the last `capacity`.
 *
 * @since 0.1.0
 */
import type { RobotView } from "../../src/protocol/FleetRpcs.js"
import { connectionOf, timeOf } from "./words.js"

/** What kind of event: its colour in the panel and its `data-kind`. */
export type EventKind = "alarm" | "stop" | "reset" | "lease" | "connection" | "refusal" | "info"

/** One event of the panel. */
export interface FleetEventLine {
  readonly at: number
  readonly robot: string
  readonly kind: EventKind
  readonly text: string
}

const capacity = 200

/** The panel in `list` (an `<ol>`). */
export const make = (list: HTMLOListElement) => {
  const lines: Array<FleetEventLine> = []
  let dirty = false

  const add = (line: FleetEventLine) => {
    lines.unshift(line)
    if (lines.length > capacity) lines.pop()
    dirty = true
  }

  /** Events between the view a robot had and the one it has now (none for a robot first seen). */
  const compare = (before: RobotView | undefined, after: RobotView, now: number) => {
    if (before === undefined) return
    const robot = after.id
    const was = new Map(before.alarms.map((a) => [a.code, a]))
    const is = new Map(after.alarms.map((a) => [a.code, a]))
    for (const [code, alarm] of is) {
      if (!was.has(code)) add({ at: now, robot, kind: "alarm", text: `${alarm.level === "fatal" ? "Fault" : "Warning"} ${code}: ${alarm.message}` })
    }
    for (const code of was.keys()) if (!is.has(code)) add({ at: now, robot, kind: "info", text: `Alarm ${code} cleared` })
    if (before.stop === undefined && after.stop !== undefined) {
      add({ at: after.stop.since, robot, kind: "stop", text: `Emergency stop by ${after.stop.by}: reset required` })
    } else if (before.stop !== undefined && after.stop === undefined) {
      add({ at: now, robot, kind: "reset", text: "Reset: the stop is cleared" })
    } else if (before.stop !== undefined && after.stop !== undefined && !before.stop.confirmed && after.stop.confirmed && after.kind === "agv") {
      add({ at: now, robot, kind: "info", text: "The AGV confirmed the stop" })
    }
    if (before.controlledBy !== after.controlledBy) {
      add({
        at: now,
        robot,
        kind: "lease",
        text: after.controlledBy === undefined
          ? `Control released by ${before.controlledBy}`
          : before.controlledBy === undefined
          ? `Control taken by ${after.controlledBy}`
          : `Control passed from ${before.controlledBy} to ${after.controlledBy}`
      })
    }
    const from = connectionOf(before)
    const to = connectionOf(after)
    if (from !== to) {
      add({ at: now, robot, kind: "connection", text: to === "online" ? "Connection back" : to === "broken" ? "Connection lost" : "Went offline" })
    }
  }

  /** Stops already latched when the page opened: they are news too. */
  const latchedAtStart = (robot: RobotView) => {
    if (robot.stop !== undefined) {
      add({ at: robot.stop.since, robot: robot.id, kind: "stop", text: `Emergency stop by ${robot.stop.by}: reset required` })
    }
  }

  const draw = () => {
    if (!dirty) return
    dirty = false
    list.replaceChildren(
      ...lines.slice(0, 100).map((line) => {
        const item = document.createElement("li")
        item.dataset.kind = line.kind
        const time = document.createElement("time")
        time.dateTime = new Date(line.at).toISOString()
        time.textContent = timeOf(line.at)
        const robot = document.createElement("span")
        robot.className = "robot"
        robot.textContent = line.robot
        const text = document.createElement("span")
        text.className = "text"
        text.textContent = line.text
        item.append(time, robot, text)
        return item
      })
    )
    if (lines.length === 0) {
      const item = document.createElement("li")
      item.className = "empty"
      item.textContent = "Nothing yet: alarms, stops, control changes and refusals will show here."
      list.append(item)
    }
  }

  dirty = true
  return { add, compare, latchedAtStart, draw, lines: () => lines }
}
