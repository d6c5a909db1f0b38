import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import type * as FiberRefs from "effect/FiberRefs"
import type * as Context from "effect/Context"
import { pipeArguments } from "effect/Pipeable"
import * as Runtime from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Scope from "effect/Scope"
import type { ActorContext, Behaviour, ShutdownPolicy, SpawnOptions } from "../Actor.js"
import { ActorStopped, AskTimeout, InitFailed, MailboxFull } from "../ActorError.js"
import type { ActorRef, AskOptions, Reply } from "../ActorRef.js"
import { TypeId } from "../ActorRef.js"
import * as ExitReason from "../ExitReason.js"
import * as Mailbox from "../Mailbox.js"
import { Down, ExitSignal, type MonitorRef } from "../Signal.js"
import type { Timed } from "./deadlines.js"
import { Deque } from "./deque.js"
import { Envelope, skip } from "./envelope.js"
import type { SystemImpl } from "./system.js"

/** Lifecycle of one actor incarnation. */
export const STARTING = 0
export const RUNNING = 1
export const STOPPING = 2
export const STOPPED = 3

const SCHEDULED = 1
const SUSPENDED = 2
const TRAP_EXITS = 4
const INITIALIZED = 8
const IN_HANDLER = 16

const AFTER_RECEIVE = 0
const AFTER_INIT = 1

const defaultAskMillis = 5_000
const defaultShutdownMillis = 5_000

/**
 * The environment handlers run in: the context and fiber refs of whoever
 * spawned the actor. Its fibers are always interruptible, even when the spawn
 * happened in an uninterruptible region (a resource's acquire, a finalizer).
 */
export class ActorEnv {
  private runtime: Runtime.Runtime<any> | undefined
  readonly runtimeFlags: RuntimeFlags.RuntimeFlags
  constructor(
    readonly context: Context.Context<any>,
    readonly fiberRefs: FiberRefs.FiberRefs,
    runtimeFlags: RuntimeFlags.RuntimeFlags
  ) {
    this.runtimeFlags = RuntimeFlags.enable(runtimeFlags, RuntimeFlags.Interruption)
  }
  get(): Runtime.Runtime<any> {
    return (this.runtime ??= Runtime.make({
      context: this.context,
      fiberRefs: this.fiberRefs,
      runtimeFlags: this.runtimeFlags
    }))
  }
}

/**
 * Told once when the actor it watches exits: an actor's monitor, a runtime callback (PubSub), a
 * Registry entry. A cell links its watches in a list through them, so a watch is one object.
 */
export abstract class Watch {
  /** The cell watched, while the watch is in its list. */
  target: ActorCell | undefined = undefined
  wprev: Watch | undefined = undefined
  wnext: Watch | undefined = undefined
  /** Called once, when `target` exits (at once if it already has). */
  abstract exited(target: ActorCell, reason: ExitReason.ExitReason): void
}

/** An actor monitoring another. */
class Monitor extends Watch implements MonitorRef {
  constructor(readonly id: number, readonly watcher: ActorCell) {
    super()
  }
  exited(target: ActorCell, reason: ExitReason.ExitReason): void {
    this.watcher.holding?.delete(this.id)
    this.watcher.offer(new Down(this, target, reason), true)
  }
}

/** A function called on exit. */
class Callback extends Watch {
  constructor(readonly f: (reason: ExitReason.ExitReason) => void) {
    super()
  }
  exited(_: ActorCell, reason: ExitReason.ExitReason): void {
    this.f(reason)
  }
}

/**
 * The reply handle of one outstanding `ask`, on the deadline list and on its
 * target's pending list. An asker interrupted while it waits does not remove
 * it (an interruption hook would double the cost of every `ask`): it stays
 * until the reply, its deadline or the target's exit, and its resumption is
 * then ignored; `isPending` sees the interruption at once.
 */
