/**
 * The shared pixel board, as an actor.
 *
 * The actor keeps the whole board in memory (one palette index per byte), loaded from the
 * `CanvasStore` when it starts, and each user's last placement for the cooldown. A placement is
 * checked at once (bounds, colour, cooldown) and queued; every tick (30 Hz by default) the
 * queued pixels are committed in one transaction, and only then are their placers answered,
 * the board updated, and one `Updates` frame broadcast on the canvas topic of the PubSub hub.
 * So an acknowledged pixel survives `kill -9`, and a tick's pixels cost one write and one
 * encoding however many clients watch.
 *
 * A subscriber is a `PubSub` sink owned by an actor (the session that owns the socket): joining
 * delivers the snapshot to the sink and subscribes it in the same step of the actor, so no update
 * falls between them. The sink's backlog is bounded by `clientBacklog` beyond one snapshot; a
 * subscriber over it is stopped (`disconnect`) or skips frames (`dropping`), as configured.
 *
 * The hub outlives the actor: when the actor restarts it reloads the committed board, and the
 * subscribers keep receiving from the new incarnation without a gap (a tick's frame is only
 * broadcast after its commit, so the reloaded board already holds every frame sent).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Actor from "../../actors/Actor.js"
import { ActorStopped, AskTimeout, MailboxFull } from "../../actors/ActorError.js"
import type { ActorRef, Reply } from "../../actors/ActorRef.js"
import { ActorSystem } from "../../actors/ActorSystem.js"
import type { ExitReason } from "../../actors/ExitReason.js"
import * as PubSub from "../../actors/PubSub.js"
import {
  Cooldown,
  InvalidColor,
  OutOfBounds,
  packPixels,
  type Placed,
  Snapshot,
  Unavailable,
  Updates
} from "../../protocol/CanvasRpcs.js"
import * as Backoff from "../../supervisors/Backoff.js"
import * as ChildSpec from "../../supervisors/ChildSpec.js"
import * as Supervisor from "../../supervisors/Supervisor.js"
import { CanvasStore, type Pixel as StoredPixel } from "../../store/CanvasStore.js"
import { CanvasConfig, type CanvasSettings } from "./CanvasConfig.js"
import { CanvasFrame } from "./CanvasFrame.js"

/** Why a placement was refused. */
export type PlaceError = Cooldown | OutOfBounds | InvalidColor | Unavailable

/** The mail of the canvas actor. */
export type CanvasMessage =
  | {
    readonly _tag: "Place"
    readonly user: string
    readonly x: number
    readonly y: number
    readonly color: number
    readonly reply: Reply<Placed, PlaceError>
  }
  | { readonly _tag: "Flush" }
  | {
    readonly _tag: "Join"
    readonly owner: ActorRef<never>
    readonly sink: PubSub.Sink
    readonly reply: Reply<PubSub.Subscription>
  }
  | { readonly _tag: "Snapshot"; readonly reply: Reply<CanvasFrame> }

/** The PubSub topic of the board's frames. */
export const topic = "canvas"

/** A placement waiting for its tick's commit. */
interface Pending {
  readonly pixel: StoredPixel
  /** The user's previous placement, restored if the commit fails. */
  readonly previous: number | undefined
  readonly reply: Reply<Placed, PlaceError>
}

interface State {
  readonly board: Uint8Array
  /** The committed board's sequence number: pixels placed since the board was created. */
  seq: number
  /** User → epoch ms of their last accepted placement (committed or pending). */
  readonly lastPlaced: Map<string, number>
  pending: Array<Pending>
  flushArmed: boolean
  snapshot: CanvasFrame | undefined
  /** `lastPlaced.size` after its last pruning. */
  prunedSize: number
}

/** Forgets the users whose cooldown is over, so the map holds recent users only. */
const forgetCooledDown = (state: State, clock: Clock.Clock, cooldownMs: number): void => {
  const now = clock.unsafeCurrentTimeMillis()
  for (const [user, at] of state.lastPlaced) if (at + cooldownMs <= now) state.lastPlaced.delete(user)
  state.prunedSize = state.lastPlaced.size
}

/** What the canvas actor works with. */
interface Environment {
  readonly settings: CanvasSettings
  readonly store: CanvasStore["Type"]
  readonly hub: PubSub.PubSub
  /** The clock of the layer's fiber (the `TestClock` in tests). */
  readonly clock: Clock.Clock
  /** Told the running incarnation when it starts. */
  readonly started: (ref: ActorRef<CanvasMessage>) => void
}

