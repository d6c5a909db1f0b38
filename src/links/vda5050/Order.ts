/**
 * The `order` topic: a graph of nodes and edges for the AGV to traverse, with actions on them.
 * Nodes carry even `sequenceId`s and edges odd ones, running across the whole order; nodes and
 * edges with `released: false` are the horizon, which the AGV must not enter yet.
 */
import * as Schema from "effect/Schema"
import { Action } from "./Action.js"
import { NodePosition, Trajectory } from "./Geometry.js"
import type { Header } from "./Header.js"
import { HeaderFields } from "./Header.js"

const SequenceId = Schema.Int.pipe(Schema.nonNegative())

/** A node of an order. */
export const Node = Schema.Struct({
  nodeId: Schema.String,
  sequenceId: SequenceId,
  nodeDescription: Schema.optional(Schema.String),
  released: Schema.Boolean,
  nodePosition: Schema.optional(NodePosition),
  actions: Schema.Array(Action)
}).annotations({ identifier: "Node" })

/** A node of an order. */
export interface Node extends Schema.Schema.Type<typeof Node> {}

/** An edge of an order, from `startNodeId` to `endNodeId`. */
export const Edge = Schema.Struct({
  edgeId: Schema.String,
  sequenceId: SequenceId,
  edgeDescription: Schema.optional(Schema.String),
  released: Schema.Boolean,
  startNodeId: Schema.String,
  endNodeId: Schema.String,
  maxSpeed: Schema.optional(Schema.Finite),
  maxHeight: Schema.optional(Schema.Finite),
  minHeight: Schema.optional(Schema.Finite),
  orientation: Schema.optional(Schema.Finite.pipe(Schema.between(-3.14159265359, 3.14159265359))),
  orientationType: Schema.optional(Schema.Literal("GLOBAL", "TANGENTIAL")),
  direction: Schema.optional(Schema.String),
  rotationAllowed: Schema.optional(Schema.Boolean),
  maxRotationSpeed: Schema.optional(Schema.Finite),
  length: Schema.optional(Schema.Finite),
  trajectory: Schema.optional(Trajectory),
  actions: Schema.Array(Action)
}).annotations({ identifier: "Edge" })

/** An edge of an order. */
export interface Edge extends Schema.Schema.Type<typeof Edge> {}

/** An `order` message. */
export const Order = Schema.Struct({
  ...HeaderFields,
  orderId: Schema.String,
  orderUpdateId: Schema.Int.pipe(Schema.nonNegative()),
  zoneSetId: Schema.optional(Schema.String),
  nodes: Schema.Array(Node),
  edges: Schema.Array(Edge)
}).annotations({ identifier: "Order" })

/** An `order` message. */
export interface Order extends Schema.Schema.Type<typeof Order> {}

/** An order without its header, as built before it is stamped and sent. */
export type OrderBody = Omit<Order, keyof Header>

/** One stop of a path given to {@link fromPath}. */
export interface PathNode {
  readonly nodeId: string
  readonly nodePosition?: NodePosition
  readonly actions?: ReadonlyArray<Action>
}

/**
 * Builds an order that drives through `path` in sequence: nodes get sequenceIds 0, 2, 4, …, the
 * edges between them 1, 3, 5, …. The first `released` nodes (all by default) form the base;
 * the rest is the horizon.
 */
export const fromPath = (options: {
  readonly orderId: string
  readonly orderUpdateId?: number
  readonly path: ReadonlyArray<PathNode>
  readonly released?: number
}): OrderBody => {
  const released = options.released ?? options.path.length
  const nodes = options.path.map((node, i): Node => ({
    nodeId: node.nodeId,
    sequenceId: 2 * i,
    released: i < released,
    ...(node.nodePosition === undefined ? {} : { nodePosition: node.nodePosition }),
    actions: node.actions ?? []
  }))
  const edges = nodes.slice(1).map((end, i): Edge => ({
    edgeId: `${nodes[i].nodeId}-${end.nodeId}`,
    sequenceId: 2 * i + 1,
    released: end.released,
    startNodeId: nodes[i].nodeId,
    endNodeId: end.nodeId,
    actions: []
  }))
  return { orderId: options.orderId, orderUpdateId: options.orderUpdateId ?? 0, nodes, edges }
}