class ReplyImpl<A, E> implements Reply<A, E>, Timed {
  deadline = 0
  tprev: Timed | undefined = undefined
  tnext: Timed | undefined = undefined
  tlist: Timed["tlist"] = undefined
  aprev: ReplyImpl<any, any> | undefined = undefined
  anext: ReplyImpl<any, any> | undefined = undefined
  constructor(
    readonly cell: ActorCell,
    public resume: ((effect: Effect.Effect<A, any>) => void) | undefined,
    readonly timeoutMillis: number,
    /** The asking fiber, when an interruption can end its wait. */
    readonly asker: Fiber.RuntimeFiber<unknown, unknown> | undefined
  ) {}
  succeed(value: A): void {
    this.complete(Exit.succeed(value))
  }
  fail(error: E): void {
    this.complete(Exit.fail(error))
  }
  complete(exit: Exit.Exit<A, E>): void {
    const resume = this.resume
    if (resume === undefined) return
    this.cancel()
    resume(exit)
  }
  isPending(): boolean {
    return this.resume !== undefined &&
      (this.asker === undefined || Cause.isEmpty(this.asker.getFiberRef(FiberRef.interruptedCause)))
  }
  expire(): void {
    const resume = this.resume
    if (resume === undefined) return
    this.cell.unlinkAsk(this)
    this.resume = undefined
    resume(Exit.fail(new AskTimeout({ actor: this.cell.label, timeoutMillis: this.timeoutMillis })))
  }
  cancel(): void {
    if (this.resume === undefined) return
    this.resume = undefined
    this.cell.unlinkAsk(this)
    this.cell.system.deadlines.remove(this)
  }
}

const variance = (_: unknown) => _

/**
 * One actor incarnation. It is at once the actor's ref (what others hold) and
 * its context (what its handlers get), to keep an idle actor to one object:
 * no fiber, no scope, no mailbox array until mail arrives.
 *
 * @internal
 */
export class ActorCell<M = any, S = any> implements ActorRef<M>, ActorContext<M> {
  declare readonly [TypeId]: (_: M) => void

  state: S = undefined as S
  status = STARTING
  flags = 0
  restarts = 0
  startedAt: number
  /** A fiber working for this actor: async `init`, an Effect handler, or the stop sequence. */
  busy: Fiber.RuntimeFiber<any, any> | undefined = undefined
  normal: Deque<unknown> | undefined = undefined
  urgent: Deque<unknown> | undefined = undefined
  pendingStop: ExitReason.ExitReason | undefined = undefined
  reason: ExitReason.ExitReason | undefined = undefined
  /** The newest watch of this actor (the others follow through `wnext`). */
  watchers: Watch | undefined = undefined
  /** Monitors this actor holds on others, removed when it stops. */
  holding: Map<number, Monitor> | undefined = undefined
  links: Set<ActorCell> | undefined = undefined
  asks: ReplyImpl<any, any> | undefined = undefined
  scopeRef: Scope.CloseableScope | undefined = undefined
  tracers: Array<(message: unknown) => void> | undefined = undefined
  onStarted: ((cell: ActorCell) => void) | undefined = undefined
  /** Free for the supervisor that owns this child (its slot). */
  slot: unknown = undefined
  prevSibling: ActorCell | undefined = undefined
  nextSibling: ActorCell | undefined = undefined
  firstChild: ActorCell | undefined = undefined
  lastChild: ActorCell | undefined = undefined
  childCount = 0

  constructor(
    readonly system: SystemImpl,
    readonly id: number,
    readonly parentCell: ActorCell | undefined,
    readonly behaviour: Behaviour<M, S, any>,
    readonly options: SpawnOptions,
    readonly env: ActorEnv
  ) {
    this.startedAt = system.now()
    if (options.trapExits === true) this.flags = TRAP_EXITS
  }

  get name(): string | undefined {
    return this.options.via?.name ?? this.options.name
  }

  /** The name, or `behaviour#id`. */
  get label(): string {
    return this.name ?? `${this.behaviour.name}#${this.id}`
  }

  toString(): string {
    return this.label
  }

  pipe() {
    return pipeArguments(this, arguments)
  }

  // ---------------------------------------------------------------------------
  // ActorContext
  // ---------------------------------------------------------------------------

