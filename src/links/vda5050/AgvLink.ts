/**
 * The robot link of one AGV: an actor, registered `agv:<manufacturer>/<serialNumber>`, that
 * the fleet's MQTT link ({@link MqttLink}) starts on the AGV's first message and feeds with
 * every valid message of it afterwards.
 *
 * - It keeps what the AGV last said (state, visualization, factsheet, connection) and
 *   publishes it as {@link LinkEvent}s: `LinkUp` on ONLINE (or any sign of life), `LinkDown`
 *   on OFFLINE and on the broker's last will CONNECTIONBROKEN, `AgvTelemetry` per state and
 *   visualization, an `Alarm` per new error in the state.
 * - An AGV that stays OFFLINE or CONNECTIONBROKEN past `grace` is let go: the actor stops
 *   normally (it is started again if the AGV comes back). So is one that sends neither a
 *   `state` nor a `visualization` within `grace` of its link's start (a retained ONLINE of a
 *   robot that is not there, or a fake).
 * - An AGV silent past `silenceDeadline` while ONLINE trips the {@link Watchdog}: a `LINK-SILENT`
 *   alarm, `LinkDown` (disconnected, `silent`), and the link asks for a state (`stateRequest`) at
 *   once and again after 1, 2, 4 … up to 30 s; the first word from the AGV makes it up again
 *   (`LinkUp` clears the alarm), and one silent for `grace` more is let go. Silence, garbage or a
 *   dropped connection is the robot's status, never a crash of the link: nothing of it counts
 *   toward the restart intensity of `fleet/links`. A crash (a thrown exception) is a bug, and the
 *   supervisor restarts the link.
 * - `probation`: a link the fleet started for an AGV it did not know publishes nothing about it
 *   (no `LinkUp`, telemetry or alarm: the fleet does not list it) until the AGV has sent a
 *   `state` or a `visualization`, or an operator stopped it; a fake that only says ONLINE never
 *   enters the fleet's view and is let go after `grace`.
 * - It sends `instantActions` and `order`s with its own headerId per topic, through the MQTT
 *   link's outbox (QoS and retain per the specification's table). {@link EmergencyStop}, sent
 *   with `tellUrgent`, overtakes the mailbox and sends `startPause` and `cancelOrder` in one
 *   message, itself on the MQTT link's urgent lane.
 * - A stop latches the AGV in the fleet's latch table ({@link Latches}): while latched, the link
 *   refuses orders and `stopPause` ({@link LinkLatched}), and sends the stop again every 500 ms
 *   until the AGV's own state confirms it (paused, no nodes or edges left, one of the stop's
 *   `cancelOrder` actions FINISHED or FAILED). A link started for a latched AGV that is not
 *   confirmed (after a restart of the process, say) sends the stop at once. {@link ResetStop}
 *   clears a confirmed latch and sends `stopPause`.
 * - Other senders: every `instantActions` message on the AGV's topic comes back through the
 *   broker; the link continues its headerIds after any another sender used (another node, which
 *   may stop any AGV), starting after `instantActionsAfter`, and a stop it did not send (a
 *   `startPause` with a `cancelOrder`) latches the AGV as its own stop would (`adopt`): it
 *   refuses motion until a Reset and watches for the AGV's confirmation, resending the stop.
 * - Samples: with a slot in the fleet's sample columns (`samples`), the AGV's `visualization`s
 *   go there, not to this actor. The link asks for the next one as a message whenever it must
 *   hear the AGV (at start, when it goes down or falls silent), its watchdog counts a sample as
 *   a sign of life, and when it stops its slot has every sample routed again (so the AGV's next
 *   word starts a link).
 * - {@link LinkEvent.Announce} makes it publish again whether the AGV is up, and what it last
 *   said: how a restarted `fleet/state` learns the AGV's liveness.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Scope from "effect/Scope"
import * as Actor from "../../actors/Actor.js"
import type { ActorRef, Reply } from "../../actors/ActorRef.js"
import * as ExitReason from "../../actors/ExitReason.js"
import type * as PubSub from "../../actors/PubSub.js"
import * as LinkEvent from "../LinkEvent.js"
import * as SampleColumns from "../SampleColumns.js"
import * as StopLatch from "../StopLatch.js"
import * as Watchdog from "../Watchdog.js"
import type { Action } from "./Action.js"
import type { ConnectionState } from "./Connection.js"
import type { Factsheet } from "./Factsheet.js"
import * as Header from "./Header.js"
import * as HeaderIds from "./HeaderIds.js"
import * as MessageCodec from "./MessageCodec.js"
import type { OrderBody } from "./Order.js"
import type * as SharedHeaderIds from "./SharedHeaderIds.js"
import * as StopMessage from "./StopMessage.js"
import type { State as AgvState } from "./State.js"
import type { TopicName } from "./Topic.js"
import type { Visualization } from "./Visualization.js"

/** Where an AGV link sends its messages: the fleet's MQTT connection. */
export interface Outbox {
  /** Hands a message for `topic` of this AGV to the broker connection; `urgent` overtakes its queue. */
  readonly send: (topic: "order" | "instantActions", payload: string, urgent: boolean) => void
}

