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
 * **Several nodes** (a {@link CanvasCluster}): the board is one, written by the node that holds its
 * lease (the owner) and replicated on every other. A placement on another node (an entry node)
 * is checked there (bounds, colour: refused and counted, never sent on; the cooldown as far as the
 * entry node knows it) and forwarded on the backplane (`BoardMessages.PlacementsTopic`); the
 * owner applies the canvas's rules, commits it with its tick and answers the entry node in the
 * tick it broadcasts (`BoardMessages.Tick`), so the painter hears `Placed` only once the owner
 * committed the pixel, and `Unavailable` if no answer came within {@link forwardTimeout} (the
 * pixel may then be placed or not). Every node applies the owner's ticks to its own board and
 * SQLite file (its replica) and relays them to its subscribers as they arrive; a tick that does not
 * follow its board asks for the owner's whole board (`BoardMessages.Whole`). Frames of an owner
 * older than the newest heard (by fencing token) are dropped. A node given the board announces a
 * `Claim`, waits {@link takeoverWait} for a replica ahead of its own (it adopts the best), then sends
 * its board whole and starts writing. The owner writes only while its claim holds by its own
 * deadline (`CanvasCluster.owns`).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
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
  unpackPixels,
  Updates
} from "../../protocol/CanvasRpcs.js"
import * as Backoff from "../../supervisors/Backoff.js"
import * as ChildSpec from "../../supervisors/ChildSpec.js"
import * as Supervisor from "../../supervisors/Supervisor.js"
import { CanvasStore, type Pixel as StoredPixel } from "../../store/CanvasStore.js"
import * as BoardMessages from "./BoardMessages.js"
import { type BoardToken, CanvasCluster, compareTokens } from "./CanvasCluster.js"
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
  /** Another node's placement, for the board's owner. */
  | { readonly _tag: "Forwarded"; readonly forward: BoardMessages.Forward }
  /** What the nodes say on the board's topic. */
  | { readonly _tag: "Board"; readonly message: BoardMessages.BoardMessage }
  /** Bytes on a shared topic that are not one of the canvas's messages. */
  | { readonly _tag: "Malformed" }
  /** This node was given the board (`true`) or lost it. */
  | { readonly _tag: "Owner"; readonly owned: boolean }
  /** A forwarded placement the owner did not answer in time. */
  | { readonly _tag: "ForwardTimeout"; readonly id: number }
  /** A resync asked for the whole board. */
  | { readonly _tag: "Resend" }
  /** The wait for replicas ahead of this node's board is over. */
  | { readonly _tag: "TakeoverDone"; readonly token: BoardToken }
  /** Time to ask again for the owner's whole board, if none came since this node started. */
  | { readonly _tag: "AskWhole" }

/** The PubSub topic of the board's frames (on this node; with several nodes the owner's cross on `BoardMessages.BoardTopic`). */
export const topic = "canvas"

/** How long an entry node waits for the owner's answer to a forwarded placement. */
export const forwardTimeout = Duration.seconds(3)

/** How long a node given the board waits for replicas ahead of its own before it writes. */
export const takeoverWait = Duration.millis(500)

/** When a node that started asks again for the owner's whole board, if none came (after each wait, in turn). */
const askAgain = [Duration.seconds(1), Duration.seconds(3), Duration.seconds(5)]

/** Who is told a placement's outcome: the local placer, or the entry node of a forwarded one. */
interface Answerer {
  readonly succeed: (placed: Placed) => void
  readonly fail: (error: PlaceError) => void
}

/** A placement waiting for its tick's commit. */
interface Pending {
  readonly pixel: StoredPixel
  /** The user's previous placement, restored if the commit fails. */
  readonly previous: number | undefined
  readonly reply: Answerer
  /** Forwarded by another node: every node acting as the owner heard it, so only a commit answers it. */
  readonly remote: boolean
}

/** A placement this node forwarded to the owner, waiting for its answer. */
interface Forwarded {
  readonly user: string
  readonly at: number
  readonly previous: number | undefined
  readonly reply: Reply<Placed, PlaceError>
}