  get self(): ActorRef<M> {
    return this
  }

  get parent(): ActorRef<never> | undefined {
    return this.parentCell === this.system.guardian ? undefined : this.parentCell
  }

  get scope(): Scope.Scope {
    return (this.scopeRef ??= Effect.runSync(Scope.make()))
  }

  spawn<M2, S2, R2>(behaviour: Behaviour<M2, S2, R2>, options?: SpawnOptions) {
    return this.system.spawnUnder(this, behaviour, options ?? {})
  }

  stop(reason: ExitReason.ExitReason = ExitReason.normal): void {
    if (this.status === RUNNING && this.busy === undefined && (this.flags & IN_HANDLER) === 0) this.exit(reason)
    else if (this.pendingStop === undefined) this.pendingStop = reason
  }

  monitor(target: ActorRef<never>): MonitorRef {
    const watch = new Monitor(this.system.nextMonitorId++, this)
    ;(target as unknown as ActorCell).addWatch(watch)
    if (watch.target !== undefined) (this.holding ??= new Map()).set(watch.id, watch)
    return watch
  }

  demonitor(ref: MonitorRef): void {
    const watch = ref as Monitor
    this.holding?.delete(watch.id)
    watch.target?.removeWatch(watch)
  }

  link(target: ActorRef<never>): void {
    const other = target as unknown as ActorCell
    if (other === this) return
    if (other.status === STOPPED) {
      this.onLinkedExit(other, other.reason ?? ExitReason.normal)
      return
    }
    ;(this.links ??= new Set()).add(other)
    ;(other.links ??= new Set()).add(this)
  }

  unlink(target: ActorRef<never>): void {
    const other = target as unknown as ActorCell
    this.links?.delete(other)
    other.links?.delete(this)
  }

  trapExits(enabled: boolean): void {
    this.flags = enabled ? this.flags | TRAP_EXITS : this.flags & ~TRAP_EXITS
  }

  // ---------------------------------------------------------------------------
  // ActorRef
  // ---------------------------------------------------------------------------

  tell(message: M): Effect.Effect<void, MailboxFull> {
    return Effect.suspend(() =>
      this.offer(message, false) === OFFER_FULL
        ? Effect.fail(new MailboxFull({ actor: this.label, capacity: this.capacity }))
        : Effect.void
    )
  }

  tellUrgent(message: M): Effect.Effect<void> {
    return Effect.sync(() => {
      this.offer(message, true)
    })
  }

  unsafeTell(message: M): boolean {
    return this.offer(message, false) === OFFER_OK
  }

  unsafeTellUrgent(message: M): boolean {
    return this.offer(message, true) === OFFER_OK
  }

  ask<A, E = never>(
    f: (reply: Reply<A, E>) => M,
    options?: AskOptions
  ): Effect.Effect<A, E | AskTimeout | ActorStopped | MailboxFull> {
    return Effect.withFiberRuntime<A, E | AskTimeout | ActorStopped | MailboxFull>((fiber, status) =>
      Effect.async((resume) => {
        if (this.status >= STOPPING) {
          resume(Exit.fail(this.stoppedError()))
          return
        }
        const timeoutMillis = options?.timeout === undefined
          ? defaultAskMillis
          : Duration.toMillis(options.timeout)
        const reply = new ReplyImpl<A, E>(
          this,
          resume,
          timeoutMillis,
          RuntimeFlags.interruptible(status.runtimeFlags) ? fiber : undefined
        )
        const offered = this.offer(f(reply), options?.urgent === true)
        if (offered !== OFFER_OK) {
          reply.resume = undefined
          resume(Exit.fail(
            offered === OFFER_FULL ? new MailboxFull({ actor: this.label, capacity: this.capacity }) : this.stoppedError()
          ))
          return
        }
        if (reply.resume === undefined) return
        reply.anext = this.asks
        if (this.asks !== undefined) this.asks.aprev = reply
        this.asks = reply
        this.system.deadlines.add(reply)
        // Without a deadline nothing would ever remove the reply of an interrupted asker.
        if (timeoutMillis === Infinity) return Effect.sync(() => reply.cancel())
      }))
  }

