/**
 * The site the simulated AGVs drive on: one map with a loop road of nodes about 5 m apart
 * around a rectangle, its size and small irregularities drawn from a seed so every run with the
 * same seed gets the same map. Positions in metres.
 */
import type { NodePosition } from "./Geometry.js"

/** A node of the map. */
export interface MapNode {
  readonly nodeId: string
  readonly x: number
  readonly y: number
}

/** A map: its id and its nodes, in the order the loop visits them. */
export interface SimMap {
  readonly mapId: string
  readonly nodes: ReadonlyArray<MapNode>
}

const SPACING = 5

/** A small deterministic PRNG (mulberry32): the same seed gives the same sequence. */
const random = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const round = (value: number) => Math.round(value * 100) / 100

/** The map of `seed`: a rectangle 20–35 m by 10–20 m, with nodes jittered by up to 0.3 m. */
export const make = (seed: number): SimMap => {
  const next = random(seed)
  const width = SPACING * (4 + Math.floor(next() * 4))
  const height = SPACING * (2 + Math.floor(next() * 3))
  const corners: ReadonlyArray<readonly [number, number]> = [[0, 0], [width, 0], [width, height], [0, height]]
  const points: Array<readonly [number, number]> = []
  corners.forEach(([x0, y0], i) => {
    const [x1, y1] = corners[(i + 1) % corners.length]
    const steps = Math.abs(x1 - x0 + y1 - y0) / SPACING
    for (let s = 0; s < steps; s++) {
      points.push([x0 + ((x1 - x0) * s) / steps, y0 + ((y1 - y0) * s) / steps])
    }
  })
  const jitter = () => (next() - 0.5) * 0.6
  return {
    mapId: `sim-map-${seed}`,
    nodes: points.map(([x, y], i) => ({ nodeId: `N${i + 1}`, x: round(5 + x + jitter()), y: round(5 + y + jitter()) }))
  }
}

/** The node called `nodeId`, if the map has one. */
export const node = (map: SimMap, nodeId: string): MapNode | undefined => map.nodes.find((n) => n.nodeId === nodeId)

/** A node's position as an order gives it. */
export const nodePosition = (map: SimMap, node: MapNode): NodePosition => ({ x: node.x, y: node.y, mapId: map.mapId })
