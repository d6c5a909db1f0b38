import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import Sqlite from "better-sqlite3"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import * as FleetvisorClient from "../../src/client/FleetvisorClient.js"
import { startProcess, type ServiceProcess } from "./support/ServiceProcess.js"

const running: Array<ServiceProcess> = []
const dirs: Array<string> = []
afterEach(async () => {
  await Promise.all(running.splice(0).map((service) => service.dispose()))
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

const env = { CANVAS_WIDTH: "32", CANVAS_HEIGHT: "32", CANVAS_COOLDOWN: "0 millis" }

/** Runs `f` with a typed client of the process, closed afterwards. */
const withClient = <A>(service: ServiceProcess, f: (client: FleetvisorClient.FleetvisorClient["Type"]) => Effect.Effect<A, unknown>) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const client = yield* FleetvisorClient.make({ url: `${service.url.replace(/^http/, "ws")}/ws`, disableTracing: true })
      yield* client.ready
      return yield* f(client)
    }).pipe(Effect.scoped, Effect.provide(NodeSocket.layerWebSocketConstructor))
  )

describe("across kill -9 and a restart of the service process", () => {
  it("an acknowledged pixel survives kill -9 and is in the snapshot after the restart", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-restart-"))
    dirs.push(dataDir)
    const first = await startProcess(env, { dataDir })
    running.push(first)
    await withClient(first, (client) => client.rpc.CanvasPlace({ x: 7, y: 9, color: 3 }))
    first.child.kill("SIGKILL")
    expect(await first.exited).toBe("SIGKILL")

    const second = await startProcess(env, { dataDir })
    running.push(second)
    const snapshot = await withClient(second, (client) => client.rpc.CanvasJoin().pipe(Stream.runHead))
    expect(snapshot._tag).toBe("Some")
    const board = (snapshot as { value: { _tag: string; width: number; pixels: Uint8Array } }).value
    expect(board._tag).toBe("Snapshot")
    expect(board.pixels[9 * board.width + 7]).toBe(3)
  })

  it("an audited control command survives kill -9: its row is in the database the restarted service opens", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-restart-"))
    dirs.push(dataDir)
    const first = await startProcess(env, { dataDir })
    running.push(first)
    const arm = await withClient(first, (client) =>
      Effect.gen(function*() {
        // An arm takes commands once its link is up: wait for the first one the fleet shows online.
        const online = yield* client.rpc.FleetSubscribe({}).pipe(
          Stream.map((event) => event.robots.find((robot) => robot.kind === "arm" && robot.status === "online")),
          Stream.filter((robot) => robot !== undefined),
          Stream.runHead
        )
        const arm = online._tag === "Some" ? online.value!.id : ""
        yield* client.rpc.FleetAcquire({ robot: arm })
        yield* client.rpc.FleetCommand({ robot: arm, command: { _tag: "Pause" } })
        return arm
      }))
    first.child.kill("SIGKILL")
    expect(await first.exited).toBe("SIGKILL")

    const second = await startProcess(env, { dataDir })
    running.push(second)
    const db = new Sqlite(path.join(dataDir, "fleetvisor.db"), { readonly: true })
    try {
      const rows = db.prepare("SELECT robot, command, result FROM audit_log WHERE robot = ?").all(arm)
      expect(rows).toEqual([{ robot: arm, command: "Acquire", result: "ok" }, { robot: arm, command: "Pause", result: "ok" }])
    } finally {
      db.close()
    }
  })
})