/** This node's part when several nodes serve the board. */
interface ClusterState {
  /** The newest owner's token heard (or this node's own): older owners' frames are fenced off. */
  newest: BoardToken | undefined
  /** While this node holds the board: its token, its subscription to forwarded placements, and its takeover. */
  owner: {
    readonly token: BoardToken
    readonly placements: PubSub.Subscription
    /** False during the takeover wait: placements queue, nothing is written. */
    ready: boolean
    /** The best replica ahead of this node's board heard during the takeover. */
    best: BoardMessages.Replica | undefined
  } | undefined
  readonly forwarded: Map<number, Forwarded>
  nextId: number
  /** The owner's answers to forwarded placements, sent with the next tick. */
  answers: Array<BoardMessages.Answer>
  /** Since when (epoch ms) this node, acting as the owner, has found its claim over by its deadline. */
  unsureSince: number | undefined
  /** Whether an owner's whole board reached this node since it started (or it took the board over). */
  caughtUp: boolean
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
  readonly cluster: ClusterState | undefined
}

/** The canvas's counters, kept across restarts of its actor. */
export interface CanvasStats {
  /** Placements refused by this node's own checks of bounds and colour (bad input, never forwarded). */
  refusedAtEntry: number
  /** Placements refused on this node for the user's cooldown before any forwarding. */
  cooldownAtEntry: number
  /** Placements this node forwarded to the board's owner. */
  forwarded: number
  /** Forwarded placements the owner answered. */
  forwardAnswered: number
  /** Forwarded placements the owner did not answer within `forwardTimeout`. */
  forwardTimeouts: number
  /** Other nodes' placements this node received as the owner. */
  forwardsReceived: number
  /** Other nodes' placements received while this node did not hold the board (left unanswered). */
  forwardsIgnored: number
  /** The owner's ticks applied to this node's board and relayed to its subscribers. */
  relayedTicks: number
  /** Ticks that did not follow this node's board: a whole board was asked for. */
  gaps: number
  /** Whole boards taken from another node (the owner's on a resync, a replica ahead at a takeover). */
  adopted: number
  /** Frames of an owner older than the newest heard, dropped. */
  fenced: number
  /** Writes of the replica to this node's SQLite that failed. */
  replicaErrors: number
  /** Times this node was given the board. */
  takeovers: number
  /** Messages on the canvas's shared topics that were not the canvas's. */
  malformed: number
}

const newStats = (): CanvasStats => ({
  refusedAtEntry: 0,
  cooldownAtEntry: 0,
  forwarded: 0,
  forwardAnswered: 0,
  forwardTimeouts: 0,
  forwardsReceived: 0,
  forwardsIgnored: 0,
  relayedTicks: 0,
  gaps: 0,
  adopted: 0,
  fenced: 0,
  replicaErrors: 0,
  takeovers: 0,
  malformed: 0
})

/** A random first number for this incarnation's forwarded placements, so that a late answer to a previous one matches none. */
const firstId = () => 1 + Math.floor(Math.random() * 2 ** 40)

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
  /** The board's lease and backplane, when several nodes serve it. */
  readonly cluster: CanvasCluster | undefined
  readonly stats: CanvasStats
}

/** Sends the owner's answers that wait, in a tick without pixels. */
const sendAnswers = (env: Environment, state: State, self: ActorRef<never>) => {
  const cluster = state.cluster
  if (cluster === undefined || cluster.answers.length === 0) return Effect.void
  const answers = cluster.answers
  cluster.answers = []
  const token = cluster.owner?.token ?? cluster.newest ?? { epoch: 0, counter: 0 }
  const tick: BoardMessages.Tick = { _tag: "Tick", token, seq: state.seq, pixels: new Uint8Array(0), users: [], ats: [], answers }
  return PubSub.broadcastFrom(env.hub, self, BoardMessages.BoardTopic, tick)
}

