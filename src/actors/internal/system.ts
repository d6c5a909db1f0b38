import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import type * as FiberRefs from "effect/FiberRefs"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type * as RuntimeFlags from "effect/RuntimeFlags"
import * as Stream from "effect/Stream"
import type { Behaviour, Placeholder, SpawnOptions } from "../Actor.js"
import { ActorStopped, AlreadyRegistered, InitFailed, InjectedCrash } from "../ActorError.js"
import type { ActorRef } from "../ActorRef.js"
import type { ActorSystem, DeadLetter, SystemEvent, SystemStats } from "../ActorSystem.js"
import * as ExitReason from "../ExitReason.js"
import * as LogSampler from "../LogSampler.js"
import type { ActorNode, ActorStatus } from "../Inspection.js"
import * as Inspection from "../Inspection.js"
import { ActorCell, ActorEnv, RUNNING, STARTING, STOPPED, STOPPING } from "./cell.js"
import { Deadlines } from "./deadlines.js"
import { Dispatcher } from "./dispatcher.js"
import { Envelope } from "./envelope.js"

const recentDeadLetters = 100

/** @internal */
export const TypeId: unique symbol = Symbol.for("fleetvisor/ActorSystem")

/** The guardian: the invisible parent of top-level actors, which ignores their exits. */
const guardianBehaviour: Behaviour<any, any> = {
  name: "guardian",
  receive: (state) => state
}

/** @internal */
export interface SystemConfig {
  readonly name: string
  readonly logFailures: boolean
}

/**
 * The actor system: owns the dispatcher, the deadline timer, the table of live
 * actors, dead letters and lifecycle events, and the invisible guardian under
 * which top-level actors live.
 *
 * @internal
 */
export class SystemImpl implements ActorSystem {
  readonly [TypeId]: typeof TypeId = TypeId
  readonly dispatcher = new Dispatcher()
  readonly deadlines: Deadlines
  readonly fiberId = FiberId.make(-1, 0)
  readonly guardian: ActorCell
  nextMonitorId = 1
  private nextId = 1
  private readonly cells = new Map<number, ActorCell>()
  private readonly fibers = new Set<Fiber.RuntimeFiber<any, any>>()
  private readonly listeners = new Set<(event: SystemEvent) => void>()
  private readonly recent: Array<DeadLetter> = []
  private deadLetterCount = 0
  private spawned = 0
  private lastEnv: ActorEnv
  private closing = false
  private readonly crashLog = LogSampler.make()

  constructor(
    readonly config: SystemConfig,
    readonly rootEnv: ActorEnv,
    readonly clock: Clock.Clock
  ) {
    this.lastEnv = rootEnv
    this.deadlines = new Deadlines(clock, (effect) => this.fork(rootEnv, effect))
    this.guardian = new ActorCell(this, 0, undefined, guardianBehaviour, { name: "guardian", trapExits: true }, rootEnv)
    this.guardian.start()
  }

  get name(): string {
    return this.config.name
  }

  now(): number {
    return this.clock.unsafeCurrentTimeMillis()
  }

  /** Runs an Effect for an actor in its environment; the system tracks the fiber until it ends. */
  fork<A, E>(env: ActorEnv, effect: Effect.Effect<A, E, any>): Fiber.RuntimeFiber<A, E> {
    const fiber = Runtime.runFork(env.get())(effect)
    if (fiber.unsafePoll() === null) {
      this.fibers.add(fiber)
      fiber.addObserver(() => this.fibers.delete(fiber))
    }
    return fiber
  }

  /**
   * The environment of the spawning fiber. Spawns from fibers with the same context, flags and
   * fiber-ref values (the same fiber, or fibers forked from one runtime, as a listener forks one
   * per connection) share one `ActorEnv`. `_fiberRefs` is read directly because
   * `getFiberRefs()` copies (so the copy it leaves on the fiber is what the next spawn compares with).
   */
  envOf(fiber: Fiber.RuntimeFiber<any, any>, runtimeFlags: RuntimeFlags.RuntimeFlags): ActorEnv {
    const last = this.lastEnv
    if (last.context === fiber.currentContext && (last as any).sourceFlags === runtimeFlags) {
      const refs = (fiber as any)._fiberRefs
      if ((last as any).sourceRefs === refs) return last
      if (sameValues(last.fiberRefs, refs)) {
        ;(last as any).sourceRefs = refs
        return last
      }
    }
    const env = new ActorEnv(fiber.currentContext as Context.Context<any>, fiber.getFiberRefs(), runtimeFlags)
    ;(env as any).sourceRefs = (fiber as any)._fiberRefs
    ;(env as any).sourceFlags = runtimeFlags
    this.lastEnv = env
    return env
  }

