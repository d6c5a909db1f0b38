/**
 * The fleet's map: every robot with a place, fitted to their extent with a margin and following
 * them as they move (a single robot is centred in a 10 m box). AGVs are arrows at their pose,
 * with what is left of their order (released edges solid, the horizon dashed); arms stand at
 * their configured base (`FLEET_ARM_BASES`) with a sketch of their pose (a side view of the
 * links from J2 and J3, laid on the map in the direction J1 turns the arm to). Robots without a place (an AGV that never
 * reported a position, an arm without a base) are listed under the map, never drawn at 0, 0.
 *
 * @since 0.1.0
 */
import type { RobotView } from "../../src/protocol/FleetRpcs.js"
import { axesOf, connectionOf, safetyOf } from "./words.js"

/** Where a robot was drawn, in CSS pixels of the map's canvas. */
export interface Drawn {
  readonly id: string
  readonly kind: "agv" | "arm"
  readonly x: number
  readonly y: number
}

/** The box of the map shown, in meters. */
interface Box {
  minX: number
  minY: number
  maxX: number
  maxY: number
}

/** Upper arm and forearm of the sketch, meters (a mid-size six-axis arm). */
const linkLength = 0.6
/** The least span of the map, meters: a lone robot is shown in a box this wide. */
const minSpan = 10
/** Above this many robots on the map, only the selected AGV's order is drawn, and only robots that need a look are labelled. */
const crowdedAt = 60
/** Drawn links are at least this long, CSS pixels, so a pose reads at any zoom. */
const minLinkPixels = 24

const colourOf = (robot: RobotView): string => {
  const safety = safetyOf(robot)
  const connection = connectionOf(robot)
  if (safety === "stopped") return "#d00"
  if (connection !== "online") return "#999"
  if (safety === "fault") return "#e60"
  if (safety === "paused") return "#c90"
  return robot.kind === "arm" ? "#6a3fb5" : "#2a7"
}

/** Where a robot stands on the map, or why it has no place. */
export const placeOf = (robot: RobotView): { readonly x: number; readonly y: number } | string => {
  if (robot.kind === "agv") {
    return robot.poseKnown === false ? "no position reported yet" : { x: robot.pose.x, y: robot.pose.y }
  }
  return robot.base ?? "no base on the map (FLEET_ARM_BASES)"
}