const commit = (
  env: Environment,
  state: State,
  batch: ReadonlyArray<Pending>,
  cooldownMs: number,
  self: ActorRef<never>
) =>
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
        return Effect.as(sendAnswers(env, state, self), state)
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
        const local = PubSub.broadcast(env.hub, topic, new CanvasFrame(Updates.make({ seq: version, pixels })))
        const cluster = state.cluster
        if (cluster?.owner === undefined) return Effect.as(local, state)
        const answers = cluster.answers
        cluster.answers = []
        const tick: BoardMessages.Tick = {
          _tag: "Tick",
          token: cluster.owner.token,
          seq: version,
          pixels,
          users: batch.map((p) => p.pixel.user),
          ats: batch.map((p) => p.pixel.at),
          answers
        }
        return Effect.as(Effect.zipRight(local, PubSub.broadcastFrom(env.hub, self, BoardMessages.BoardTopic, tick)), state)
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

/** The answer for the entry node of a forwarded placement, sent with the owner's next tick. */
const remoteAnswerer = (cluster: ClusterState, node: string, id: number): Answerer => ({
  succeed: (placed) =>
    void cluster.answers.push({ node, id, ok: true, seq: placed.seq, until: DateTime.toEpochMillis(placed.cooldownUntil) }),
  fail: (error) =>
    void cluster.answers.push({
      node,
      id,
      ok: false,
      error: error._tag,
      retryAfterMs: error._tag === "Cooldown" ? error.retryAfterMs : undefined,
      reason: error._tag === "Unavailable" ? error.reason : undefined
    })
})

/** The error an entry node's placer gets for the owner's refusal. */
const errorOf = (answer: Extract<BoardMessages.Answer, { ok: false }>): PlaceError => {
  switch (answer.error) {
    case "Cooldown":
      return new Cooldown({ retryAfterMs: Math.max(0, answer.retryAfterMs ?? 0) })
    case "OutOfBounds":
      return new OutOfBounds()
    case "InvalidColor":
      return new InvalidColor()
    default:
      return new Unavailable({ reason: answer.reason ?? "the board's owner refused the pixel" })
  }
}

