import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as path from "node:path"
import { AuditLog, layer as auditLayer } from "../../src/store/AuditLog.js"
import * as Database from "../../src/store/Database.js"
import { tempDirectory } from "./tempDirectory.js"

const audit = Layer.unwrapScoped(Effect.map(tempDirectory, (dir) =>
  auditLayer.pipe(Layer.provide(Database.layer({ filename: path.join(dir, "audit.db") })))))

describe("AuditLog", () => {
  it.scoped("records every control command and finds them by robot and time, newest first", () =>
    Effect.gen(function*() {
      const log = yield* AuditLog
      yield* log.record({ at: 100, who: "ada", robot: "agv-1", command: "startPause", params: {}, result: "ok" })
      yield* log.record({
        at: 200,
        who: "bob",
        robot: "arm-7",
        command: "FRC_LinearMotion",
        params: { Position: { X: 10.5, Y: -3, Z: 400 }, Speed: 50, TermType: "FINE" },
        result: "error",
        message: "RMIT-028 Wait for Instruction Done"
      })
      yield* log.record({ at: 300, who: "ada", robot: "agv-1", command: "stopPause", params: [1, "two"], result: "ok" })

      expect(yield* log.query({ limit: 10 })).toEqual([
        { at: 300, who: "ada", robot: "agv-1", command: "stopPause", params: [1, "two"], result: "ok" },
        {
          at: 200,
          who: "bob",
          robot: "arm-7",
          command: "FRC_LinearMotion",
          params: { Position: { X: 10.5, Y: -3, Z: 400 }, Speed: 50, TermType: "FINE" },
          result: "error",
          message: "RMIT-028 Wait for Instruction Done"
        },
        { at: 100, who: "ada", robot: "agv-1", command: "startPause", params: {}, result: "ok" }
      ])
      expect((yield* log.query({ robot: "agv-1", limit: 10 })).map((e) => e.command)).toEqual(["stopPause", "startPause"])
      expect((yield* log.query({ since: 200, limit: 10 })).map((e) => e.at)).toEqual([300, 200])
      expect((yield* log.query({ robot: "agv-1", since: 150, limit: 10 })).map((e) => e.at)).toEqual([300])
      expect((yield* log.query({ limit: 1 })).map((e) => e.at)).toEqual([300])
    }).pipe(Effect.provide(audit)))
})