  // ---------------------------------------------------------------------------
  // Spawning and stopping
  // ---------------------------------------------------------------------------

  /**
   * Creates, registers and starts an actor under `parent`, synchronously. Returns
   * the cell (check its status: a failed `init` may have stopped it already) or
   * the error refusing its `via` name.
   */
  spawnCell<M, S>(
    parent: ActorCell,
    behaviour: Behaviour<M, S, any>,
    options: SpawnOptions,
    env: ActorEnv
  ): ActorCell<M, S> | AlreadyRegistered {
    const cell = new ActorCell<M, S>(this, this.nextId++, parent, behaviour, options, env)
    if (options.via !== undefined) {
      const refused = options.via.register(cell as ActorRef<any>)
      if (refused !== undefined) return refused
    }
    this.cells.set(cell.id, cell)
    this.spawned++
    parent.addChild(cell)
    if (this.listeners.size > 0) this.emit({ _tag: "Started", actor: cell })
    cell.start()
    return cell
  }

  /** Spawns under `parent` and waits for `init` to finish. */
  spawnUnder<M, S, R>(
    parent: ActorCell,
    behaviour: Behaviour<M, S, R>,
    options: SpawnOptions
  ): Effect.Effect<ActorRef<M>, InitFailed | AlreadyRegistered, R> {
    return Effect.withFiberRuntime((fiber, status) => {
      if (parent.status >= STOPPING) {
        return Effect.fail(
          new InitFailed({ actor: options.name ?? behaviour.name, reason: ExitReason.shutdown("parent stopped") })
        )
      }
      const cell = this.spawnCell(parent, behaviour, options, this.envOf(fiber, status.runtimeFlags))
      if (cell instanceof AlreadyRegistered) return Effect.fail(cell)
      return this.awaitStarted(cell)
    })
  }

  /** Succeeds with the actor once it runs; fails with `InitFailed` if `init` failed. */
  awaitStarted<M>(cell: ActorCell<M>): Effect.Effect<ActorRef<M>, InitFailed> {
    if (cell.status === RUNNING) return Effect.succeed(cell)
    if (cell.status === STOPPED) return Effect.fail(cell.initError())
    return Effect.async<ActorRef<M>, InitFailed>((resume) => {
      cell.onStarted = (c) => resume(c.status === RUNNING ? Exit.succeed(c) : Exit.fail(c.initError()))
    })
  }

