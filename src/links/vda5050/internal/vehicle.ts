/**
 * A simulated AGV as an immutable value and pure functions: how it drives towards the nodes of
 * its order, how it takes orders and instant actions, and what it reports. `AgvSimulator` wires
 * it to MQTT and a clock.
 */
import type { Action } from "../Action.js"
import type { AgvPosition, NodePosition } from "../Geometry.js"
import type { Header } from "../Header.js"
import * as Order from "../Order.js"
import * as SimMap from "../SimMap.js"
import type { ActionState, ActionStatus, AgvError, State } from "../State.js"
import type { Visualization } from "../Visualization.js"

/** A node of the current order still ahead. */
interface Stop {
  readonly nodeId: string
  readonly sequenceId: number
  readonly released: boolean
  readonly nodePosition: NodePosition
  readonly actionIds: ReadonlyArray<string>
}

/** An edge of the current order still ahead. */
interface Leg {
  readonly edgeId: string
  readonly sequenceId: number
  readonly released: boolean
  readonly actionIds: ReadonlyArray<string>
}

/** Everything the simulated AGV knows about itself. */
export interface Vehicle {
  readonly mapId: string
  readonly x: number
  readonly y: number
  readonly theta: number
  /** Forward speed (m/s) and turn rate (rad/s) during the last step. */
  readonly vx: number
  readonly omega: number
  readonly driving: boolean
  readonly paused: boolean
  readonly orderId: string
  readonly orderUpdateId: number
  readonly lastNodeId: string
  readonly lastNodeSequenceId: number
  readonly stops: ReadonlyArray<Stop>
  readonly legs: ReadonlyArray<Leg>
  readonly actionStates: ReadonlyArray<ActionState>
  readonly errors: ReadonlyArray<AgvError>
  readonly batteryCharge: number
  /** Drives loops of the map on its own until the first order from master control arrives. */
  readonly patrol: boolean
  readonly patrolRound: number
}

/** How fast the AGV drives (m/s) and turns on the spot (rad/s). */
export interface Motion {
  readonly speed: number
  readonly turnRate: number
}

/** The result of a step: the new vehicle, and whether something happened that `state` must report. */
export interface Step {
  readonly vehicle: Vehicle
  readonly event: boolean
}

/** A state or visualization message without its header. */
export type Body<M> = Omit<M, keyof Header>

const ARRIVED = 1e-3
const ALIGNED = 0.02
const DRAIN_PER_METRE = 0.01
const MIN_CHARGE = 10
const MAX_ACTION_STATES = 64
const ORDER_ERRORS = new Set(["noRouteError", "orderUpdateError", "validationError"])

const normalizeAngle = (angle: number) => Math.atan2(Math.sin(angle), Math.cos(angle))
const clampAbs = (value: number, limit: number) => Math.max(-limit, Math.min(limit, value))
const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits

const setStatus = (
  actionStates: ReadonlyArray<ActionState>,
  ids: ReadonlyArray<string>,
  status: ActionStatus
): ReadonlyArray<ActionState> =>
  ids.length === 0 ? actionStates : actionStates.map((s) => (ids.includes(s.actionId) ? { ...s, actionStatus: status } : s))

const waiting = (actions: ReadonlyArray<Action>): Array<ActionState> =>
  actions.map((a) => ({ actionId: a.actionId, actionType: a.actionType, actionStatus: "WAITING" }))

const record = (v: Vehicle, action: Action, actionStatus: ActionStatus, resultDescription?: string): Vehicle => ({
  ...v,
  actionStates: [
    ...v.actionStates,
    { actionId: action.actionId, actionType: action.actionType, actionStatus, ...(resultDescription ? { resultDescription } : {}) }
  ].slice(-MAX_ACTION_STATES)
})

const raise = (v: Vehicle, errorType: string, errorDescription: string, references: Record<string, string>): Vehicle => ({
  ...v,
  errors: [
    ...v.errors,
    {
      errorType,
      errorLevel: "WARNING",
      errorDescription,
      errorReferences: Object.entries(references).map(([referenceKey, referenceValue]) => ({ referenceKey, referenceValue }))
    }
  ]
})

/** The order's nodes with their positions, or the id of a node whose position is unknown. */
const resolveStops = (order: Order.OrderBody, map: SimMap.SimMap): ReadonlyArray<Stop> | string => {
  const stops: Array<Stop> = []
  for (const node of order.nodes) {
    const mapNode = SimMap.node(map, node.nodeId)
    const nodePosition = node.nodePosition ?? (mapNode && SimMap.nodePosition(map, mapNode))
    if (nodePosition === undefined) return node.nodeId
    const { nodeId, sequenceId, released } = node
    stops.push({ nodeId, sequenceId, released, nodePosition, actionIds: node.actions.map((a) => a.actionId) })
  }
  return stops
}