/** The map of `canvas`, listing the robots without a place in `unplaced`. */
export const make = (canvas: HTMLCanvasElement, unplaced: HTMLElement) => {
  let box: Box | undefined
  let drawn: Array<Drawn> = []
  let scale = 1

  /** The box that holds every point with a margin: 10 % a side, at least 1.5 m, at least `minSpan` wide and high. */
  const fit = (points: ReadonlyArray<readonly [number, number]>): Box => {
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity
    for (const [x, y] of points) {
      minX = Math.min(minX, x)
      minY = Math.min(minY, y)
      maxX = Math.max(maxX, x)
      maxY = Math.max(maxY, y)
    }
    const margin = Math.max(1.5, 0.1 * Math.max(maxX - minX, maxY - minY))
    const grow = (min: number, max: number) => {
      const centre = (min + max) / 2
      const half = Math.max(minSpan, max - min + 2 * margin) / 2
      return [centre - half, centre + half] as const
    }
    const [x0, x1] = grow(minX, maxX)
    const [y0, y1] = grow(minY, maxY)
    return { minX: x0, minY: y0, maxX: x1, maxY: y1 }
  }

  /** Keeps the box while every point is well inside it and it is not much larger than needed; else the new fit. */
  const follow = (target: Box, points: ReadonlyArray<readonly [number, number]>): Box => {
    if (box === undefined) return target
    const inset = 0.04 * Math.max(box.maxX - box.minX, box.maxY - box.minY)
    const inside = points.every(([x, y]) =>
      x >= box!.minX + inset && x <= box!.maxX - inset && y >= box!.minY + inset && y <= box!.maxY - inset
    )
    const area = (b: Box) => (b.maxX - b.minX) * (b.maxY - b.minY)
    return inside && area(box) < 1.6 * area(target) ? box : target
  }

  const draw = (robots: ReadonlyArray<RobotView>, selected: string | undefined) => {
    const width = canvas.clientWidth || 600
    const height = canvas.clientHeight || 400
    const ratio = window.devicePixelRatio || 1
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio)
      canvas.height = Math.round(height * ratio)
    }
    const context = canvas.getContext("2d")!
    context.setTransform(ratio, 0, 0, ratio, 0, 0)
    context.clearRect(0, 0, width, height)

    const placed: Array<{ robot: RobotView; x: number; y: number }> = []
    const missing: Array<string> = []
    for (const robot of robots) {
      const place = placeOf(robot)
      if (typeof place === "string") missing.push(`${robot.id} (${place})`)
      else placed.push({ robot, ...place })
    }
    const text = missing.length === 0 ? "" : `Not on the map: ${missing.join(", ")}`
    if (unplaced.textContent !== text) unplaced.textContent = text
    drawn = []
    if (placed.length === 0) {
      context.fillStyle = "#888"
      context.fillText(robots.length === 0 ? "No robots yet" : "No robot has a place on the map yet", 12, 20)
      box = undefined
      return
    }
    const points: Array<readonly [number, number]> = placed.map((p) => [p.x, p.y] as const)
    for (const { robot, x, y } of placed) {
      if (robot.kind === "arm") points.push([x - 2 * linkLength, y - 2 * linkLength], [x + 2 * linkLength, y + 2 * linkLength])
      if (robot.kind === "agv" && robot.order !== undefined) {
        for (const node of robot.order.nodes) if (node.x !== undefined && node.y !== undefined) points.push([node.x, node.y])
      }
    }
    box = follow(fit(points), points)
    // Uniform scale, the box centred: meters → CSS pixels, y up.
    scale = Math.min(width / (box.maxX - box.minX), height / (box.maxY - box.minY))
    const cx = (box.minX + box.maxX) / 2
    const cy = (box.minY + box.maxY) / 2
    const sx = (x: number) => width / 2 + (x - cx) * scale
    const sy = (y: number) => height / 2 - (y - cy) * scale

    drawGrid(context, box, sx, sy, width, height)
    context.font = "11px system-ui, sans-serif"
    // A crowded map draws only the selected AGV's order, and labels only the robots that need a look.
    const crowded = placed.length > crowdedAt
    for (const { robot } of placed) {
      if (robot.kind === "agv" && robot.order !== undefined && (!crowded || robot.id === selected)) {
        drawOrder(context, robot, sx, sy, robot.id === selected)
      }
    }
    for (const { robot, x, y } of placed) {
      const px = sx(x)
      const py = sy(y)
      drawn.push({ id: robot.id, kind: robot.kind, x: px, y: py })
      const colour = colourOf(robot)
      if (robot.kind === "agv") drawAgv(context, robot, px, py, colour)
      else drawArm(context, robot, px, py, colour, Math.max(linkLength * scale, minLinkPixels))
      if (robot.id === selected) {
        context.strokeStyle = "#1a5fd0"
        context.lineWidth = 2
        context.beginPath()
        context.arc(px, py, 16, 0, 2 * Math.PI)
        context.stroke()
      }
      if (safetyOf(robot) === "stopped") {
        context.strokeStyle = "#d00"
        context.lineWidth = 2
        context.beginPath()
        context.arc(px, py, 20, 0, 2 * Math.PI)
        context.stroke()
      }
      if (crowded && robot.id !== selected && safetyOf(robot) === "normal" && connectionOf(robot) === "online") continue
      context.fillStyle = "#333"
      // An arm's label goes under its base, clear of the sketch above it.
      context.fillText(`${robot.id.split("/").pop() ?? robot.id}${safetyOf(robot) === "stopped" ? " STOPPED" : ""}`, px + 10, robot.kind === "arm" ? py + 20 : py - 10)
    }
  }

  return {
    draw,
    /** The robot drawn nearest to a point of the canvas (CSS pixels), within 18 px. */
    pick: (x: number, y: number): string | undefined => {
      let best: Drawn | undefined
      let bestDistance = 18
      for (const robot of drawn) {
        const distance = Math.hypot(robot.x - x, robot.y - y)
        if (distance < bestDistance) {
          best = robot
          bestDistance = distance
        }
      }
      return best?.id
    },
    /** What the last frame drew, for tests: each robot's place in CSS pixels, the canvas's size, the box in meters. */
    frame: () => ({ drawn, width: canvas.clientWidth, height: canvas.clientHeight, box, scale })
  }
}