  isAlive(): boolean {
    return this.status < STOPPING
  }

  exitReason(): ExitReason.ExitReason | undefined {
    return this.reason
  }

  // ---------------------------------------------------------------------------
  // Mailbox
  // ---------------------------------------------------------------------------

  get capacity(): number {
    return this.options.mailbox?.capacity ?? Mailbox.defaultCapacity
  }

  get mailboxSize(): number {
    return (this.normal?.length ?? 0) + (this.urgent?.length ?? 0)
  }

  get suspended(): boolean {
    return (this.flags & SUSPENDED) !== 0
  }

  /** Puts mail in a lane; schedules the actor if it is idle. */
  offer(message: unknown, urgent: boolean): number {
    if (this.status >= STOPPING) {
      this.system.deadLetter(this, message, "stopped")
      return OFFER_STOPPED
    }
    if (urgent) {
      ;(this.urgent ??= new Deque()).push(message)
      if ((this.flags & SUSPENDED) === 0 && this.status === RUNNING && this.busy === undefined) {
        this.flags |= SCHEDULED
        this.system.dispatcher.scheduleUrgent(this)
        return OFFER_OK
      }
    } else {
      const lane = (this.normal ??= new Deque())
      if (lane.length >= this.capacity) {
        switch (this.options.mailbox?.overflow ?? Mailbox.defaultOverflow) {
          case "dropOldest":
            this.system.deadLetter(this, lane.shift(), "dropped")
            break
          case "dropNewest":
            this.system.deadLetter(this, message, "dropped")
            return OFFER_FULL
          case "fail":
            this.system.deadLetter(this, message, "mailbox full")
            return OFFER_FULL
        }
      }
      lane.push(message)
    }
    if ((this.flags & (SCHEDULED | SUSPENDED)) === 0 && this.status === RUNNING && this.busy === undefined) {
      this.flags |= SCHEDULED
      this.system.dispatcher.schedule(this)
    }
    return OFFER_OK
  }

  /** Called by the dispatcher: handles up to `budget` messages, urgent lane first. */
  run(budget: number): void {
    while (true) {
      if (this.status !== RUNNING || this.busy !== undefined || (this.flags & SUSPENDED) !== 0) break
      let message: unknown
      if (this.urgent !== undefined && this.urgent.length > 0) message = this.urgent.shift()
      else if (this.normal !== undefined && this.normal.length > 0) message = this.normal.shift()
      else break
      this.handle(message)
      if (--budget === 0) {
        if (this.status === RUNNING && this.busy === undefined && this.mailboxSize > 0) {
          this.system.dispatcher.schedule(this)
          return
        }
        break
      }
    }
    this.flags &= ~SCHEDULED
  }

  private handle(message: unknown): void {
    if (message instanceof Envelope) {
      message = message.open()
      if (message === skip) return
    }
    if (this.tracers !== undefined) for (const trace of this.tracers) trace(message)
    let step: unknown
    this.flags |= IN_HANDLER
    try {
      step = message instanceof Down || message instanceof ExitSignal
        ? this.behaviour.onSignal === undefined ? this.state : this.behaviour.onSignal(this.state, message, this)
        : this.behaviour.receive(this.state, message as M, this)
    } catch (error) {
      this.flags &= ~IN_HANDLER
      this.exit(ExitReason.die(error))
      return
    }
    this.flags &= ~IN_HANDLER
    this.settle(step, AFTER_RECEIVE)
  }

  private onSuccess(state: S, after: number): void {
    if (after === AFTER_INIT) return this.started(state)
    this.state = state
    if (this.pendingStop !== undefined) this.exit(this.pendingStop)
  }