const commit = (env: Environment, state: State, batch: ReadonlyArray<Pending>, cooldownMs: number) =>
  env.store.placeBatch(batch.map((p) => p.pixel)).pipe(
    Effect.matchEffect({
      onFailure: (error) => {
        for (const { pixel, previous, reply } of batch) {
          if (state.lastPlaced.get(pixel.user) === pixel.at) {
            if (previous === undefined) state.lastPlaced.delete(pixel.user)
            else state.lastPlaced.set(pixel.user, previous)
          }
          reply.fail(new Unavailable({ reason: `the board cannot be saved (${error.reason})` }))
        }
        return Effect.succeed(state)
      },
      onSuccess: (version) => {
        const { width } = env.settings
        const first = version - batch.length
        batch.forEach(({ pixel, reply }, i) => {
          state.board[pixel.y * width + pixel.x] = pixel.color
          reply.succeed({ seq: first + i + 1, cooldownUntil: DateTime.unsafeMake(pixel.at + cooldownMs) })
        })
        state.seq = version
        state.snapshot = undefined
        const pixels = packPixels(batch.map((p) => p.pixel))
        return Effect.as(PubSub.broadcast(env.hub, topic, new CanvasFrame(Updates.make({ seq: version, pixels }))), state)
      }
    })
  )

const snapshotOf = (env: Environment, state: State): CanvasFrame =>
  state.snapshot ??= new CanvasFrame(Snapshot.make({
    width: env.settings.width,
    height: env.settings.height,
    palette: env.settings.palette,
    pixels: state.board.slice(),
    seq: state.seq
  }))

/** The behaviour of the canvas actor over its environment. */
const behaviour = (env: Environment): Actor.Behaviour<CanvasMessage, State> => {
  const { height, palette, width } = env.settings
  const cooldownMs = Duration.toMillis(env.settings.cooldown)
  const tick = env.settings.tick
  // Subscribers may hold one snapshot (base64 on the JSON wire) and `clientBacklog` more.
  const bufferSize = Math.ceil((width * height * 4) / 3) + 4096 + env.settings.clientBacklog
  return Actor.make<CanvasMessage, State>({
    name: "canvas",
    init: (ctx) =>
      Effect.gen(function*() {
        const stored = yield* Effect.orDie(env.store.load)
        if (stored.width !== width || stored.height !== height || stored.palette < palette.length) {
          return yield* Effect.dieMessage(
            `the stored board is ${stored.width}×${stored.height} with ${stored.palette} colours; ` +
              `the canvas is configured ${width}×${height} with ${palette.length}: open the store with CanvasConfig.storeOptions`
          )
        }
        const now = env.clock.unsafeCurrentTimeMillis()
        const lastPlaced = new Map(yield* Effect.orDie(env.store.cooldowns(now - cooldownMs)))
        env.started(ctx.self)
        return {
          board: stored.pixels,
          seq: stored.version,
          lastPlaced,
          pending: [],
          flushArmed: false,
          snapshot: undefined,
          prunedSize: lastPlaced.size
        } satisfies State
      }),
    receive: (state, message, ctx) => {
      switch (message._tag) {
        case "Place": {
          const { color, reply, user, x, y } = message
          if (!Number.isInteger(x) || !Number.isInteger(y) || x < 0 || y < 0 || x >= width || y >= height) {
            reply.fail(new OutOfBounds())
            return state
          }
          if (!Number.isInteger(color) || color < 0 || color >= palette.length) {
            reply.fail(new InvalidColor())
            return state
          }
          const now = env.clock.unsafeCurrentTimeMillis()
          const previous = state.lastPlaced.get(user)
          if (previous !== undefined && now < previous + cooldownMs) {
            reply.fail(new Cooldown({ retryAfterMs: previous + cooldownMs - now }))
            return state
          }
          state.lastPlaced.set(user, now)
          state.pending.push({ pixel: { x, y, color, user, at: now }, previous, reply })
          if (state.flushArmed) return state
          state.flushArmed = true
          return Effect.sleep(tick).pipe(
            // The urgent lane is never refused: a full mailbox cannot lose the tick.
            Effect.zipRight(Effect.sync(() => ctx.self.unsafeTellUrgent({ _tag: "Flush" }))),
            Effect.forkIn(ctx.scope),
            Effect.as(state)
          )
        }
        case "Flush": {
          const batch = state.pending
          state.pending = []
          state.flushArmed = false
          if (state.lastPlaced.size > state.prunedSize * 2 + 1024) forgetCooledDown(state, env.clock, cooldownMs)
          return batch.length === 0 ? state : commit(env, state, batch, cooldownMs)
        }
        case "Join": {
          if (!message.reply.isPending()) return state
          message.sink.deliver(snapshotOf(env, state))
          const overflow = env.settings.slowClient
          message.reply.succeed(
            Effect.runSync(PubSub.subscribeSink(env.hub, topic, message.owner, message.sink, { bufferSize, overflow }))
          )
          return state
        }
        case "Snapshot":
          message.reply.succeed(snapshotOf(env, state))
          return state
      }
    },
    // A graceful stop commits what was queued, so no accepted placement goes unanswered.
    terminate: (state) => {
      const batch = state.pending
      state.pending = []
      return batch.length === 0 ? Effect.void : commit(env, state, batch, cooldownMs)
    }
  })
}

/** A live subscription to the board, made by `join`. */
export interface Membership {
  readonly subscription: PubSub.Subscription
  /** Waits until the subscription's owner exits (a slow client stopped by `disconnect`, a closed session). */
  readonly ended: Effect.Effect<ExitReason>
}