/** The behaviour of the canvas actor over its environment. */
const behaviour = (env: Environment): Actor.Behaviour<CanvasMessage, State> => {
  const { height, palette, width } = env.settings
  const cooldownMs = Duration.toMillis(env.settings.cooldown)
  const tick = env.settings.tick
  const stats = env.stats
  // Subscribers may hold one snapshot (base64 on the JSON wire) and `clientBacklog` more.
  const bufferSize = Math.ceil((width * height * 4) / 3) + 4096 + env.settings.clientBacklog
  const inBounds = (x: number, y: number) =>
    Number.isInteger(x) && Number.isInteger(y) && x >= 0 && y >= 0 && x < width && y < height
  const validColor = (color: number) => Number.isInteger(color) && color >= 0 && color < palette.length

  /** The users whose cooldown still runs, with their last placement, as sent with a whole board. */
  const cooldownsOf = (state: State): Array<readonly [string, number]> => {
    const now = env.clock.unsafeCurrentTimeMillis()
    return [...state.lastPlaced].filter(([, at]) => at + cooldownMs > now)
  }

  /** Arms the tick that commits what is queued (and sends the owner's answers). */
  const armFlush = (state: State, ctx: Actor.ActorContext<CanvasMessage>) => {
    if (state.flushArmed) return Effect.succeed(state)
    state.flushArmed = true
    return Effect.sleep(tick).pipe(
      // The urgent lane is never refused: a full mailbox cannot lose the tick.
      Effect.zipRight(Effect.sync(() => ctx.self.unsafeTellUrgent({ _tag: "Flush" }))),
      Effect.forkIn(ctx.scope),
      Effect.as(state)
    )
  }

  /** Restores a user's cooldown as it was before a placement that did not happen. */
  const giveBack = (state: State, user: string, at: number, previous: number | undefined) => {
    if (state.lastPlaced.get(user) !== at) return
    if (previous === undefined) state.lastPlaced.delete(user)
    else state.lastPlaced.set(user, previous)
  }

  /** Takes a whole board another node sent: into memory, to local subscribers, into SQLite. */
  const adopt = (state: State, pixels: Uint8Array, seq: number, cooldowns: ReadonlyArray<readonly [string, number]>) => {
    if (pixels.length !== width * height) {
      stats.malformed++
      return Effect.succeed(state)
    }
    for (const [user, at] of cooldowns) if (at > (state.lastPlaced.get(user) ?? -Infinity)) state.lastPlaced.set(user, at)
    if (seq === state.seq && Buffer.compare(pixels, state.board) === 0) return Effect.succeed(state)
    stats.adopted++
    state.board.set(pixels)
    state.seq = seq
    state.snapshot = undefined
    return PubSub.broadcast(env.hub, topic, snapshotOf(env, state)).pipe(
      Effect.zipRight(env.store.replace({ pixels: state.board, version: seq, cooldowns: cooldownsOf(state) })),
      Effect.catchAll((error) =>
        Effect.zipRight(
          Effect.sync(() => void stats.replicaErrors++),
          Effect.logWarning(`canvas: the replica of the board cannot be saved (${error.reason})`)
        )
      ),
      Effect.as(state)
    )
  }

  /** Stops acting as the owner: no more forwarded placements, and what was queued is refused. */
  const resign = (state: State, self: ActorRef<never>) => {
    const cluster = state.cluster
    if (cluster?.owner === undefined) return Effect.void
    const placements = cluster.owner.placements
    cluster.owner = undefined
    const batch = state.pending
    state.pending = []
    for (const { pixel, previous, remote, reply } of batch) {
      giveBack(state, pixel.user, pixel.at, previous)
      // A forwarded placement was heard by the new owner too, which may commit it: this node says
      // nothing, and the entry node hears the new owner (or tells its painter the outcome is unknown).
      if (!remote) reply.fail(new Unavailable({ reason: "the board moved to another node: place the pixel again" }))
    }
    return placements.unsubscribe.pipe(
      Effect.zipRight(sendAnswers(env, state, self)),
      Effect.zipRight(Effect.logInfo("canvas: this node no longer holds the board"))
    )
  }

  /** What this node is for the board now: alone, its owner, its owner still taking it over, or an entry node. */
  const roleOf = (state: State): "alone" | "owner" | "claiming" | "entry" => {
    const cluster = state.cluster
    if (cluster === undefined) return "alone"
    if (cluster.owner === undefined) return "entry"
    return cluster.owner.ready ? "owner" : "claiming"
  }

  /**
   * Whether the owner may write now: its claim holds by its own deadline (`yes`), has lapsed
   * for a moment, a renewal being late (`wait`: nothing is written meanwhile), or has stayed
   * lapsed for `forwardTimeout` without word of a loss (`gone`).
   */
  const holding = (state: State): "yes" | "wait" | "gone" => {
    const cluster = state.cluster!
    if (env.cluster!.owns()) {
      cluster.unsureSince = undefined
      return "yes"
    }
    const now = env.clock.unsafeCurrentTimeMillis()
    cluster.unsureSince ??= now
    return now - cluster.unsureSince > Duration.toMillis(forwardTimeout) ? "gone" : "wait"
  }

  /** Queues a placement on this node's board: checks the cooldown and arms the tick. */
  const queue = (
    state: State,
    ctx: Actor.ActorContext<CanvasMessage>,
    placement: { readonly user: string; readonly x: number; readonly y: number; readonly color: number },
    reply: Answerer,
    ready: boolean,
    remote = false
  ) => {
    const { color, user, x, y } = placement
    const now = env.clock.unsafeCurrentTimeMillis()
    const previous = state.lastPlaced.get(user)
    if (previous !== undefined && now < previous + cooldownMs) {
      reply.fail(new Cooldown({ retryAfterMs: previous + cooldownMs - now }))
      return state.cluster !== undefined && state.cluster.answers.length > 0 && ready ? armFlush(state, ctx) : state
    }
    state.lastPlaced.set(user, now)
    state.pending.push({ pixel: { x, y, color, user, at: now }, previous, reply, remote })
    return ready ? armFlush(state, ctx) : state
  }

  /** Hands a checked placement to the board's owner and waits for its answer (or `forwardTimeout`). */
  const forward = (
    state: State,
    ctx: Actor.ActorContext<CanvasMessage>,
    placement: { readonly user: string; readonly x: number; readonly y: number; readonly color: number },
    reply: Reply<Placed, PlaceError>
  ) => {
    const cluster = state.cluster!
    const { color, user, x, y } = placement
    const now = env.clock.unsafeCurrentTimeMillis()
    const previous = state.lastPlaced.get(user)
    if (previous !== undefined && now < previous + cooldownMs) {
      stats.cooldownAtEntry++
      reply.fail(new Cooldown({ retryAfterMs: previous + cooldownMs - now }))
      return Effect.succeed(state)
    }
    state.lastPlaced.set(user, now)
    const id = cluster.nextId++
    cluster.forwarded.set(id, { user, at: now, previous, reply })
    stats.forwarded++
    const message: BoardMessages.Forward = { _tag: "Forward", node: env.cluster!.node, id, user, x, y, color }
    return PubSub.broadcastFrom(env.hub, ctx.self, BoardMessages.PlacementsTopic, message).pipe(
      Effect.zipRight(Effect.forkIn(
        Effect.delay(Effect.sync(() => ctx.self.unsafeTell({ _tag: "ForwardTimeout", id })), forwardTimeout),
        ctx.scope
      )),
      Effect.as(state)
    )
  }

  /** An answer of the owner's to a placement this node forwarded. */
  const answered = (state: State, answer: BoardMessages.Answer) => {
    const cluster = state.cluster!
    const waiting = cluster.forwarded.get(answer.id)
    if (waiting === undefined) return
    cluster.forwarded.delete(answer.id)
    stats.forwardAnswered++
    if (answer.ok) {
      waiting.reply.succeed({ seq: answer.seq, cooldownUntil: DateTime.unsafeMake(answer.until) })
    } else {
      giveBack(state, waiting.user, waiting.at, waiting.previous)
      waiting.reply.fail(errorOf(answer))
    }
  }

  /** The owner's tick: its answers to this node, then its pixels applied, relayed and written here. */
  const onTick = (state: State, message: BoardMessages.Tick, self: ActorRef<never>) => {
    const cluster = state.cluster!
    const me = env.cluster!.node
    const fenced = cluster.newest !== undefined && compareTokens(message.token, cluster.newest) < 0
    for (const answer of message.answers) {
      // An old owner's word that a pixel was placed is not trusted; its refusals are.
      if (answer.node === me && (!fenced || !answer.ok)) answered(state, answer)
    }
    if (fenced) {
      if (message.pixels.length > 0) stats.fenced++
      return Effect.succeed(state)
    }
    const newer = cluster.newest === undefined || compareTokens(message.token, cluster.newest) > 0
    cluster.newest = message.token
    const lost = newer && cluster.owner !== undefined ? resign(state, self) : Effect.void
    const count = message.pixels.length / 5
    if (count === 0 || message.seq <= state.seq) return Effect.as(lost, state)
    if (message.seq - count !== state.seq) {
      stats.gaps++
      return Effect.as(Effect.zipRight(lost, PubSub.resync(env.hub, BoardMessages.BoardTopic)), state)
    }
    const placed = unpackPixels(message.pixels)
    // The nodes share one palette; a pixel this node cannot store is not taken.
    if (placed.some((p) => !inBounds(p.x, p.y) || !validColor(p.color))) {
      stats.malformed++
      return Effect.as(lost, state)
    }
    const pixels: Array<StoredPixel> = placed.map((p, i) => ({ ...p, user: message.users[i], at: message.ats[i] }))
    for (const p of pixels) {
      state.board[p.y * width + p.x] = p.color
      if (p.at > (state.lastPlaced.get(p.user) ?? -Infinity)) state.lastPlaced.set(p.user, p.at)
    }
    state.seq = message.seq
    state.snapshot = undefined
    stats.relayedTicks++
    if (state.lastPlaced.size > state.prunedSize * 2 + 1024) forgetCooledDown(state, env.clock, cooldownMs)
    const relay = PubSub.broadcast(env.hub, topic, new CanvasFrame(Updates.make({ seq: message.seq, pixels: message.pixels })))
    // The replica's file follows the board; one that cannot follow is written whole.
    const write = env.store.placeBatch(pixels).pipe(
      Effect.flatMap((version) =>
        version === message.seq
          ? Effect.void
          : env.store.replace({ pixels: state.board, version: state.seq, cooldowns: cooldownsOf(state) })
      ),
      Effect.catchAll((error) =>
        Effect.zipRight(
          Effect.sync(() => void stats.replicaErrors++),
          Effect.logWarning(`canvas: the replica of the board cannot be saved (${error.reason})`)
        )
      )
    )
    return Effect.as(Effect.all([lost, relay, write], { discard: true }), state)
  }

  const onBoard = (state: State, message: BoardMessages.BoardMessage, ctx: Actor.ActorContext<CanvasMessage>) => {
    const cluster = state.cluster!
    const me = env.cluster!.node
    switch (message._tag) {
      case "Tick":
        return onTick(state, message, ctx.self)
      case "Whole": {
        if (cluster.newest !== undefined && compareTokens(message.token, cluster.newest) < 0) {
          stats.fenced++
          return Effect.succeed(state)
        }
        const lost = cluster.owner !== undefined && compareTokens(message.token, cluster.owner.token) > 0
          ? resign(state, ctx.self)
          : Effect.void
        cluster.newest = message.token
        cluster.caughtUp = true
        return Effect.zipRight(lost, adopt(state, message.pixels, message.seq, message.cooldowns))
      }
      case "Claim": {
        if (cluster.newest !== undefined && compareTokens(message.token, cluster.newest) < 0) return Effect.succeed(state)
        cluster.newest = message.token
        const lost = cluster.owner !== undefined && compareTokens(message.token, cluster.owner.token) > 0
          ? resign(state, ctx.self)
          : Effect.void
        if (message.node === me || state.seq <= message.seq) return Effect.as(lost, state)
        const replica: BoardMessages.Replica = {
          _tag: "Replica",
          token: message.token,
          node: me,
          seq: state.seq,
          pixels: state.board.slice(),
          cooldowns: cooldownsOf(state)
        }
        return Effect.as(Effect.zipRight(lost, PubSub.broadcastFrom(env.hub, ctx.self, BoardMessages.BoardTopic, replica)), state)
      }
      case "Replica": {
        const owner = cluster.owner
        if (owner === undefined || owner.ready || compareTokens(message.token, owner.token) !== 0) return Effect.succeed(state)
        if (message.seq > (owner.best?.seq ?? state.seq)) owner.best = message
        return Effect.succeed(state)
      }
    }
  }

  /** This node was given the board: it listens for placements, asks for replicas ahead of its own, and waits. */
  const takeOver = (state: State, ctx: Actor.ActorContext<CanvasMessage>) =>
    Effect.gen(function*() {
      const cluster = state.cluster!
      const token = env.cluster!.token()
      if (cluster.owner !== undefined || token === undefined || !env.cluster!.owns()) return state
      const placements = yield* PubSub.subscribe(env.hub, BoardMessages.PlacementsTopic, ctx.self, {
        bufferSize: 8192,
        overflow: "dropping",
        map: (message): CanvasMessage =>
          BoardMessages.isForward(message) ? { _tag: "Forwarded", forward: message } : { _tag: "Malformed" }
      })
      cluster.owner = { token, placements, ready: false, best: undefined }
      cluster.newest = token
      stats.takeovers++
      const claim: BoardMessages.Claim = { _tag: "Claim", token, node: env.cluster!.node, seq: state.seq }
      yield* PubSub.broadcastFrom(env.hub, ctx.self, BoardMessages.BoardTopic, claim)
      yield* Effect.forkIn(
        Effect.delay(Effect.sync(() => ctx.self.unsafeTell({ _tag: "TakeoverDone", token })), takeoverWait),
        ctx.scope
      )
      return state
    })

  /** The takeover's wait is over: the best replica ahead is adopted, the board is sent whole, and writing starts. */
  const takenOver = (state: State, token: BoardToken, ctx: Actor.ActorContext<CanvasMessage>) =>
    Effect.gen(function*() {
      const owner = state.cluster?.owner
      if (owner === undefined || owner.ready || compareTokens(owner.token, token) !== 0) return state
      const holds = holding(state)
      if (holds === "gone") {
        yield* resign(state, ctx.self)
        return state
      }
      if (holds === "wait") {
        yield* Effect.forkIn(Effect.delay(Effect.sync(() => ctx.self.unsafeTell({ _tag: "TakeoverDone", token })), tick), ctx.scope)
        return state
      }
      const best = owner.best
      owner.best = undefined
      if (best !== undefined && best.seq > state.seq) yield* adopt(state, best.pixels, best.seq, best.cooldowns)
      owner.ready = true
      state.cluster!.caughtUp = true
      yield* sendWhole(state, ctx.self)
      yield* Effect.annotateLogs(Effect.logInfo("canvas: this node holds the board"), {
        seq: state.seq,
        token: `${token.epoch}.${token.counter}`,
        from: best === undefined ? "its own replica" : best.node
      })
      return state.pending.length > 0 || state.cluster!.answers.length > 0 ? yield* armFlush(state, ctx) : state
    })

  const sendWhole = (state: State, self: ActorRef<never>) => {
    const owner = state.cluster?.owner
    if (owner === undefined || !owner.ready) return Effect.void
    const whole: BoardMessages.Whole = {
      _tag: "Whole",
      token: owner.token,
      seq: state.seq,
      pixels: state.board.slice(),
      cooldowns: cooldownsOf(state)
    }
    return PubSub.broadcastFrom(env.hub, self, BoardMessages.BoardTopic, whole)
  }

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
        const cluster = env.cluster
        if (cluster !== undefined) {
          yield* PubSub.subscribe(env.hub, BoardMessages.BoardTopic, ctx.self, {
            bufferSize: 8192,
            overflow: "dropping",
            map: (message): CanvasMessage =>
              BoardMessages.isBoardMessage(message) ? { _tag: "Board", message } : { _tag: "Malformed" }
          })
          yield* PubSub.onResync(env.hub, BoardMessages.BoardTopic, () => Effect.sync(() => ctx.self.unsafeTell({ _tag: "Resend" })))
          const stop = cluster.watch((owned) => ctx.self.unsafeTell({ _tag: "Owner", owned }))
          yield* Effect.addFinalizer(() => Effect.sync(stop))
          if (cluster.owns()) ctx.self.unsafeTell({ _tag: "Owner", owned: true })
          // The board as the owner has it now, whatever this node's file missed; asked again later
          // when no answer came (Redis not connected yet, or the answer crossed the subscription).
          yield* PubSub.resync(env.hub, BoardMessages.BoardTopic)
          yield* Effect.forkScoped(Effect.forEach(askAgain, (wait) =>
            Effect.delay(Effect.sync(() => ctx.self.unsafeTell({ _tag: "AskWhole" })), wait), { discard: true }))
        }
        env.started(ctx.self)
        return {
          board: stored.pixels,
          seq: stored.version,
          lastPlaced,
          pending: [],
          flushArmed: false,
          snapshot: undefined,
          prunedSize: lastPlaced.size,
          cluster: cluster === undefined
            ? undefined
            : { newest: undefined, owner: undefined, forwarded: new Map(), nextId: firstId(), answers: [], unsureSince: undefined, caughtUp: false }
        } satisfies State
      }),
    receive: (state, message, ctx) => {
      switch (message._tag) {
        case "Place": {
          const { color, reply, x, y } = message
          if (!inBounds(x, y)) {
            stats.refusedAtEntry++
            reply.fail(new OutOfBounds())
            return state
          }
          if (!validColor(color)) {
            stats.refusedAtEntry++
            reply.fail(new InvalidColor())
            return state
          }
          const role = roleOf(state)
          if (role === "entry") return forward(state, ctx, message, reply)
          return queue(state, ctx, message, reply, role !== "claiming")
        }
        case "Forwarded": {
          const role = roleOf(state)
          // Only a claim that holds now answers for the board: another node may hold it already.
          if ((role !== "owner" && role !== "claiming") || !env.cluster!.owns()) {
            stats.forwardsIgnored++
            return state
          }
          stats.forwardsReceived++
          const { color, id, node, x, y } = message.forward
          const reply = remoteAnswerer(state.cluster!, node, id)
          if (!inBounds(x, y)) reply.fail(new OutOfBounds())
          else if (!validColor(color)) reply.fail(new InvalidColor())
          else return queue(state, ctx, message.forward, reply, role === "owner", true)
          return role === "owner" ? armFlush(state, ctx) : state
        }
        case "Flush": {
          state.flushArmed = false
          const role = roleOf(state)
          if (role === "claiming" || role === "entry") return state
          if (role === "owner") {
            const holds = holding(state)
            if (holds === "gone") return Effect.as(resign(state, ctx.self), state)
            // A late renewal: nothing is written until the claim holds again (or is lost).
            if (holds === "wait") return armFlush(state, ctx)
          }
          const batch = state.pending
          state.pending = []
          if (state.lastPlaced.size > state.prunedSize * 2 + 1024) forgetCooledDown(state, env.clock, cooldownMs)
          if (batch.length === 0) return Effect.as(sendAnswers(env, state, ctx.self), state)
          return commit(env, state, batch, cooldownMs, ctx.self)
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
        case "Board":
          return onBoard(state, message.message, ctx)
        case "Malformed":
          stats.malformed++
          return state
        case "Owner":
          return message.owned ? takeOver(state, ctx) : Effect.as(resign(state, ctx.self), state)
        case "ForwardTimeout": {
          const waiting = state.cluster?.forwarded.get(message.id)
          if (waiting === undefined) return state
          state.cluster!.forwarded.delete(message.id)
          stats.forwardTimeouts++
          giveBack(state, waiting.user, waiting.at, waiting.previous)
          waiting.reply.fail(
            new Unavailable({
              reason: `the board's owner did not answer within ${Duration.format(forwardTimeout)}: ` +
                "the pixel may or may not be placed (the board shows it)"
            })
          )
          return state
        }
        case "Resend":
          return Effect.as(sendWhole(state, ctx.self), state)
        case "TakeoverDone":
          return takenOver(state, message.token, ctx)
        case "AskWhole":
          return state.cluster === undefined || state.cluster.caughtUp || roleOf(state) !== "entry"
            ? state
            : Effect.as(PubSub.resync(env.hub, BoardMessages.BoardTopic), state)
      }
    },
    // A graceful stop commits what was queued, so no accepted placement goes unanswered.
    terminate: (state, _reason, ctx) => {
      for (const waiting of state.cluster?.forwarded.values() ?? []) {
        waiting.reply.fail(new Unavailable({ reason: "the canvas stopped before the board's owner answered" }))
      }
      state.cluster?.forwarded.clear()
      const batch = state.pending
      state.pending = []
      if (batch.length === 0) return Effect.void
      const role = roleOf(state)
      if (role === "alone" || (role === "owner" && env.cluster!.owns())) return commit(env, state, batch, cooldownMs, ctx.self)
      for (const { pixel, previous, remote, reply } of batch) {
        giveBack(state, pixel.user, pixel.at, previous)
        if (!remote) reply.fail(new Unavailable({ reason: "the canvas stopped" }))
      }
      return sendAnswers(env, state, ctx.self)
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
  /** Whether this node writes the board: always on a single node; with several, while it holds the board's lease. */
  readonly owns: () => boolean
  /** The canvas's counters now (forwarding, relaying, refusals). */
  readonly stats: () => CanvasStats
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
  const cluster = Option.getOrUndefined(yield* Effect.serviceOption(CanvasCluster))
  // With several nodes the board's messages cross on the backplane; the local frames' topic never does.
  const hub = yield* PubSub.make(
    cluster === undefined
      ? { nodeId: "canvas" }
      : { nodeId: cluster.node, backplane: cluster.backplane, shares: BoardMessages.shares }
  )
  const stats = newStats()
  let current: ActorRef<CanvasMessage> | undefined
  const child = ChildSpec.make(
    "canvas",
    behaviour({ settings, store, hub, clock, started: (ref) => (current = ref), cluster, stats }),
    { shutdown: "10 seconds" }
  )

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
    owns: () => cluster === undefined || cluster.owns(),
    stats: () => ({ ...stats }),
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
