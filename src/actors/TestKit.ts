/**
 * Tools for testing actors, in the spirit of Akka's `TestProbe` and Phoenix's
 * `ChannelTest`: a system per test, the tree rendered as text, waiting until
 * the tree reads as expected, probes that record what they receive.
 *
 * ```ts
 * it.scoped("a crashed child is restarted", () =>
 *   Effect.gen(function*() {
 *     const system = yield* TestKit.system()
 *     const sup = yield* system.spawn(Supervisor.make({ children: [ChildSpec.make("worker", Worker)] }), { name: "sup" })
 *     yield* TestKit.crashChild(system, "worker")
 *     yield* TestKit.awaitTree(system, `
 *       sup (one_for_one)
 *       └─ worker running mailbox=0 restarts=1`)
 *   }))
 * ```
 *
 * Everything here waits on the event loop (not on the `Clock`), so tests may
 * drive timeouts and backoff with `TestClock.adjust` while the kit waits.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Actor from "./Actor.js"
import type { ActorRef } from "./ActorRef.js"
import type { ActorSystem } from "./ActorSystem.js"
import * as ActorSystemModule from "./ActorSystem.js"
import * as Inspection from "./Inspection.js"
import type { ActorCell } from "./internal/cell.js"
import type { Down, Signal } from "./Signal.js"

/** A wait that did not see what it waited for. */
export class WaitTimeout extends Data.TaggedError("WaitTimeout")<{
  readonly waitedFor: string
  readonly last: string
}> {
  override get message() {
    return `timed out waiting for ${this.waitedFor}\n--- last seen:\n${this.last}`
  }
}

/** A system for one test, stopped when the test's scope closes. Crashes are not logged (tests inject them). */
export const system = (options?: ActorSystemModule.Options): Effect.Effect<ActorSystem, never, Scope.Scope> =>
  ActorSystemModule.make({ logFailures: false, ...options })

/** Lets the event loop turn once: mail is delivered, fibers advance, sockets are read. */
export const tick: Effect.Effect<void> = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** Strips the common indentation and blank edge lines of a template literal. */
export const dedent = (text: string): string => {
  const lines = text.replace(/^\s*\n/, "").replace(/\n\s*$/, "").split("\n")
  const indent = Math.min(...lines.filter((l) => l.trim() !== "").map((l) => l.match(/^ */)![0].length))
  return lines.map((l) => l.slice(indent)).join("\n")
}

/** Waits (up to `timeoutMillis` of real time, default 5 s) until `check` yields `true`. */
export const awaitUntil = (
  check: Effect.Effect<boolean>,
  options?: { readonly timeoutMillis?: number; readonly describe?: Effect.Effect<string>; readonly waitedFor?: string }
): Effect.Effect<void, WaitTimeout> =>
  Effect.suspend(() => {
    const deadline = Date.now() + (options?.timeoutMillis ?? 5_000)
    const loop: Effect.Effect<void, WaitTimeout> = Effect.flatMap(check, (ok) => {
      if (ok) return Effect.void
      if (Date.now() > deadline) {
        return Effect.flatMap(options?.describe ?? Effect.succeed(""), (last) =>
          Effect.fail(new WaitTimeout({ waitedFor: options?.waitedFor ?? "condition", last })))
      }
      return Effect.zipRight(tick, loop)
    })
    return loop
  })

/** Which part of the tree `awaitTree` and `renderTree` look at. */
export interface TreeOptions {
  /** Only the subtree of the actor with this name (itself included). */
  readonly under?: string | undefined
  /** Actors left out with their subtrees: names, or patterns matched against names. */
  readonly ignore?: ReadonlyArray<string | RegExp> | undefined
}

const ignored = (ignore: ReadonlyArray<string | RegExp>, name: string): boolean =>
  ignore.some((pattern) => typeof pattern === "string" ? pattern === name : pattern.test(name))

const prune = (nodes: ReadonlyArray<Inspection.ActorNode>, ignore: ReadonlyArray<string | RegExp>): Array<Inspection.ActorNode> =>
  nodes.filter((node) => !ignored(ignore, node.name)).map((node) => ({ ...node, children: prune(node.children, ignore) }))

/** The tree (or the part `options` names) rendered as `Inspection.render` does; empty when `under` is not in it. */
export const renderTree = (system: ActorSystem, options: TreeOptions = {}): Effect.Effect<string> =>
  Effect.map(system.snapshot, (nodes) => {
    const from = options.under === undefined ? nodes : Option.toArray(Option.fromNullable(Inspection.find(nodes, options.under)))
    return Inspection.render(options.ignore === undefined ? from : prune(from, options.ignore))
  })