  /**
   * Applies a handler's result: a plain value at once, a completed Effect at once,
   * anything else on a fiber while the actor is busy.
   */
  private settle(step: unknown, after: number): void {
    if (!Effect.isEffect(step)) return this.onSuccess(step as S, after)
    if (Exit.isExit(step)) {
      return Exit.isSuccess(step) ? this.onSuccess(step.value as S, after) : this.exit(ExitReason.failure(step.cause))
    }
    const fiber = this.system.fork(this.env, step)
    const done = fiber.unsafePoll()
    if (done !== null) return this.settleFiber(done, after)
    this.busy = fiber
    fiber.addObserver((exit) => {
      if (this.busy !== fiber) return
      this.busy = undefined
      this.settleFiber(exit, after)
      if (this.status === RUNNING && this.mailboxSize > 0 && (this.flags & (SCHEDULED | SUSPENDED)) === 0) {
        this.flags |= SCHEDULED
        if (this.urgent !== undefined && this.urgent.length > 0) this.system.dispatcher.scheduleUrgent(this)
        else this.system.dispatcher.schedule(this)
      }
    })
  }

  private settleFiber(exit: Exit.Exit<any, unknown>, after: number): void {
    if (Exit.isSuccess(exit)) return this.onSuccess(exit.value, after)
    const requested = this.pendingStop
    if (requested !== undefined && Cause.isInterruptedOnly(exit.cause)) {
      this.pendingStop = undefined
      return this.beginStop(requested)
    }
    this.pendingStop = undefined
    this.exit(ExitReason.failure(exit.cause))
  }

  // ---------------------------------------------------------------------------
  // Lifecycle
  // ---------------------------------------------------------------------------

  /** Runs `init`; the actor is RUNNING once it returns. */
  start(): void {
    const init = this.behaviour.init
    if (init === undefined) return this.started(undefined as S)
    let step: unknown
    try {
      step = init.call(this.behaviour, this)
    } catch (error) {
      return this.exit(ExitReason.die(error))
    }
    if (Effect.isEffect(step) && !Exit.isExit(step)) {
      step = Effect.provideService(step as Effect.Effect<S>, Scope.Scope, this.scope)
    }
    this.settle(step, AFTER_INIT)
  }

  private started(state: S): void {
    this.state = state
    this.status = RUNNING
    this.flags |= INITIALIZED
    const onStarted = this.onStarted
    this.onStarted = undefined
    onStarted?.(this)
    if (this.status !== RUNNING) return
    if (this.pendingStop !== undefined) return this.exit(this.pendingStop)
    if (this.mailboxSize > 0 && (this.flags & (SCHEDULED | SUSPENDED)) === 0) {
      this.flags |= SCHEDULED
      this.system.dispatcher.schedule(this)
    }
  }

  /**
   * Asks the actor to stop. Between messages it stops at once; during an Effect
   * handler a graceful reason waits for the handler to return, while a crash or
   * a linked exit interrupts it.
   */
  exit(reason: ExitReason.ExitReason): void {
    if (this.status >= STOPPING) return
    if (this.busy !== undefined) {
      if (this.pendingStop === undefined || reason._tag === "Failure" || reason._tag === "Killed") {
        this.pendingStop = reason
      }
      if (this.status === STARTING || (reason._tag !== "Normal" && reason._tag !== "Shutdown")) {
        this.busy.unsafeInterruptAsFork(this.system.fiberId)
      }
      return
    }
    this.beginStop(reason)
  }

  /** Stops children (youngest first), runs `terminate`, closes the scope, then exits. */
  private beginStop(reason: ExitReason.ExitReason): void {
    if (this.status >= STOPPING) return
    this.status = STOPPING
    this.pendingStop = undefined
    const terminate = (this.flags & INITIALIZED) !== 0 ? this.behaviour.terminate : undefined
    if (this.firstChild === undefined && this.scopeRef === undefined) {
      if (terminate === undefined) return this.completeExit(reason)
      let step: unknown
      try {
        step = terminate.call(this.behaviour, this.state, reason, this)
      } catch (error) {
        return this.completeExit(ExitReason.die(error))
      }
      if (!Effect.isEffect(step)) return this.completeExit(reason)
      if (Exit.isExit(step)) {
        return this.completeExit(Exit.isSuccess(step) ? reason : ExitReason.failure(step.cause))
      }
    }
    const fiber = this.system.fork(this.env, this.stopSequence(reason, terminate))
    const done = fiber.unsafePoll()
    if (done !== null) return this.completeExit(Exit.isSuccess(done) ? done.value : ExitReason.failure(done.cause))
    this.busy = fiber
    fiber.addObserver((exit) => {
      if (this.busy !== fiber || this.status === STOPPED) return
      this.busy = undefined
      this.completeExit(Exit.isSuccess(exit) ? exit.value : ExitReason.failure(exit.cause))
    })
  }