/** Options of one AGV's link. */
export interface AgvLinkOptions {
  readonly identity: Header.AgvIdentity
  readonly hub: PubSub.PubSub
  readonly outbox: Outbox
  /**
   * How long an AGV may stay OFFLINE, CONNECTIONBROKEN or silent before its link stops, and how
   * long a new link waits for its first state or visualization; default 60 seconds.
   */
  readonly grace?: Duration.DurationInput | undefined
  /**
   * How long an ONLINE AGV may say nothing before it is shown as disconnected (`LINK-SILENT`) and
   * asked for a state; default 65 seconds: two of the specification's 30-second state
   * intervals, and a margin.
   */
  readonly silenceDeadline?: Duration.DurationInput | undefined
  /**
   * The AGV's slot in a shared headerId table, when another thread also sends it instant
   * actions (the fleet's stop channel): `instantActions` ids then continue one sequence, and
   * the slot says while this link runs.
   */
  readonly shared?: SharedHeaderIds.Slot | undefined
  /** The fleet's emergency-stop latches; default: a table of this link's own, in memory. */
  readonly latches?: StopLatch.Latches | undefined
  /** The last `instantActions` headerId another sender used on the AGV's topic: the link's ids start after it. */
  readonly instantActionsAfter?: number | undefined
  /** How often an unconfirmed stop is sent again; default 500 ms. */
  readonly stopResend?: Duration.DurationInput | undefined
  /**
   * An AGV the fleet did not know: the link publishes nothing about it until its first `state`
   * or `visualization` (or a stop). Default false.
   */
  readonly probation?: boolean | undefined
  /** The AGV's slot in the fleet's sample columns, where its `visualization`s go instead of to this actor. */
  readonly samples?: { readonly columns: SampleColumns.SampleColumns; readonly slot: number } | undefined
}

/** The first and the longest delay between the `stateRequest`s of a link whose AGV fell silent. */
export const silentAsk = { first: Duration.seconds(1), max: Duration.seconds(30) } as const

/** The AGV is OFFLINE or its connection broke, so nothing can be sent to it. */
export class AgvNotConnected extends Data.TaggedError("AgvNotConnected")<{ readonly robot: string }> {}

/** The AGV said nothing for longer than its link's silence deadline. */
export class AgvLinkSilent extends Data.TaggedError("AgvLinkSilent")<{
  readonly robot: string
  readonly silentForMillis: number
}> {
  override get message() {
    return `${this.robot} was silent for ${this.silentForMillis} ms`
  }
}

/** Why a message to the AGV was not sent. */
export type SendError = AgvNotConnected | MessageCodec.MessageEncodeError | StopLatch.LinkLatched

