/**
 * A fleetvisor server for tests: the stand-in gateway, the bridge, and stub handlers of the
 * current RPCs. The handlers keep the writers of direct streams in `TestHub` topics, as the real
 * canvas and fleet actors will, so a test publishes shared frames by hand.
 */
import type { Headers } from "@effect/platform/Headers"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { CanvasJoin, InvalidColor, OutOfBounds, Snapshot } from "../../../src/protocol/CanvasRpcs.js"
import { ControlHeld, FleetSnapshot, FleetSubscribe, type RobotView, UnknownRobot } from "../../../src/protocol/FleetRpcs.js"
import { FleetvisorRpcs } from "../../../src/protocol/FleetvisorRpcs.js"
import * as RpcBridge from "../../../src/protocol/RpcBridge.js"
import type * as Rejection from "../../../src/protocol/Rejection.js"
import * as SharedFrame from "../../../src/protocol/SharedFrame.js"
import type * as Subprotocol from "../../../src/protocol/Subprotocol.js"
import * as TestGateway from "./TestGateway.js"

/** The subscribers of one direct stream. */
export interface Topic {
  /** Writes a frame to every subscriber; returns how many took it. */
  readonly publish: (frame: SharedFrame.SharedFrame) => number
  /** Waits until exactly `count` subscribers are registered. */
  readonly awaitSubscribers: (count: number) => Effect.Effect<void>
  /** Registers a writer for as long as the scope lasts. */
  readonly subscribe: (writer: RpcBridge.ChunkWriter) => Effect.Effect<void, never, Scope.Scope>
}

const makeTopic = Effect.gen(function*() {
  const writers = new Set<RpcBridge.ChunkWriter>()
  const count = yield* SubscriptionRef.make(0)
  return {
    publish: (frame) => [...writers].filter((writer) => writer.write(frame)).length,
    awaitSubscribers: (expected) =>
      count.changes.pipe(Stream.takeUntil((current) => current === expected), Stream.runDrain),
    subscribe: (writer) =>
      Effect.acquireRelease(
        Effect.zipRight(Effect.sync(() => writers.add(writer)), SubscriptionRef.update(count, (n) => n + 1)),
        () => Effect.zipRight(Effect.sync(() => writers.delete(writer)), SubscriptionRef.update(count, (n) => n - 1))
      )
  } satisfies Topic
})

/** What the stub handlers saw, and the topics they feed. */
export class TestHub extends Context.Tag("test/protocol/TestHub")<TestHub, {
  readonly canvas: Topic
  readonly fleet: Topic
  readonly calls: Array<{ readonly tag: string; readonly payload: unknown; readonly headers: Headers }>
  readonly rejections: Array<Rejection.Rejection>
}>() {
  static readonly layer = Layer.effect(
    TestHub,
    Effect.all({ canvas: makeTopic, fleet: makeTopic, calls: Effect.sync(() => []), rejections: Effect.sync(() => []) })
  )
}

/** The board the stub canvas serves. */
export const board = Snapshot.make({
  width: 4,
  height: 2,
  palette: ["#ffffff", "#000000"],
  pixels: new Uint8Array([0, 1, 0, 1, 1, 0, 1, 0]),
  seq: 7
})

/** The robots the stub fleet serves. */
export const robots: ReadonlyArray<RobotView> = [
  { kind: "agv", id: "agv-1", status: "online", battery: 81, alarms: [], pose: { x: 1.5, y: 2, theta: 0.5 } },
  {
    kind: "arm",
    id: "arm-1",
    status: "paused",
    alarms: [{ code: "SRVO-002", level: "warning", message: "Teach pendant E-stop" }],
    controlledBy: "session-9",
    position: { x: 500, y: 0, z: 300, w: 180, p: 0, r: 0 },
    joints: [0, 10, -20, 0, 90, 0]
  }
]

/** The stub server's clock, so that answers are predictable. */
export const now = DateTime.unsafeMake(1_700_000_000_000)

const handlers = FleetvisorRpcs.toLayer(
  Effect.gen(function*() {
    const hub = yield* TestHub
    const record = (tag: string, payload: unknown, headers: Headers) =>
      Effect.sync(() => hub.calls.push({ tag, payload, headers }))
    return {
      Hello: (payload, { headers }) =>
        record("Hello", payload, headers).pipe(
          Effect.as({ serverVersion: "test", protocolVersion: 1, features: ["canvas", "fleet"], node: "node-a" })
        ),
      Ping: () => Effect.void,
      ServerTime: () => Effect.succeed({ now }),
      CanvasJoin: () =>
        RpcBridge.directStream((writer) =>
          Effect.gen(function*() {
            writer.write(SharedFrame.encodeOnce(CanvasJoin, [board]))
            yield* hub.canvas.subscribe(writer)
            return yield* Effect.never
          })
        ),
      CanvasPlace: (payload, { headers }) =>
        Effect.gen(function*() {
          yield* record("CanvasPlace", payload, headers)
          if (payload.color >= board.palette.length) return yield* new InvalidColor()
          if (payload.x >= board.width || payload.y >= board.height) return yield* new OutOfBounds()
          return { seq: board.seq + 1, cooldownUntil: DateTime.add(now, { seconds: 5 }) }
        }),
      FleetSubscribe: (payload, { headers }) =>
        RpcBridge.directStream((writer) =>
          Effect.gen(function*() {
            yield* record("FleetSubscribe", payload, headers)
            const selected = robots.filter((robot) => payload.robots?.includes(robot.id) ?? true)
            writer.write(SharedFrame.encodeOnce(FleetSubscribe, [FleetSnapshot.make({ tick: 1, robots: selected })]))
            yield* hub.fleet.subscribe(writer)
            return yield* Effect.never
          })
        ),
      FleetAcquire: ({ robot }) =>
        Effect.gen(function*() {
          if (robot === "arm-1") return yield* new ControlHeld({ robot, holder: "session-9" })
          if (robot !== "agv-1") return yield* new UnknownRobot({ robot })
          return { robot, expiresAt: DateTime.add(now, { seconds: 30 }) }
        }),
      FleetRenew: ({ robot }) => Effect.succeed({ robot, expiresAt: DateTime.add(now, { seconds: 60 }) }),
      FleetRelease: () => Effect.void,
      FleetCommand: (payload, { headers }) => Effect.asVoid(record("FleetCommand", payload, headers)),
      FleetEmergencyStop: (payload, { headers }) =>
        Effect.as(record("FleetEmergencyStop", payload, headers), { reached: [], latchedOnly: [] })
    }
  })
)

const bridge = Layer.unwrapEffect(
  Effect.map(TestHub, (hub) =>
    RpcBridge.layer(FleetvisorRpcs, {
      disableTracing: true,
      onReject: (_, rejection) => hub.rejections.push(rejection)
    }))
)

/** The stub server behind the stand-in gateway. */
export const layer = (
  accepted?: ReadonlyArray<Subprotocol.Subprotocol>
): Layer.Layer<TestGateway.TestGateway | RpcBridge.RpcBridge | TestHub> =>
  TestGateway.layer(accepted).pipe(
    Layer.provideMerge(bridge),
    Layer.provideMerge(handlers),
    Layer.provideMerge(TestHub.layer)
  )
