import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestKit } from "../../src/actors/index.js"
import { ChildSpec, Supervisor } from "../../src/supervisors/index.js"
import { worker } from "./fixtures.js"

/** root ─ gateway (listener, sessions ─ session:1, session:2) and store. */
const node = Supervisor.make({
  strategy: "one_for_one",
  children: [
    ChildSpec.make("store", worker()),
    ChildSpec.make(
      "gateway",
      Supervisor.make({
        strategy: "rest_for_one",
        children: [
          ChildSpec.make("listener", worker()),
          ChildSpec.make(
            "sessions",
            Supervisor.make({ strategy: "one_for_one", children: ["session:1", "session:2"].map((id) => ChildSpec.make(id, worker())) })
          )
        ]
      })
    )
  ]
})

describe("TestKit trees", () => {
  it.scoped("renderTree and awaitTree look at one subtree (`under`) and leave out what a test does not care about (`ignore`)", () =>
    Effect.gen(function*() {
      const system = yield* TestKit.system()
      yield* system.spawn(node, { name: "root" })
      expect(yield* TestKit.renderTree(system, { under: "gateway" })).toBe(TestKit.dedent(`
        gateway (rest_for_one)
        ├─ listener running mailbox=0 restarts=0
        └─ sessions (one_for_one)
           ├─ session:1 running mailbox=0 restarts=0
           └─ session:2 running mailbox=0 restarts=0`))
      yield* TestKit.crashChild(system, "session:2")
      yield* TestKit.awaitTree(system, `
        root (one_for_one)
        ├─ store running mailbox=0 restarts=0
        └─ gateway (rest_for_one)
           └─ listener running mailbox=0 restarts=0`, { ignore: ["sessions"] })
      yield* TestKit.awaitTree(system, `
        sessions (one_for_one)
        ├─ session:1 running mailbox=0 restarts=0
        └─ session:2 running mailbox=0 restarts=1`, { under: "sessions" })
      yield* TestKit.awaitTree(system, `
        sessions (one_for_one)`, { under: "sessions", ignore: [/^session:/] })
      expect(yield* TestKit.renderTree(system, { under: "nowhere" })).toBe("")
    }))
})