/** The canvas as a service. */
export class Canvas extends Context.Tag("fleetvisor/apps/canvas/Canvas")<Canvas, {
  readonly settings: CanvasSettings
  /** The hub the board's frames are broadcast on, under `topic`. */
  readonly hub: PubSub.PubSub
  /** The child spec of the canvas actor, for a supervisor (`layerUnstarted`). */
  readonly child: ChildSpec.ChildSpec<CanvasMessage>
  /** The running canvas actor, if any. */
  readonly actor: Effect.Effect<ActorRef<CanvasMessage>, Unavailable>
  /** Places a pixel for `user`; succeeds once the pixel is committed. */
  readonly place: (user: string, x: number, y: number, color: number) => Effect.Effect<Placed, PlaceError>
  /** The board now, as a snapshot frame (shared by every caller until the board changes). */
  readonly snapshot: Effect.Effect<CanvasFrame, Unavailable>
  /**
   * Subscribes `sink`: it gets the snapshot frame first, then each tick's frame, until the scope
   * closes or `owner` exits. Without an `owner`, an actor is spawned to own it for the scope.
   */
  readonly join: (
    sink: PubSub.Sink,
    owner?: ActorRef<never> | undefined
  ) => Effect.Effect<Membership, Unavailable, Scope.Scope>
}>() {}

const askTimeout = Duration.seconds(10)

/** An actor that only owns subscriptions. */
const viewer = Actor.make<never, void>({ name: "canvas-viewer", receive: () => undefined })

const make = Effect.gen(function*() {
  const settings = yield* CanvasConfig
  const store = yield* CanvasStore
  const system = yield* ActorSystem
  const clock = yield* Effect.clock
  const hub = yield* PubSub.make({ nodeId: "canvas" })
  let current: ActorRef<CanvasMessage> | undefined
  const child = ChildSpec.make("canvas", behaviour({ settings, store, hub, clock, started: (ref) => (current = ref) }), {
    shutdown: "10 seconds"
  })

  const actor = Effect.suspend(() =>
    current !== undefined && current.isAlive()
      ? Effect.succeed(current)
      : Effect.fail(new Unavailable({ reason: "the canvas is not running (starting or restarting)" }))
  )

  const ask = <A, E>(f: (reply: Reply<A, E>) => CanvasMessage): Effect.Effect<A, E | Unavailable> =>
    Effect.flatMap(actor, (ref) =>
      ref.ask(f, { timeout: askTimeout }).pipe(
        Effect.mapError((error) =>
          error instanceof AskTimeout
            ? new Unavailable({ reason: "the canvas did not answer in time" })
            : error instanceof ActorStopped
            ? new Unavailable({ reason: "the canvas stopped" })
            : error instanceof MailboxFull
            ? new Unavailable({ reason: "the canvas is overloaded" })
            : error
        )
      ))

  return Canvas.of({
    settings,
    hub,
    child,
    actor,
    place: (user, x, y, color) => ask<Placed, PlaceError>((reply) => ({ _tag: "Place", user, x, y, color, reply })),
    snapshot: ask<CanvasFrame, never>((reply) => ({ _tag: "Snapshot", reply })),
    join: (sink, owner) =>
      Effect.gen(function*() {
        const holder = owner ?? (yield* Effect.acquireRelease(
          Effect.orDie(system.spawn(viewer, { name: "canvas-viewer" })),
          (ref) => system.stop(ref)
        ))
        const subscription = yield* Effect.acquireRelease(
          ask<PubSub.Subscription, never>((reply) => ({ _tag: "Join", owner: holder, sink, reply })),
          (subscription) => subscription.unsubscribe
        )
        return { subscription, ended: system.awaitExit(holder) } satisfies Membership
      })
  })
})

/**
 * The canvas service; the caller starts `canvas.child` under its own supervisor (the node's
 * root). Until that actor runs, calls fail with `Unavailable`.
 */
export const layerUnstarted: Layer.Layer<Canvas, never, CanvasConfig | CanvasStore | ActorSystem> = Layer.scoped(
  Canvas,
  make
)

/**
 * The canvas service with its actor running under a supervisor of its own, `canvas-supervisor`
 * (one_for_one, at most 5 restarts in 10 s, 100 ms to 5 s backoff).
 */
export const layer: Layer.Layer<Canvas, never, CanvasConfig | CanvasStore | ActorSystem> = Layer.scoped(
  Canvas,
  Effect.gen(function*() {
    const canvas = yield* make
    const system = yield* ActorSystem
    const supervisor = yield* Effect.orDie(system.spawn(
      Supervisor.make({
        strategy: "one_for_one",
        maxRestarts: 5,
        period: "10 seconds",
        backoff: Backoff.exponential({ min: "100 millis", max: "5 seconds" }),
        children: [canvas.child]
      }),
      { name: "canvas-supervisor" }
    ))
    yield* Effect.addFinalizer(() => system.stop(supervisor))
    return canvas
  })
)