/**
 * Waits until the rendered tree (or the part `options` names) equals `expected` (indentation of
 * the template literal ignored).
 *
 * ```ts
 * yield* TestKit.awaitTree(system, `
 *   links (dynamic, 2/∞)
 *   ├─ robot:arm-1 running mailbox=0 restarts=0
 *   └─ robot:arm-2 running mailbox=0 restarts=1`, { under: "links" })
 * ```
 */
export const awaitTree = (
  system: ActorSystem,
  expected: string,
  options?: TreeOptions & { readonly timeoutMillis?: number }
): Effect.Effect<void, WaitTimeout> => {
  const want = dedent(expected)
  const rendered = renderTree(system, options)
  return awaitUntil(Effect.map(rendered, (tree) => tree === want), {
    timeoutMillis: options?.timeoutMillis,
    describe: rendered,
    waitedFor: `the tree\n${want}`
  })
}

/**
 * Finds a live actor by its name in the tree (a supervisor's child id, a `via` name or a spawn
 * name), typed with the messages the caller knows it takes.
 */
export const findActor = <M = unknown>(system: ActorSystem, name: string): Effect.Effect<ActorRef<M>, WaitTimeout> =>
  Effect.gen(function*() {
    let found: ActorRef<unknown> | undefined
    yield* awaitUntil(
      Effect.map(system.snapshot, (nodes) => {
        const node = Inspection.find(nodes, name)
        if (node?.id === null || node === undefined || node.status !== "running") return false
        const ref = system.lookup(node.id)
        found = ref._tag === "Some" ? ref.value : undefined
        return found !== undefined
      }),
      { waitedFor: `a running actor named ${name}`, describe: system.render }
    )
    return found as ActorRef<M>
  })

/** Crashes the live actor named `name` (fault injection) and returns it. */
export const crashChild = (
  system: ActorSystem,
  name: string,
  reason?: string
): Effect.Effect<ActorRef<unknown>, WaitTimeout> =>
  Effect.tap(findActor(system, name), (ref) => system.crash(ref, reason))

/** A probe: an actor that records what it receives, to assert on in order. */
export interface Probe<M> {
  readonly ref: ActorRef<M>
  /** Messages received and not yet expected. */
  readonly received: ReadonlyArray<M | Signal>
  /** The next message (or signal), waiting up to `timeoutMillis` of real time (default 3 s). */
  expectMessage(timeoutMillis?: number): Effect.Effect<M | Signal, WaitTimeout>
  /** Asserts nothing arrives while the event loop turns `turns` times. */
  expectNoMessage(turns?: number): Effect.Effect<void, WaitTimeout>
  /** Monitors `target`; its `Down` will be received like a message. */
  watch(target: ActorRef<never>): void
  /** The next message, which must be a `Down`. */
  expectDown(timeoutMillis?: number): Effect.Effect<Down, WaitTimeout>
}

/** Spawns a probe in `system`. */
export const probe = <M = unknown>(system: ActorSystem, name = "probe"): Effect.Effect<Probe<M>> =>
  Effect.gen(function*() {
    const inbox: Array<M | Signal> = []
    const behaviour = Actor.make<M, null>({
      name: "probe",
      init: () => null,
      receive: (state, message) => {
        inbox.push(message)
        return state
      },
      onSignal: (state, signal) => {
        inbox.push(signal)
        return state
      }
    })
    const ref = yield* Effect.orDie(system.spawn(behaviour, { name, mailbox: { capacity: 1_000_000 } }))
    const expectMessage = (timeoutMillis = 3_000) =>
      Effect.zipRight(
        awaitUntil(Effect.sync(() => inbox.length > 0), { timeoutMillis, waitedFor: `a message to ${name}` }),
        Effect.sync(() => inbox.shift() as M | Signal)
      )
    return {
      ref,
      get received() {
        return inbox
      },
      expectMessage,
      expectNoMessage: (turns = 20) =>
        Effect.gen(function*() {
          for (let i = 0; i < turns; i++) yield* tick
          if (inbox.length > 0) {
            return yield* Effect.fail(new WaitTimeout({ waitedFor: "no message", last: String(inbox[0]) }))
          }
        }),
      watch: (target) => void (ref as unknown as ActorCell).monitor(target),
      expectDown: (timeoutMillis) =>
        Effect.flatMap(expectMessage(timeoutMillis), (message) =>
          (message as Signal)._tag === "Down"
            ? Effect.succeed(message as Down)
            : Effect.fail(new WaitTimeout({ waitedFor: "a Down signal", last: String(message) })))
    }
  })