/** The instant actions the link sends on behalf of the fleet. */
export type InstantActionType = "startPause" | "stopPause" | "cancelOrder" | "stateRequest" | "factsheetRequest"

/** A valid message the AGV published (from the MQTT link). */
export class Received {
  readonly _tag = "Received"
  constructor(readonly topic: TopicName, readonly message: MessageCodec.MessageOf<TopicName>) {}
}

/** Sends one instant action; the reply carries its `actionId` once handed to the broker connection. */
export interface SendInstantAction {
  readonly _tag: "SendInstantAction"
  readonly actionType: InstantActionType
  readonly reply?: Reply<string, SendError> | undefined
}

/** Sends an order; `orderUpdateId` is the link's to set when the order id is the current one. */
export interface SendOrder {
  readonly _tag: "SendOrder"
  readonly order: Omit<OrderBody, "orderUpdateId">
  readonly reply?: Reply<void, SendError> | undefined
}

/**
 * Pauses the AGV and cancels its order now, and latches it; send it with `tellUrgent`. The reply
 * says whether the AGV was online when the stop was handed to the broker connection.
 */
export interface EmergencyStop {
  readonly _tag: "EmergencyStop"
  /** Who stopped it, for the latch. */
  readonly by?: string | undefined
  /**
   * The `cancelOrder` actionIds of a stop another sender already published (the stop channel's
   * thread): the link latches and watches for confirmation without publishing it again.
   */
  readonly published?: ReadonlyArray<string> | undefined
  readonly reply?: Reply<StopLatch.StopOutcome> | undefined
}

/** Clears a confirmed stop latch and sends `stopPause`; refused while the AGV has not confirmed the stop. */
export interface ResetStop {
  readonly _tag: "ResetStop"
  readonly reply: Reply<void, SendError>
}

/** What the link knows of its AGV now. */
export interface AgvLinkInfo {
  readonly robot: string
  readonly connection: ConnectionState | "UNKNOWN"
  readonly state: AgvState | undefined
  readonly visualization: Visualization | undefined
  readonly factsheet: Factsheet | undefined
  readonly received: number
}

/** Asks for {@link AgvLinkInfo}. */
export interface GetInfo {
  readonly _tag: "GetInfo"
  readonly reply: Reply<AgvLinkInfo>
}

/** A grace period ended: `down` (OFFLINE, CONNECTIONBROKEN or silent too long), or `unheard` (no state or visualization yet). */
class GraceOver {
  readonly _tag = "GraceOver"
  constructor(readonly why: "down" | "unheard") {}
}
class Silent {
  readonly _tag = "Silent"
  constructor(readonly error: AgvLinkSilent) {}
}
class ResendStop {
  readonly _tag = "ResendStop"
}
class AskState {
  readonly _tag = "AskState"
}

/** What an AGV link accepts. `GraceOver`, `Silent`, `ResendStop` and `AskState` are its own. */
export type AgvLinkMessage =
  | Received
  | SendInstantAction
  | SendOrder
  | EmergencyStop
  | ResetStop
  | GetInfo
  | LinkEvent.Announce
  | GraceOver
  | Silent
  | ResendStop
  | AskState

/** A `SendInstantAction` message for `ask`. */
export const instantAction = (actionType: InstantActionType) => (reply: Reply<string, SendError>): AgvLinkMessage => ({
  _tag: "SendInstantAction",
  actionType,
  reply
})

/** A `SendOrder` message for `ask`. */
export const order = (body: Omit<OrderBody, "orderUpdateId">) => (reply: Reply<void, SendError>): AgvLinkMessage => ({
  _tag: "SendOrder",
  order: body,
  reply
})

/** An emergency stop to `tellUrgent`, or (with a reply) to `ask` with `{ urgent: true }`. */
export const emergencyStop = (reply?: Reply<StopLatch.StopOutcome>): AgvLinkMessage => ({ _tag: "EmergencyStop", reply })

