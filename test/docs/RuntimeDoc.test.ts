import { describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../..", import.meta.url))

/**
 * What the examples of docs/runtime.md take for granted: the names they use without defining
 * them (an actor system in scope, the context of an actor, the behaviours of an application).
 */
const context = `
import { it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { Actor, ActorRef, ActorSystem, Encoded, ExitReason, PubSub, Registry, Remote, TestKit } from "fleetvisor/actors"
import { Backoff, ChildSpec, DynamicSupervisor, Supervisor } from "fleetvisor/supervisors"

type SessionMsg = { readonly _tag: "Frame"; readonly data: string }
declare const system: ActorSystem.ActorSystem
declare const ctx: Actor.ActorContext<SessionMsg>
declare const other: ActorRef.ActorRef<SessionMsg>
declare const ref: ActorRef.ActorRef<SessionMsg>
declare const stop: never
declare const Store: Actor.Behaviour<SessionMsg, unknown>
declare const Mqtt: Actor.Behaviour<SessionMsg, unknown>
declare const Worker: Actor.Behaviour<SessionMsg, unknown>
declare const Link: Actor.Behaviour<SessionMsg, unknown>
declare const Session: (socket: unknown) => Actor.Behaviour<SessionMsg, unknown>
declare const socket: unknown
declare const id: string
declare const names: Registry.Registry<string, SessionMsg>
declare const rooms: Registry.Registry<string, SessionMsg>
declare const msg: SessionMsg
declare const update: unknown
declare const frame: Uint8Array
void [Actor, ActorRef, ActorSystem, Encoded, ExitReason, PubSub, Registry, Remote, Schema, TestKit, Backoff, ChildSpec, DynamicSupervisor, Supervisor, it]
`

/** The \`\`\`ts blocks of a markdown file. */
const blocks = (markdown: string): Array<string> => [...markdown.matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((m) => m[1])

const run = (command: string, args: ReadonlyArray<string>) =>
  spawnSync(command, args, { cwd: root, encoding: "utf8", timeout: 120_000 })

describe("docs/runtime.md", () => {
  it("its examples compile against the published kernel (fleetvisor/actors, fleetvisor/supervisors) built by npm run build", () => {
    const build = run("npm", ["run", "-s", "build"])
    expect(build.status, build.stdout + build.stderr).toBe(0)
    expect(fs.existsSync(path.join(root, "dist/actors/index.d.ts"))).toBe(true)

    const examples = blocks(fs.readFileSync(path.join(root, "docs/runtime.md"), "utf8"))
    expect(examples.length).toBeGreaterThanOrEqual(8)
    // The first block is the imports (the context has them); the others run inside an Effect,
    // each in a scope of its own; a block that calls a test function stays at the top level.
    const [imports, ...rest] = examples
    expect(imports).toMatch(/from "fleetvisor\/actors"/)
    const body = rest.map((block, i) =>
      /^it[.(]/m.test(block) ? block : `export const example${i + 2} = Effect.gen(function*() {\n${block}\n})\n`
    )
    const dir = path.join(root, "test-artifacts", "runtime-doc")
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(path.join(dir, "examples.ts"), `${context}\n${body.join("\n")}`)
    fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ["node"]
      },
      files: ["examples.ts"]
    }))
    const check = run("npx", ["tsc", "-p", path.join(dir, "tsconfig.json")])
    expect(check.stdout + check.stderr).toBe("")
    expect(check.status).toBe(0)
  }, 180_000)
})