const legsOf = (order: Order.OrderBody): Array<Leg> =>
  order.edges.map(({ edgeId, sequenceId, released, actions }) => ({
    edgeId,
    sequenceId,
    released,
    actionIds: actions.map((a) => a.actionId)
  }))

const orderActions = (order: Order.OrderBody) => [...order.nodes, ...order.edges].flatMap((x) => x.actions)

const begin = (v: Vehicle, order: Order.OrderBody, stops: ReadonlyArray<Stop>): Vehicle => ({
  ...v,
  orderId: order.orderId,
  orderUpdateId: order.orderUpdateId,
  stops,
  legs: legsOf(order),
  actionStates: waiting(orderActions(order)),
  errors: v.errors.filter((e) => !ORDER_ERRORS.has(e.errorType))
})

/** The next loop of the map, starting at the node nearest to the AGV. */
const nextPatrol = (v: Vehicle, map: SimMap.SimMap): Vehicle => {
  const distances = map.nodes.map((n) => Math.hypot(n.x - v.x, n.y - v.y))
  const start = distances.indexOf(Math.min(...distances))
  const path = map.nodes.map((_, k) => map.nodes[(start + k) % map.nodes.length])
  const order = Order.fromPath({
    orderId: `patrol-${v.patrolRound + 1}`,
    path: [...path, path[0]].map((n) => ({ nodeId: n.nodeId, nodePosition: SimMap.nodePosition(map, n) }))
  })
  return begin({ ...v, patrolRound: v.patrolRound + 1 }, order, resolveStops(order, map) as ReadonlyArray<Stop>)
}

/** An AGV standing on node `startIndex` of the map, facing the next one; patrolling if `patrol`. */
export const make = (map: SimMap.SimMap, startIndex: number, patrol: boolean): Vehicle => {
  const here = map.nodes[startIndex % map.nodes.length]
  const ahead = map.nodes[(startIndex + 1) % map.nodes.length]
  const vehicle: Vehicle = {
    mapId: map.mapId,
    x: here.x,
    y: here.y,
    theta: Math.atan2(ahead.y - here.y, ahead.x - here.x),
    vx: 0,
    omega: 0,
    driving: false,
    paused: false,
    orderId: "",
    orderUpdateId: 0,
    lastNodeId: here.nodeId,
    lastNodeSequenceId: 0,
    stops: [],
    legs: [],
    actionStates: [],
    errors: [],
    batteryCharge: 100 - ((startIndex * 7) % 30),
    patrol,
    patrolRound: 0
  }
  return patrol ? nextPatrol(vehicle, map) : vehicle
}

const halt = (v: Vehicle): Step => ({ vehicle: { ...v, vx: 0, omega: 0, driving: false }, event: v.driving })

const arrive = (v: Vehicle, stop: Stop, map: SimMap.SimMap): Step => {
  const passed = v.legs.filter((leg) => leg.sequenceId < stop.sequenceId)
  const arrived: Vehicle = {
    ...v,
    x: stop.nodePosition.x,
    y: stop.nodePosition.y,
    lastNodeId: stop.nodeId,
    lastNodeSequenceId: stop.sequenceId,
    stops: v.stops.slice(1),
    legs: v.legs.filter((leg) => leg.sequenceId > stop.sequenceId),
    actionStates: setStatus(v.actionStates, [...passed.flatMap((leg) => leg.actionIds), ...stop.actionIds], "FINISHED")
  }
  return { vehicle: arrived.stops.length === 0 && arrived.patrol ? nextPatrol(arrived, map) : arrived, event: true }
}

/** Advances the AGV by `dt` seconds: it turns towards the next released node on the spot, then drives to it. */
export const step = (v: Vehicle, dt: number, map: SimMap.SimMap, motion: Motion): Step => {
  if (dt <= 0) return { vehicle: v, event: false }
  const stop = v.stops[0]
  if (v.paused || stop === undefined || !stop.released) return halt(v)
  const dx = stop.nodePosition.x - v.x
  const dy = stop.nodePosition.y - v.y
  const distance = Math.hypot(dx, dy)
  if (distance < ARRIVED) return arrive(v, stop, map)
  const heading = Math.atan2(dy, dx)
  const error = normalizeAngle(heading - v.theta)
  if (Math.abs(error) > ALIGNED) {
    const turn = clampAbs(error, motion.turnRate * dt)
    const turned = { ...v, theta: normalizeAngle(v.theta + turn), vx: 0, omega: turn / dt, driving: true }
    return { vehicle: turned, event: !v.driving }
  }
  const travel = Math.min(distance, motion.speed * dt)
  const moved: Vehicle = {
    ...v,
    x: v.x + (dx / distance) * travel,
    y: v.y + (dy / distance) * travel,
    theta: heading,
    vx: travel / dt,
    omega: 0,
    driving: true,
    batteryCharge: Math.max(MIN_CHARGE, v.batteryCharge - travel * DRAIN_PER_METRE)
  }
  return travel >= distance ? arrive(moved, stop, map) : { vehicle: moved, event: !v.driving }
}