  private stopSequence(
    reason: ExitReason.ExitReason,
    terminate: Behaviour<M, S, any>["terminate"]
  ): Effect.Effect<ExitReason.ExitReason, never, any> {
    return Effect.suspend(() => {
      let final = reason
      const children: Array<Effect.Effect<void>> = []
      for (let child = this.lastChild; child !== undefined; child = child.prevSibling) {
        const c = child
        children.push(Effect.suspend(() => this.system.stopAndAwait(c, ExitReason.shutdown())))
      }
      const runTerminate = terminate === undefined
        ? Effect.void
        : Effect.suspend(() => {
          const step = terminate.call(this.behaviour, this.state, reason, this)
          return Effect.isEffect(step) ? step : Effect.void
        }).pipe(
          Effect.catchAllCause((cause) => Effect.sync(() => void (final = ExitReason.failure(cause))))
        )
      const closeScope = Effect.suspend(() =>
        this.scopeRef === undefined ? Effect.void : Scope.close(this.scopeRef, Exit.void)
      )
      return Effect.all([...children, runTerminate, closeScope], { discard: true }).pipe(
        Effect.zipRight(Effect.sync(() => final))
      )
    })
  }

  /** Stops at once, children first, without `terminate`; resources in the scope are still released. */
  kill(): void {
    if (this.status === STOPPED) return
    this.status = STOPPING
    for (let child = this.lastChild; child !== undefined; child = this.lastChild) child.kill()
    const busy = this.busy
    this.busy = undefined
    busy?.unsafeInterruptAsFork(this.system.fiberId)
    if (this.scopeRef !== undefined) {
      this.system.fork(this.system.rootEnv, Scope.close(this.scopeRef, Exit.interrupt(this.system.fiberId)))
    }
    this.completeExit(ExitReason.killed)
  }

  /** The exit itself: from now on the actor is gone and everyone who cares is told. */
  private completeExit(reason: ExitReason.ExitReason): void {
    this.status = STOPPED
    this.reason = reason
    this.busy = undefined
    const parent = this.parentCell
    parent?.removeChild(this)
    this.system.unregister(this, reason)

    const onStarted = this.onStarted
    this.onStarted = undefined
    onStarted?.(this)

    this.urgent?.drain((message) => this.system.deadLetter(this, message, "stopped"))
    this.normal?.drain((message) => this.system.deadLetter(this, message, "stopped"))
    this.urgent = this.normal = undefined
    this.tracers = undefined
    this.state = undefined as S

    for (let ask = this.asks; ask !== undefined; ask = this.asks) {
      const resume = ask.resume
      ask.cancel()
      resume?.(Exit.fail(this.stoppedError()))
    }

    if (this.holding !== undefined) {
      for (const watch of this.holding.values()) watch.target?.removeWatch(watch)
      this.holding = undefined
    }
    // Oldest first: the list holds the newest first.
    let oldest = this.watchers
    this.watchers = undefined
    while (oldest?.wnext !== undefined) oldest = oldest.wnext
    for (let watch = oldest; watch !== undefined;) {
      watch.target = undefined
      watch.exited(this, reason)
      // Read after the call, which may have removed watches not told yet.
      const newer: Watch | undefined = watch.wprev
      watch.wprev = watch.wnext = undefined
      watch = newer
    }
    const links = this.links
    this.links = undefined
    if (links !== undefined) {
      for (const other of links) {
        other.links?.delete(this)
        other.onLinkedExit(this, reason)
      }
    }
    parent?.onLinkedExit(this, reason)
  }

