import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import { PubSub, TestKit } from "../../../src/actors/index.js"
import type { Encoded } from "../../../src/actors/Encoded.js"
import * as FleetState from "../../../src/apps/fleet/FleetState.js"
import * as Leases from "../../../src/apps/fleet/Leases.js"
import * as StopLatches from "../../../src/apps/fleet/StopLatches.js"
import * as LinkEvent from "../../../src/links/LinkEvent.js"
import * as SampleColumns from "../../../src/links/SampleColumns.js"
import type { FleetUpdate } from "../../../src/protocol/FleetRpcs.js"

const { Field } = SampleColumns

/**
 * `fleet/state` reads samples from the columns: a robot whose slot is written is in the next
 * tick's update with the pose written, without any event; an event newer than the slot's
 * sample wins until the next sample.
 */
describe("fleet/state over the sample columns", () => {
  it.scopedLive("a sample written to a robot's slot is in the next update, with no event", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      const hub = yield* PubSub.make()
      const samples = SampleColumns.makeDirectory(8)
      const latches = yield* StopLatches.make({})
      yield* system.spawn(
        FleetState.make({ hub, arms: [], leases: Leases.make(), latches, roster: new Map(), samples, updateHz: 50 }),
        { name: "state" }
      )
      const updates = yield* PubSub.subscribeQueue<Encoded<typeof FleetUpdate.Type>>(hub, FleetState.ViewsTopic)
      const robot = "KIT/0001"
      const slot = samples.assign(robot)!
      const write = (x: number, y: number, theta: number, clock: number) => {
        const offset = SampleColumns.begin(samples.columns, slot)
        const v = samples.columns.values
        v[offset + Field.kind] = 1
        v[offset + Field.at] = Date.now()
        v[offset + Field.clock] = clock
        v[offset + Field.x] = x
        v[offset + Field.y] = y
        v[offset + Field.theta] = theta
        v[offset + Field.poseKnown] = 1
        SampleColumns.commit(samples.columns, slot)
      }
      const nextView = Effect.gen(function*() {
        while (true) {
          const update = yield* Queue.take(updates)
          const view = update.value.robots.find((r) => r.id === robot)
          if (view !== undefined) return view
        }
      }).pipe(Effect.timeout("3 seconds"))

      yield* PubSub.broadcast(hub, LinkEvent.FleetTopic, { _tag: "LinkUp", robot, kind: "agv", at: Date.now() } satisfies LinkEvent.LinkUp)
      const up = yield* nextView
      expect(up).toMatchObject({ kind: "agv", connection: "online", poseKnown: false })

      write(1.5, 2.5, 0.25, 1_700_000_000_000)
      const moved = yield* nextView
      expect(moved).toMatchObject({ pose: { x: 1.5, y: 2.5, theta: 0.25 }, poseKnown: true, updatedAt: 1_700_000_000_000 })

      // Nothing written: no update of it. Written again: the new pose.
      yield* Effect.sleep("100 millis")
      const quiet = [...(yield* Queue.takeAll(updates))].flatMap((u) => u.value.robots).filter((r) => r.id === robot)
      expect(quiet).toEqual([])
      write(3, 4, 1, 1_700_000_000_100)
      expect(yield* nextView).toMatchObject({ pose: { x: 3, y: 4, theta: 1 } })
    }))
})
