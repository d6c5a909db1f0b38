/**
 * A supervised tree that crashes a child on purpose and prints the tree
 * before and after the restart.
 *
 *     npm run example
 */
import { Effect } from "effect"
import { Actor, type ActorRef, ActorSystem, ExitReason, Registry, TestKit } from "../src/actors/index.js"
import { ChildSpec, DynamicSupervisor, Supervisor } from "../src/supervisors/index.js"

type CounterMsg = { readonly _tag: "Tick" }

/** Counts ticks; forgets them when it is restarted, as any actor's state would. */
const Counter = Actor.make<CounterMsg, number>({
  name: "counter",
  init: () => 0,
  receive: (n) => n + 1,
  terminate: (n, reason, ctx) => console.log(`  ${ctx.self.name} stops after ${n} ticks: ${ExitReason.format(reason)}`)
})

const program = Effect.gen(function*() {
  const system = yield* ActorSystem.ActorSystem
  const names = yield* Registry.make<string, CounterMsg>({ keys: "unique" })
  const root = yield* system.spawn(
    Supervisor.make({
      strategy: "rest_for_one",
      children: [
        ChildSpec.make("store", Counter, { via: Registry.via(names, "store") }),
        ChildSpec.make("canvas", Counter),
        ChildSpec.make("sessions", DynamicSupervisor.make({ maxChildren: 3 }))
      ]
    }),
    { name: "root" }
  )
  const sessions = (yield* TestKit.findActor(system, "sessions")) as DynamicSupervisor.DynamicSupervisorRef
  for (const id of [1, 2]) yield* DynamicSupervisor.startChild(sessions, ChildSpec.make(`session:${id}`, Counter))

  const canvas = (yield* TestKit.findActor(system, "canvas")) as ActorRef.ActorRef<CounterMsg>
  for (let i = 0; i < 3; i++) yield* canvas.tell({ _tag: "Tick" })

  yield* TestKit.tick
  console.log("The tree at start:\n")
  console.log(yield* system.render)

  console.log("\nCrashing `canvas` on purpose (rest_for_one: canvas and the younger sessions restart, store keeps running):")
  yield* TestKit.crashChild(system, "canvas", "demo")
  yield* TestKit.awaitUntil(Effect.map(system.render, (tree) => tree.includes("canvas running mailbox=0 restarts=1")))

  console.log("\nThe tree after the restart:\n")
  console.log(yield* system.render)
  console.log(`\nstore is still registered as "store": ${(yield* Registry.whereis(names, "store"))._tag === "Some"}`)
  console.log("\nShutting down (children stop youngest first):")
  yield* system.stop(root)
})

Effect.runPromise(Effect.provide(program, ActorSystem.layer({ logFailures: false }))).catch((error) => {
  console.error(error)
  process.exit(1)
})