  /** A linked actor (or a child) exited: trap it as a signal, or die with it. */
  onLinkedExit(from: ActorCell, reason: ExitReason.ExitReason): void {
    if (this.status >= STOPPING) return
    if ((this.flags & TRAP_EXITS) !== 0) this.offer(new ExitSignal(from, reason), true)
    else if (ExitReason.propagatesOverLinks(reason)) this.exit(reason)
  }

  /** Adds a watcher; if the actor is already gone it is told at once. */
  addWatch(watch: Watch): void {
    if (this.status === STOPPED) return watch.exited(this, this.reason as ExitReason.ExitReason)
    watch.target = this
    watch.wnext = this.watchers
    if (this.watchers !== undefined) this.watchers.wprev = watch
    this.watchers = watch
  }

  /** Removes a watch that has not been told yet. */
  removeWatch(watch: Watch): void {
    if (watch.target !== this) return
    if (this.watchers === watch) this.watchers = watch.wnext
    if (watch.wprev !== undefined) watch.wprev.wnext = watch.wnext
    if (watch.wnext !== undefined) watch.wnext.wprev = watch.wprev
    watch.target = watch.wprev = watch.wnext = undefined
  }

  /** Calls `f` once when the actor exits (at once if it has); returns the cancel function. */
  onExit(f: (reason: ExitReason.ExitReason) => void): () => void {
    const watch = new Callback(f)
    this.addWatch(watch)
    return () => this.removeWatch(watch)
  }

  /** Waits for the exit reason. */
  get awaitExit(): Effect.Effect<ExitReason.ExitReason> {
    return Effect.async<ExitReason.ExitReason>((resume) => {
      const cancel = this.onExit((reason) => resume(Exit.succeed(reason)))
      return Effect.sync(cancel)
    })
  }

  unlinkAsk(reply: ReplyImpl<any, any>): void {
    if (reply.aprev === undefined) {
      if (this.asks === reply) this.asks = reply.anext
    } else reply.aprev.anext = reply.anext
    if (reply.anext !== undefined) reply.anext.aprev = reply.aprev
    reply.aprev = reply.anext = undefined
  }

  stoppedError(): ActorStopped {
    return new ActorStopped({ actor: this.label, reason: this.reason })
  }

  // ---------------------------------------------------------------------------
  // Tree
  // ---------------------------------------------------------------------------

  addChild(child: ActorCell): void {
    child.prevSibling = this.lastChild
    if (this.lastChild === undefined) this.firstChild = child
    else this.lastChild.nextSibling = child
    this.lastChild = child
    this.childCount++
  }

  removeChild(child: ActorCell): void {
    if (child.prevSibling === undefined) {
      if (this.firstChild !== child) return
      this.firstChild = child.nextSibling
    } else child.prevSibling.nextSibling = child.nextSibling
    if (child.nextSibling === undefined) this.lastChild = child.prevSibling
    else child.nextSibling.prevSibling = child.prevSibling
    child.prevSibling = child.nextSibling = undefined
    this.childCount--
  }

  /** The shutdown policy: the spawn's, else the behaviour's, else 5 seconds. */
  get shutdownPolicy(): ShutdownPolicy {
    return this.options.shutdown ?? this.behaviour.shutdown ?? defaultShutdownMillis
  }

  suspend(): void {
    this.flags |= SUSPENDED
  }

  resume(): void {
    this.flags &= ~SUSPENDED
    if (this.status === RUNNING && this.busy === undefined && this.mailboxSize > 0 && (this.flags & SCHEDULED) === 0) {
      this.flags |= SCHEDULED
      this.system.dispatcher.schedule(this)
    }
  }

  /** The error of a spawn that did not reach RUNNING. */
  initError(): InitFailed {
    return new InitFailed({ actor: this.label, reason: this.reason ?? ExitReason.killed })
  }

}

Object.defineProperty(ActorCell.prototype, TypeId, { value: variance })

/** `offer` results. */
export const OFFER_OK = 0
export const OFFER_FULL = 1
export const OFFER_STOPPED = 2
