import { SqlClient } from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as path from "node:path"
import { PubSub, TestKit } from "../../../src/actors/index.js"
import * as TelemetryRecorder from "../../../src/apps/fleet/TelemetryRecorder.js"
import * as LinkEvent from "../../../src/links/LinkEvent.js"
import * as ArmSample from "../../../src/links/rmi/ArmSample.js"
import * as SampleColumns from "../../../src/links/SampleColumns.js"
import * as Database from "../../../src/store/Database.js"
import { layer as telemetryLayer, TelemetryLog } from "../../../src/store/TelemetryLog.js"
import { tempDirectory } from "../../store/tempDirectory.js"

const { Field } = SampleColumns

const writePose = (samples: SampleColumns.Directory, slot: number, x: number, at: number) => {
  const offset = SampleColumns.begin(samples.columns, slot)
  const v = samples.columns.values
  v[offset + Field.kind] = 1
  v[offset + Field.at] = at
  v[offset + Field.x] = x
  v[offset + Field.y] = -x
  v[offset + Field.theta] = 0.5
  v[offset + Field.poseKnown] = 1
  v[offset + Field.vx] = 1.25
  SampleColumns.commit(samples.columns, slot)
}

const poll = (x: number, at: number): LinkEvent.ArmTelemetry => ({
  _tag: "ArmTelemetry",
  robot: "arm-1",
  at,
  programStatus: "running",
  servoReady: true,
  tpMode: false,
  override: 80,
  moving: true,
  position: { X: x, Y: 2, Z: 3, W: 180, P: 0, R: 90 },
  joints: { J1: 10, J2: 20, J3: 30, J4: 40, J5: 50, J6: 60 },
  timeTag: 4242
})

type Row = { robot: string; at: number; kind: string; x: number | null; y: number | null; theta: number | null; payload: string | null }

/**
 * Samples reach the telemetry log without the event loop: the recorder's worker reads the
 * fleet's sample columns itself, at `poseHz`, and records one row per robot written since.
 */
describe("telemetry sampled from the columns on the log's worker", () => {
  it.scopedLive("an AGV's pose and an arm's poll become rows; a robot not written since is not recorded again", () =>
    Effect.gen(function*() {
      const dir = yield* tempDirectory
      const context = yield* Layer.build(
        telemetryLayer().pipe(Layer.provideMerge(Database.layer({ filename: path.join(dir, "fleet.db") })))
      )
      const log = yield* Effect.provide(TelemetryLog, context)
      const sql = yield* Effect.provide(SqlClient, context)
      const rows = (robot: string) =>
        sql<Row>`SELECT robot, at, kind, x, y, theta, payload FROM telemetry WHERE robot = ${robot} ORDER BY at`
      const rowsOnceThere = (robot: string, count: number) =>
        rows(robot).pipe(
          Effect.filterOrFail((found) => found.length >= count),
          Effect.retry(Schedule.spaced("20 millis")),
          Effect.timeout("10 seconds")
        )

      const system = yield* TestKit.system()
      const hub = yield* PubSub.make()
      const samples = SampleColumns.makeDirectory(4)
      const agv = samples.assign("KIT/0001")!
      const arm = samples.assign("arm-1")!
      yield* system.spawn(TelemetryRecorder.make(hub, log, { samples, poseHz: 20 }), { name: "telemetry" })

      writePose(samples, agv, 1, 1_000)
      writePose(samples, agv, 2, 1_001) // the newer sample is the one read
      ArmSample.write({ columns: samples.columns, slot: arm }, poll(7, 2_000))
      const [pose] = yield* rowsOnceThere("KIT/0001", 1)
      expect(pose).toEqual({ robot: "KIT/0001", at: 1_001, kind: "pose", x: 2, y: -2, theta: 0.5, payload: "{\"vx\":1.25,\"vy\":null,\"omega\":null}" })
      const [armRow] = yield* rowsOnceThere("arm-1", 1)
      expect(armRow).toMatchObject({ at: 2_000, kind: "arm", x: null })
      expect(JSON.parse(armRow.payload!)).toEqual({
        position: { X: 7, Y: 2, Z: 3, W: 180, P: 0, R: 90 },
        joints: { J1: 10, J2: 20, J3: 30, J4: 40, J5: 50, J6: 60 },
        programStatus: "running",
        override: 80,
        timeTag: 4242
      })

      // The arm's status event is not a second row: its sample is what is recorded.
      LinkEvent.unsafePublish(hub, poll(7, 2_000))
      // Nothing written for a few turns: nothing recorded. Then one more sample, one more row.
      yield* Effect.sleep("200 millis")
      expect((yield* rows("KIT/0001")).length).toBe(1)
      expect((yield* rows("arm-1")).length).toBe(1)
      writePose(samples, agv, 3, 1_500)
      expect((yield* rowsOnceThere("KIT/0001", 2)).map((r) => r.x)).toEqual([2, 3])
      expect((yield* log.stats).sampled).toBe(3)
      expect((yield* log.stats).appended).toBe(0)
    }))
})