/** An emergency stop by `by`, to `ask` with `{ urgent: true }`. */
export const emergencyStopBy = (by: string) => (reply: Reply<StopLatch.StopOutcome>): AgvLinkMessage => ({
  _tag: "EmergencyStop",
  by,
  reply
})

/** A `ResetStop` message for `ask`. */
export const resetStop = (reply: Reply<void, SendError>): AgvLinkMessage => ({ _tag: "ResetStop", reply })

/** How many `cancelOrder` ids of one stop are remembered: a few seconds of resends, then the oldest go. */
const maxCancelActions = 64

/**
 * Whether the AGV's state confirms the stop of `latch`: paused, no order nodes or edges left,
 * and one of the stop's `cancelOrder` actions ended (FINISHED; FAILED when there was no order
 * to cancel, as VDA 5050 has it).
 */
export const confirmsStop = (latch: StopLatch.Latch, state: AgvState): boolean =>
  state.paused === true &&
  state.nodeStates.length === 0 &&
  state.edgeStates.length === 0 &&
  state.actionStates.some((action) =>
    latch.cancelActions.has(action.actionId) && (action.actionStatus === "FINISHED" || action.actionStatus === "FAILED")
  )

/** A `GetInfo` message for `ask`. */
export const getInfo = (reply: Reply<AgvLinkInfo>): AgvLinkMessage => ({ _tag: "GetInfo", reply })

/** The fleet id of an AGV: `<manufacturer>/<serialNumber>`. */
export const robotId = (identity: Header.AgvIdentity): string => `${identity.manufacturer}/${identity.serialNumber}`

/** Blocking types the specification gives the predefined instant actions. */
const blocking: Record<InstantActionType, Action["blockingType"]> = {
  startPause: "HARD",
  stopPause: "HARD",
  cancelOrder: "NONE",
  stateRequest: "NONE",
  factsheetRequest: "NONE"
}

interface State {
  readonly self: ActorRef<AgvLinkMessage>
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>
  readonly ids: HeaderIds.Counters
  readonly watchdog: Watchdog.Watchdog
  readonly latches: StopLatch.Latches
  /** Sends an unconfirmed stop again, while it runs. */
  resend: Fiber.RuntimeFiber<void> | undefined
  /** The `cancelOrder` ids of the stops this link (or the stop channel's thread, for it) sent, the latest {@link maxCancelActions}. */
  readonly ownStops: Set<string>
  connection: ConnectionState | "UNKNOWN"
  up: boolean
  /** Whether the link publishes what it hears (see `probation`). */
  listed: boolean
  /** The AGV has sent a state or a visualization since the link started. */
  spoke: boolean
  /** Silent past the deadline, not heard since. */
  silent: boolean
  /** Asks a silent AGV for a state, with backoff, while it runs. */
  asking: Fiber.RuntimeFiber<void> | undefined
  /** Lets the link go if the AGV sends no state or visualization in time. */
  unheard: Fiber.RuntimeFiber<void> | undefined
  grace: Fiber.RuntimeFiber<void> | undefined
  state: AgvState | undefined
  visualization: Visualization | undefined
  factsheet: Factsheet | undefined
  errors: ReadonlySet<string>
  received: number
  currentOrder: { readonly orderId: string; orderUpdateId: number } | undefined
}

let actionCounter = 0