  /**
   * Stops an actor and waits for it, honouring its shutdown policy: after the
   * timeout it is killed; `brutal_kill` kills at once; `infinity` waits.
   */
  stopAndAwait(cell: ActorCell, reason: ExitReason.ExitReason): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (cell.status === STOPPED) return Effect.void
      const policy = cell.shutdownPolicy
      if (policy === "brutal_kill") return Effect.sync(() => cell.kill())
      cell.exit(reason)
      if (cell.status === STOPPED) return Effect.void
      if (policy === "infinity") return Effect.asVoid(cell.awaitExit)
      // Finalizers run uninterruptibly; the wait must stay interruptible so the timeout can end it.
      return Effect.interruptible(cell.awaitExit).pipe(
        Effect.timeoutOption(Duration.decode(policy)),
        Effect.flatMap((done) => Option.isNone(done) ? Effect.sync(() => cell.kill()) : Effect.void)
      )
    })
  }

  /** Called by a cell as it exits. */
  unregister(cell: ActorCell, reason: ExitReason.ExitReason): void {
    this.cells.delete(cell.id)
    if (this.listeners.size > 0) this.emit({ _tag: "Stopped", actor: cell, reason })
    if (this.config.logFailures && reason._tag === "Failure" && !Cause.isInterruptedOnly(reason.cause)) {
      // Sampled per behaviour: a thousand links crashing on the same bug log one line and a count, not a thousand.
      this.fork(
        this.rootEnv,
        this.crashLog.warning(
          `crash:${cell.behaviour.name}`,
          `actor crashed (${cell.behaviour.name})`,
          "actor crashed",
          reason.cause
        ).pipe(
          Effect.annotateLogs({ actor: LogSampler.excerpt(cell.label), behaviour: cell.behaviour.name })
        )
      )
    }
  }

  deadLetter(cell: ActorCell, message: unknown, why: string): void {
    if (message instanceof Envelope) message = message.discard()
    this.deadLetterCount++
    if (this.recent.length === recentDeadLetters) this.recent.shift()
    this.recent.push({ actor: cell.label, message, reason: why, at: this.now() })
    if (this.listeners.size > 0) this.emit({ _tag: "DeadLetter", actor: cell, message, reason: why })
  }

  emit(event: SystemEvent): void {
    for (const listener of this.listeners) listener(event)
  }

  /** Stops every top-level actor, youngest first, then the deadline timer; waits for every fiber. */
  readonly shutdown: Effect.Effect<void> = Effect.suspend(() => {
    this.closing = true
    const stops: Array<Effect.Effect<void>> = []
    for (let c = this.guardian.lastChild; c !== undefined; c = c.prevSibling) {
      const cell = c
      stops.push(Effect.suspend(() => this.stopAndAwait(cell, ExitReason.shutdown("system shutdown"))))
    }
    return Effect.all(stops, { discard: true }).pipe(
      Effect.zipRight(Effect.sync(() => {
        this.deadlines.close()
        this.guardian.kill()
      })),
      Effect.zipRight(Effect.suspend(() => this.awaitFibers))
    )
  })

  private get awaitFibers(): Effect.Effect<void> {
    const fibers = [...this.fibers]
    if (fibers.length === 0) return Effect.void
    return Effect.forEach(fibers, (fiber) => fiber.await, { discard: true })
  }

  // ---------------------------------------------------------------------------
  // ActorSystem
  // ---------------------------------------------------------------------------

  spawn<M, S, R>(behaviour: Behaviour<M, S, R>, options?: SpawnOptions) {
    if (this.closing) {
      return Effect.fail(
        new InitFailed({ actor: options?.name ?? behaviour.name, reason: ExitReason.shutdown("system shutdown") })
      )
    }
    return this.spawnUnder(this.guardian, behaviour, options ?? {})
  }

  stop(ref: ActorRef<never>, reason: ExitReason.ExitReason = ExitReason.shutdown()) {
    const cell = ref as unknown as ActorCell
    return Effect.zipRight(this.stopAndAwait(cell, reason), Effect.sync(() => cell.reason as ExitReason.ExitReason))
  }

  awaitExit(ref: ActorRef<never>) {
    return (ref as unknown as ActorCell).awaitExit
  }

  lookup(id: number): Option.Option<ActorRef<unknown>> {
    return Option.fromNullable(this.cells.get(id))
  }

  get snapshot(): Effect.Effect<ReadonlyArray<ActorNode>> {
    return Effect.sync(() => this.unsafeSnapshot())
  }

  get render(): Effect.Effect<string> {
    return Effect.sync(() => Inspection.render(this.unsafeSnapshot()))
  }

  unsafeSnapshot(): ReadonlyArray<ActorNode> {
    const now = this.now()
    const nodes: Array<ActorNode> = []
    for (let c = this.guardian.firstChild; c !== undefined; c = c.nextSibling) nodes.push(this.node(c, now))
    return nodes
  }

  private node(cell: ActorCell, now: number): ActorNode {
    const description = cell.behaviour.describe !== undefined && cell.status === RUNNING
      ? cell.behaviour.describe(cell.state)
      : undefined
    const children: Array<ActorNode> = []
    if (description?.children !== undefined) {
      for (const child of description.children) {
        children.push(isPlaceholder(child) ? placeholderNode(child) : this.node(child as any, now))
      }
    } else {
      for (let c = cell.firstChild; c !== undefined; c = c.nextSibling) children.push(this.node(c, now))
    }
    return {
      id: cell.id,
      name: cell.label,
      kind: description?.kind ?? "actor",
      behaviour: cell.behaviour.name,
      status: statusOf(cell),
      mailbox: cell.mailboxSize,
      restarts: cell.restarts,
      uptimeMs: now - cell.startedAt,
      label: description?.label,
      children
    }
  }

  getState(ref: ActorRef<never>): Effect.Effect<unknown, ActorStopped> {
    return Effect.suspend(() => {
      const cell = ref as unknown as ActorCell
      return cell.status === STOPPED ? Effect.fail(cell.stoppedError()) : Effect.succeed(cell.state)
    })
  }

  suspend(ref: ActorRef<never>): Effect.Effect<void> {
    return Effect.sync(() => (ref as unknown as ActorCell).suspend())
  }

  resume(ref: ActorRef<never>): Effect.Effect<void> {
    return Effect.sync(() => (ref as unknown as ActorCell).resume())
  }

  trace(ref: ActorRef<never>): Stream.Stream<unknown> {
    return Stream.asyncPush<unknown>((emit) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const cell = ref as unknown as ActorCell
          const tracer = (message: unknown) => void emit.single(message)
          if (cell.status === STOPPED) {
            emit.end()
            return () => {}
          }
          ;(cell.tracers ??= []).push(tracer)
          const cancel = cell.onExit(() => emit.end())
          return () => {
            cancel()
            if (cell.tracers !== undefined) {
              cell.tracers = cell.tracers.filter((t) => t !== tracer)
              if (cell.tracers.length === 0) cell.tracers = undefined
            }
          }
        }),
        (release) => Effect.sync(release)
      ), { bufferSize: 1024, strategy: "sliding" })
  }

  crash(ref: ActorRef<never>, reason = "chaos"): Effect.Effect<void> {
    return Effect.sync(() =>
      (ref as unknown as ActorCell).exit(ExitReason.failure(Cause.fail(new InjectedCrash({ reason }))))
    )
  }

  kill(ref: ActorRef<never>): Effect.Effect<void> {
    return Effect.sync(() => (ref as unknown as ActorCell).kill())
  }

  get deadLetters(): Effect.Effect<{ readonly total: number; readonly recent: ReadonlyArray<DeadLetter> }> {
    return Effect.sync(() => ({ total: this.deadLetterCount, recent: [...this.recent] }))
  }

  get stats(): Effect.Effect<SystemStats> {
    return Effect.sync(() => ({
      actors: this.cells.size,
      spawned: this.spawned,
      deadLetters: this.deadLetterCount,
      fibers: this.fibers.size
    }))
  }

  subscribe(listener: (event: SystemEvent) => void): Effect.Effect<void, never, import("effect/Scope").Scope> {
    return Effect.acquireRelease(
      Effect.sync(() => this.listeners.add(listener)),
      () => Effect.sync(() => this.listeners.delete(listener))
    )
  }
}