/** A light grid every 1, 5 or 10 m, with the scale. */
const drawGrid = (
  context: CanvasRenderingContext2D,
  box: Box,
  sx: (x: number) => number,
  sy: (y: number) => number,
  width: number,
  height: number
) => {
  const span = box.maxX - box.minX
  const step = span > 120 ? 20 : span > 60 ? 10 : span > 25 ? 5 : 1
  context.strokeStyle = "#eee"
  context.lineWidth = 1
  context.beginPath()
  for (let x = Math.ceil((box.minX - span) / step) * step; sx(x) < width; x += step) {
    context.moveTo(sx(x), 0)
    context.lineTo(sx(x), height)
  }
  for (let y = Math.floor((box.maxY + span) / step) * step; sy(y) < height; y -= step) {
    context.moveTo(0, sy(y))
    context.lineTo(width, sy(y))
  }
  context.stroke()
  context.fillStyle = "#999"
  context.font = "11px system-ui, sans-serif"
  context.fillText(`grid ${step} m`, 6, height - 6)
}

const drawAgv = (context: CanvasRenderingContext2D, agv: Extract<RobotView, { kind: "agv" }>, x: number, y: number, colour: string) => {
  context.save()
  context.translate(x, y)
  context.rotate(-agv.pose.theta)
  context.fillStyle = colour
  context.beginPath()
  context.moveTo(11, 0)
  context.lineTo(-8, -7)
  context.lineTo(-4, 0)
  context.lineTo(-8, 7)
  context.closePath()
  context.fill()
  context.restore()
}

/**
 * A sketch of the arm's pose: a side view of its links (J2 tilts the upper arm from the
 * vertical, J3 sets the forearm from the horizontal) laid on the map in the direction J1 turns
 * the arm to, so turning, reaching out and folding all show.
 */
const drawArm = (
  context: CanvasRenderingContext2D,
  arm: Extract<RobotView, { kind: "arm" }>,
  x: number,
  y: number,
  colour: string,
  link: number
) => {
  context.fillStyle = colour
  context.fillRect(x - 6, y - 6, 12, 12)
  const joints = axesOf(arm.joints)
  if (joints.length < 3) return
  const [j1, j2, j3] = joints.map((degrees) => (degrees * Math.PI) / 180)
  // u: where J1 points (screen y grows downwards); n: u turned a quarter to its left.
  const u = [Math.cos(j1), -Math.sin(j1)] as const
  const n = [u[1], -u[0]] as const
  const shoulder = Math.PI / 2 - j2
  const at = (from: readonly [number, number], angle: number) =>
    [from[0] + link * (Math.cos(angle) * u[0] + Math.sin(angle) * n[0]), from[1] + link * (Math.cos(angle) * u[1] + Math.sin(angle) * n[1])] as const
  const elbow = at([x, y], shoulder)
  const wrist = at(elbow, j3)
  context.strokeStyle = colour
  context.lineWidth = 4
  context.lineCap = "round"
  context.beginPath()
  context.moveTo(x, y)
  context.lineTo(...elbow)
  context.lineTo(...wrist)
  context.stroke()
  context.fillStyle = "#fff"
  for (const [px, py] of [elbow, wrist]) {
    context.beginPath()
    context.arc(px, py, 2.5, 0, 2 * Math.PI)
    context.fill()
  }
}

/** The rest of an AGV's order: from the AGV through its nodes, released edges solid, the horizon dashed. */
const drawOrder = (
  context: CanvasRenderingContext2D,
  agv: Extract<RobotView, { kind: "agv" }>,
  sx: (x: number) => number,
  sy: (y: number) => number,
  selected: boolean
) => {
  const order = agv.order!
  const released = new Map(order.edges.map((edge) => [edge.sequenceId, edge.released]))
  const nodes = [...order.nodes].sort((a, b) => a.sequenceId - b.sequenceId)
  let from: readonly [number, number] | undefined = agv.poseKnown === false ? undefined : [sx(agv.pose.x), sy(agv.pose.y)]
  context.lineWidth = selected ? 3 : 1.5
  for (const node of nodes) {
    if (node.x === undefined || node.y === undefined) continue
    const to = [sx(node.x), sy(node.y)] as const
    if (from !== undefined) {
      const solid = released.get(node.sequenceId - 1) ?? node.released
      context.strokeStyle = solid ? "#1a5fd0" : "#8aa6d6"
      context.setLineDash(solid ? [] : [5, 4])
      context.beginPath()
      context.moveTo(...from)
      context.lineTo(...to)
      context.stroke()
    }
    context.setLineDash([])
    context.beginPath()
    context.arc(to[0], to[1], 3.5, 0, 2 * Math.PI)
    if (node.released) {
      context.fillStyle = "#1a5fd0"
      context.fill()
    } else {
      context.strokeStyle = "#8aa6d6"
      context.lineWidth = 1.5
      context.stroke()
      context.lineWidth = selected ? 3 : 1.5
    }
    from = to
  }
  context.setLineDash([])
}