/** The behaviour of one AGV's link; see the module documentation. */
export const make = (options: AgvLinkOptions): Actor.Behaviour<AgvLinkMessage, State> => {
  const robot = robotId(options.identity)
  const grace = options.grace ?? Duration.seconds(60)
  const samples = options.samples
  const lastSample = samples === undefined
    ? undefined
    : () => samples.columns.values[samples.slot * SampleColumns.fieldCount + SampleColumns.Field.at]
  const publish = (state: State, event: LinkEvent.LinkEvent) => {
    if (state.listed) LinkEvent.unsafePublish(options.hub, event)
  }

  const stamp = <T extends "order" | "instantActions">(
    state: State,
    topic: T,
    body: Omit<MessageCodec.MessageOf<T>, keyof Header.Header>
  ) =>
    MessageCodec.encode(topic, {
      ...Header.make(options.identity, state.ids.next(topic), Date.now()),
      ...body
    } as MessageCodec.MessageOf<T>)

  const sendActions = (
    state: State,
    types: ReadonlyArray<InstantActionType>,
    urgent: boolean
  ): Either.Either<ReadonlyArray<string>, MessageCodec.MessageEncodeError> => {
    const actions = types.map((actionType): Action => ({
      actionType,
      actionId: `${actionType}-${Date.now().toString(36)}-${++actionCounter}`,
      blockingType: blocking[actionType]
    }))
    return Either.map(stamp(state, "instantActions", { actions }), (payload) => {
      options.outbox.send("instantActions", payload, urgent)
      return actions.map((a) => a.actionId)
    })
  }

  const online = (state: State) => state.connection !== "OFFLINE" && state.connection !== "CONNECTIONBROKEN"

  /** Publishes startPause + cancelOrder on the urgent lane, remembering the cancelOrder's id in the latch. */
  const sendStop = (state: State, latch: StopLatch.Latch): boolean => {
    const sent = sendActions(state, ["startPause", "cancelOrder"], true)
    if (Either.isLeft(sent)) return false
    rememberCancel(latch, sent.right[1])
    rememberOwn(state, sent.right[1])
    return true
  }

  const rememberOwn = (state: State, actionId: string) => {
    state.ownStops.add(actionId)
    if (state.ownStops.size > maxCancelActions) state.ownStops.delete(state.ownStops.values().next().value!)
  }

  /**
   * Another sender's `instantActions`: continue after its headerId; latch the AGV if it is a stop
   * this link did not send, and resend it until the AGV confirms it.
   */
  const onInstantActions = (state: State, message: MessageCodec.MessageOf<"instantActions">) => {
    state.ids.advance("instantActions", message.headerId)
    const cancelId = StopMessage.cancelIdOf(message)
    if (cancelId === undefined || state.ownStops.has(cancelId)) return
    const existing = state.latches.get(robot)
    if (existing?.cancelActions.has(cancelId) === true) return
    // Latched already (here, by this node's stop channel, or through the cluster): that latch stays, with its author.
    const by = existing?.by ?? "another node"
    const latch = existing ?? (state.latches.adopt ?? state.latches.latch)(robot, "agv", by)
    if (latch.confirmed) {
      latch.confirmed = false
      latch.unconfirmedSince = Date.now()
    }
    rememberCancel(latch, cancelId)
    list(state)
    if (existing === undefined) publish(state, { _tag: "EmergencyStopped", robot, kind: "agv", at: Date.now(), by })
    // A stop just went out: the next resend is a period after it, not beside another sender's next stop.
    stopWatching(state)
    watchStop(state)
  }

  const rememberCancel = (latch: StopLatch.Latch, actionId: string) => {
    latch.cancelActions.add(actionId)
    if (latch.cancelActions.size > maxCancelActions) {
      latch.cancelActions.delete(latch.cancelActions.values().next().value!)
    }
  }

  const resendEvery = Duration.decode(options.stopResend ?? Duration.millis(500))

  /** Sends the stop again every `stopResend` until the AGV confirms it (the resend fiber ends with the actor). */
  const watchStop = (state: State) => {
    if (state.resend !== undefined) return
    state.resend = state.run(
      Effect.forever(Effect.zipRight(Effect.sleep(resendEvery), Effect.sync(() => state.self.unsafeTellUrgent(new ResendStop()))))
    )
  }

  const stopWatching = (state: State) => {
    if (state.resend === undefined) return
    state.resend.unsafeInterruptAsFork(state.resend.id())
    state.resend = undefined
  }

  const interrupt = (fiber: Fiber.RuntimeFiber<void> | undefined): undefined => {
    fiber?.unsafeInterruptAsFork(fiber.id())
    return undefined
  }

  /** Tells the link `message` after `delay`, unless the fiber returned is interrupted first. */
  const after = (state: State, delay: Duration.DurationInput, message: AgvLinkMessage) => {
    const fiber = state.run(Effect.delay(Effect.void, delay))
    fiber.addObserver((exit) => {
      if (exit._tag === "Success") state.self.unsafeTell(message)
    })
    return fiber
  }

  /** Asks for the AGV's next sample as a message: its first word after a start, a fall or a silence. */
  const wantSample = () => {
    if (samples !== undefined) SampleColumns.want(samples.columns, samples.slot)
  }

  const markUp = (state: State) => {
    state.grace = interrupt(state.grace)
    state.asking = interrupt(state.asking)
    state.silent = false
    if (!state.up) {
      state.up = true
      publish(state, { _tag: "LinkUp", robot, kind: "agv", at: Date.now() })
    }
  }

  const markDown = (state: State, status: "offline" | "disconnected", reason: string) => {
    state.up = false
    wantSample()
    publish(state, { _tag: "LinkDown", robot, kind: "agv", status, reason, at: Date.now() })
    if (state.grace === undefined) state.grace = after(state, grace, new GraceOver("down"))
  }

  /** Ends the probation: the fleet lists the AGV from now on, and hears whether it is up. */
  const list = (state: State) => {
    if (state.listed) return
    state.listed = true
    if (state.up) publish(state, { _tag: "LinkUp", robot, kind: "agv", at: Date.now() })
  }

  /** The AGV sent a state or a visualization: it is real, listed from now on, and not let go for being unheard. */
  const spoke = (state: State) => {
    state.spoke = true
    state.unheard = interrupt(state.unheard)
    list(state)
  }

  /** Asks a silent AGV for a state now, then after 1, 2, 4 … 30 s, until it speaks (the fiber ends with the link). */
  const askWhileSilent = (state: State) => {
    if (state.asking !== undefined) return
    sendActions(state, ["stateRequest"], false)
    const max = Duration.toMillis(silentAsk.max)
    let delay = Duration.toMillis(silentAsk.first)
    state.asking = state.run(Effect.forever(Effect.suspend(() => {
      const wait = delay
      delay = Math.min(max, delay * 2)
      return Effect.zipRight(Effect.sleep(wait), Effect.sync(() => state.self.unsafeTell(new AskState())))
    })))
  }

  const onState = (state: State, message: AgvState) => {
    state.state = message
    const latch = state.latches.get(robot)
    if (latch !== undefined && !latch.confirmed && confirmsStop(latch, message)) {
      latch.confirmed = true
      stopWatching(state)
    }
    const errors = new Set(message.errors.map((e) => e.errorType))
    for (const error of message.errors) {
      if (state.errors.has(error.errorType)) continue
      publish(state, {
        _tag: "Alarm",
        robot,
        kind: "agv",
        code: error.errorType,
        level: error.errorLevel === "FATAL" ? "fatal" : "warning",
        message: error.errorDescription ?? error.errorType,
        at: Date.now()
      })
    }
    state.errors = errors
    publish(state, { _tag: "AgvTelemetry", robot, at: Date.now(), state: message })
  }

  return Actor.make<AgvLinkMessage, State>({
    name: "agv_link",
    init: (ctx) =>
      Effect.gen(function*() {
        const run = yield* FiberSet.makeRuntime<never, unknown, unknown>()
        const watchdog = yield* Scope.extend(
          Watchdog.start(options.silenceDeadline ?? Duration.seconds(65), (silentForMillis) =>
            ctx.self.unsafeTellUrgent(new Silent(new AgvLinkSilent({ robot, silentForMillis }))), lastSample),
          ctx.scope
        )
        const state: State = {
          self: ctx.self,
          run,
          ids: options.shared?.ids ?? HeaderIds.unsafeMake(),
          watchdog,
          latches: options.latches ?? StopLatch.memory(),
          resend: undefined,
          ownStops: new Set(),
          connection: "UNKNOWN",
          up: false,
          listed: options.probation !== true,
          spoke: false,
          silent: false,
          asking: undefined,
          unheard: undefined,
          grace: undefined,
          state: undefined,
          visualization: undefined,
          factsheet: undefined,
          errors: new Set(),
          received: 0,
          currentOrder: undefined
        }
        if (options.instantActionsAfter !== undefined) state.ids.advance("instantActions", options.instantActionsAfter)
        // A latched AGV that has not confirmed its stop (the process restarted, say) is stopped again first.
        const latch = state.latches.get(robot)
        if (latch !== undefined && !latch.confirmed) {
          sendStop(state, latch)
          watchStop(state)
        }
        wantSample()
        sendActions(state, ["stateRequest"], false)
        // A robot that never reports is not kept: let go after the grace period (a fake that only said ONLINE, say).
        state.unheard = after(state, grace, new GraceOver("unheard"))
        options.shared?.setLive(true)
        return state
      }),
    receive: (state, message, ctx) => {
      switch (message._tag) {
        case "Received": {
          // What the fleet's nodes send to the AGV comes back through the broker: not a word of the AGV's.
          if (message.topic === "instantActions") {
            onInstantActions(state, message.message as MessageCodec.MessageOf<"instantActions">)
            return state
          }
          if (message.topic === "order") return state
          state.received++
          state.watchdog.heard()
          switch (message.topic) {
            case "connection": {
              const connection = (message.message as MessageCodec.MessageOf<"connection">).connectionState
              state.connection = connection
              if (connection === "ONLINE") markUp(state)
              else {
                state.asking = interrupt(state.asking)
                state.silent = false
                markDown(state, connection === "OFFLINE" ? "offline" : "disconnected", connection)
              }
              return state
            }
            case "state":
              if (!online(state)) state.connection = "ONLINE"
              spoke(state)
              markUp(state)
              onState(state, message.message as AgvState)
              return state
            case "visualization":
              spoke(state)
              if (online(state)) markUp(state)
              state.visualization = message.message as Visualization
              publish(state, { _tag: "AgvTelemetry", robot, at: Date.now(), visualization: state.visualization })
              return state
            case "factsheet":
              state.factsheet = message.message as Factsheet
              return state
            default:
              return state
          }
        }
        case "SendInstantAction": {
          const latch = message.actionType === "stopPause" ? state.latches.get(robot) : undefined
          if (latch !== undefined) {
            message.reply?.fail(StopLatch.LinkLatched.of(latch))
            return state
          }
          if (!online(state)) {
            message.reply?.fail(new AgvNotConnected({ robot }))
            return state
          }
          const sent = sendActions(state, [message.actionType], false)
          if (Either.isLeft(sent)) message.reply?.fail(sent.left)
          else message.reply?.succeed(sent.right[0])
          return state
        }
        case "SendOrder": {
          const latch = state.latches.get(robot)
          if (latch !== undefined) {
            message.reply?.fail(StopLatch.LinkLatched.of(latch))
            return state
          }
          if (!online(state)) {
            message.reply?.fail(new AgvNotConnected({ robot }))
            return state
          }
          const same = state.currentOrder?.orderId === message.order.orderId
          const orderUpdateId = same ? state.currentOrder!.orderUpdateId + 1 : 0
          const payload = stamp(state, "order", { ...message.order, orderUpdateId })
          if (Either.isLeft(payload)) {
            message.reply?.fail(payload.left)
            return state
          }
          state.currentOrder = { orderId: message.order.orderId, orderUpdateId }
          options.outbox.send("order", payload.right, false)
          message.reply?.succeed()
          return state
        }
        case "EmergencyStop": {
          // An operator stopped it: whatever it is, the fleet lists it from now on.
          list(state)
          const by = message.by ?? "link"
          const latch = state.latches.latch(robot, "agv", by)
          if (latch.confirmed) {
            latch.confirmed = false
            latch.unconfirmedSince = Date.now()
          }
          let sent = true
          if (message.published === undefined) sent = sendStop(state, latch)
          else {
            for (const id of message.published) {
              rememberCancel(latch, id)
              rememberOwn(state, id)
            }
          }
          publish(state, { _tag: "EmergencyStopped", robot, kind: "agv", at: Date.now(), by })
          watchStop(state)
          message.reply?.succeed({ reached: sent && online(state), dropped: 0 })
          return state
        }
        case "ResendStop": {
          const latch = state.latches.get(robot)
          if (latch === undefined || latch.confirmed) stopWatching(state)
          else sendStop(state, latch)
          return state
        }
        case "ResetStop": {
          const latch = state.latches.get(robot)
          if (latch === undefined) {
            message.reply.succeed()
            return state
          }
          if (!latch.confirmed && (state.state === undefined || !confirmsStop(latch, state.state))) {
            message.reply.fail(StopLatch.LinkLatched.of(latch))
            return state
          }
          if (!online(state)) {
            message.reply.fail(new AgvNotConnected({ robot }))
            return state
          }
          state.latches.clear(robot)
          stopWatching(state)
          publish(state, { _tag: "Cleared", robot, kind: "agv", at: Date.now() })
          const resumed = sendActions(state, ["stopPause"], false)
          if (Either.isLeft(resumed)) message.reply.fail(resumed.left)
          else message.reply.succeed()
          return state
        }
        case "Announce": {
          const at = Date.now()
          publish(
            state,
            state.up
              ? { _tag: "LinkUp", robot, kind: "agv", at }
              : {
                _tag: "LinkDown",
                robot,
                kind: "agv",
                status: state.connection === "OFFLINE" ? "offline" : "disconnected",
                reason: state.silent ? "silent" : state.connection,
                at
              }
          )
          if (state.state !== undefined) publish(state, { _tag: "AgvTelemetry", robot, at, state: state.state })
          if (state.visualization !== undefined) publish(state, { _tag: "AgvTelemetry", robot, at, visualization: state.visualization })
          return state
        }
        case "GetInfo":
          message.reply.succeed({
            robot,
            connection: state.connection,
            state: state.state,
            visualization: state.visualization,
            factsheet: state.factsheet,
            received: state.received
          })
          return state
        case "GraceOver":
          // Unless the AGV came back (or spoke) meanwhile, the link is let go: stopped normally, not restarted.
          if (message.why === "down" ? !state.up : !state.spoke) ctx.stop(ExitReason.normal)
          return state
        case "Silent":
          // A robot's silence is its status: alarm, disconnected, asked for a state with backoff; never a crash.
          if (!online(state) || !state.up) return state
          state.silent = true
          publish(state, {
            _tag: "Alarm",
            robot,
            kind: "agv",
            code: "LINK-SILENT",
            level: "warning",
            message: message.error.message,
            at: Date.now()
          })
          markDown(state, "disconnected", "silent")
          askWhileSilent(state)
          return state
        case "AskState":
          if (state.silent) sendActions(state, ["stateRequest"], false)
          else state.asking = interrupt(state.asking)
          return state
      }
    },
    terminate: (state, reason) => {
      options.shared?.setLive(false)
      if (samples !== undefined) SampleColumns.unlink(samples.columns, samples.slot)
      return state.listed && (state.up || reason._tag !== "Normal")
        ? LinkEvent.publish(options.hub, {
          _tag: "LinkDown",
          robot,
          kind: "agv",
          status: reason._tag === "Failure" || reason._tag === "Killed" || state.connection === "CONNECTIONBROKEN"
            ? "disconnected"
            : "offline",
          reason: ExitReason.format(reason),
          at: Date.now()
        })
        : Effect.void
    }
  })
}