/**
 * Whether two fiber-ref sets hold the same value of every ref. They may differ in which fiber
 * set a value, which matters only when a fiber joins another, and actor fibers never join.
 */
const sameValues = (a: FiberRefs.FiberRefs, b: FiberRefs.FiberRefs): boolean => {
  const left = (a as unknown as { readonly locals: ReadonlyMap<unknown, ReadonlyArray<readonly [unknown, unknown]>> }).locals
  const right = (b as unknown as { readonly locals: ReadonlyMap<unknown, ReadonlyArray<readonly [unknown, unknown]>> }).locals
  if (left.size !== right.size) return false
  for (const [ref, stack] of left) {
    const other = right.get(ref)
    if (other === undefined || other[0][1] !== stack[0][1]) return false
  }
  return true
}

const statusOf = (cell: ActorCell): ActorStatus => {
  switch (cell.status) {
    case STARTING:
      return "starting"
    case RUNNING:
      return cell.suspended ? "suspended" : "running"
    case STOPPING:
      return "stopping"
    default:
      return "stopped"
  }
}

const isPlaceholder = (u: unknown): u is Placeholder =>
  typeof u === "object" && u !== null && (u as Placeholder)._tag === "Placeholder"

const placeholderNode = (p: Placeholder): ActorNode => ({
  id: null,
  name: p.name,
  kind: "actor",
  behaviour: p.name,
  status: p.status,
  mailbox: 0,
  restarts: p.restarts,
  uptimeMs: 0,
  children: []
})