/**
 * Takes an order from master control. A new orderId replaces whatever the AGV was doing (the
 * simulator does not insist that the previous order be finished); the same orderId with a higher
 * orderUpdateId replaces the nodes not yet passed; a repeated update is ignored; an older update,
 * or a node with no position, is rejected with an error in `errors`.
 */
export const acceptOrder = (v: Vehicle, order: Order.OrderBody, map: SimMap.SimMap): Vehicle => {
  const references = { orderId: order.orderId, orderUpdateId: String(order.orderUpdateId) }
  const stops = resolveStops(order, map)
  if (typeof stops === "string") {
    return raise(v, "noRouteError", `node ${stops} has no nodePosition and is not on map ${map.mapId}`, references)
  }
  if (order.orderId !== v.orderId || v.patrol) return begin({ ...v, patrol: false }, order, stops)
  if (order.orderUpdateId < v.orderUpdateId) {
    return raise(v, "orderUpdateError", `orderUpdateId ${order.orderUpdateId} is older than ${v.orderUpdateId}`, references)
  }
  if (order.orderUpdateId === v.orderUpdateId) return v
  const known = new Set(v.actionStates.map((s) => s.actionId))
  return {
    ...v,
    orderUpdateId: order.orderUpdateId,
    stops: stops.filter((s) => s.sequenceId > v.lastNodeSequenceId),
    legs: legsOf(order).filter((leg) => leg.sequenceId > v.lastNodeSequenceId),
    actionStates: [...v.actionStates, ...waiting(orderActions(order).filter((a) => !known.has(a.actionId)))]
  }
}

/** Reports a message from master control that did not decode, until the next accepted order. */
export const rejectMessage = (v: Vehicle, topic: string, reason: string): Vehicle =>
  raise(v, "validationError", `invalid ${topic} message: ${reason}`, { topic })

/**
 * Runs an instant action: startPause, stopPause, cancelOrder, stateRequest and factsheetRequest
 * are supported (the last two only need the caller to publish); any other type is reported FAILED.
 */
export const instantAction = (v: Vehicle, action: Action): Vehicle => {
  switch (action.actionType) {
    case "startPause":
      return record({ ...v, paused: true, driving: false, vx: 0, omega: 0 }, action, "FINISHED")
    case "stopPause":
      return record({ ...v, paused: false }, action, "FINISHED")
    case "stateRequest":
    case "factsheetRequest":
      return record(v, action, "FINISHED")
    case "cancelOrder": {
      if (v.stops.length === 0) {
        const failed = record(v, action, "FAILED", "no order to cancel")
        return raise(failed, "noOrderToCancel", "cancelOrder without an active order", { actionId: action.actionId })
      }
      const open = v.actionStates
        .filter((s) => s.actionStatus === "WAITING" || s.actionStatus === "RUNNING" || s.actionStatus === "PAUSED")
        .map((s) => s.actionId)
      const cancelled: Vehicle = {
        ...v,
        stops: [],
        legs: [],
        patrol: false,
        driving: false,
        vx: 0,
        omega: 0,
        actionStates: setStatus(v.actionStates, open, "FAILED")
      }
      return record(cancelled, action, "FINISHED")
    }
    default:
      return record(v, action, "FAILED", "not supported by the simulator")
  }
}

const agvPosition = (v: Vehicle): AgvPosition => ({
  x: round(v.x, 3),
  y: round(v.y, 3),
  theta: round(v.theta, 4),
  mapId: v.mapId,
  positionInitialized: true
})

const velocity = (v: Vehicle) => ({ vx: round(v.vx, 3), vy: 0, omega: round(v.omega, 4) })

/** What the AGV's next `state` message says. */
export const toState = (v: Vehicle): Body<State> => ({
  orderId: v.orderId,
  orderUpdateId: v.orderUpdateId,
  lastNodeId: v.lastNodeId,
  lastNodeSequenceId: v.lastNodeSequenceId,
  driving: v.driving,
  paused: v.paused,
  newBaseRequest: false,
  operatingMode: "AUTOMATIC",
  nodeStates: v.stops.map(({ nodeId, sequenceId, released, nodePosition }) => ({ nodeId, sequenceId, released, nodePosition })),
  edgeStates: v.legs.map(({ edgeId, sequenceId, released }) => ({ edgeId, sequenceId, released })),
  agvPosition: agvPosition(v),
  velocity: velocity(v),
  loads: [],
  actionStates: v.actionStates,
  batteryState: { batteryCharge: round(v.batteryCharge, 1), charging: false },
  errors: v.errors,
  information: [],
  safetyState: { eStop: "NONE", fieldViolation: false }
})

/** What the AGV's next `visualization` message says. */
export const toVisualization = (v: Vehicle): Body<Visualization> => ({
  agvPosition: agvPosition(v),
  velocity: velocity(v)
})
