/**
 * The robot link of one FANUC arm: an actor that owns an {@link RmiClient} session in its scope.
 *
 * - It connects as soon as it starts (FRC_Connect on the connect port, the session port,
 *   FRC_Initialize), then polls status, cartesian position and joint angles at `pollHz`
 *   (10–125). With a slot in the fleet's sample columns (`samples`), each reading is written
 *   there by the poll itself ({@link ArmSample}: position, joints, clock, status), and the actor
 *   and the hub hear an `ArmTelemetry` {@link LinkEvent} only when the arm's status changes
 *   (program status, servo, pendant, override, moving); without one, every reading is published.
 * - Motion goes through the client's instruction window: consecutive SequenceIDs, at most 8
 *   instructions outstanding on the controller, the rest queued in the link.
 * - A lost connection, a refused handshake, a protocol error (garbage, a reply nobody asked for,
 *   an over-long line) or a robot silent past `silenceDeadline` (the {@link Watchdog}) is the
 *   robot's status, not a crash: the link closes the session, publishes `LinkDown`
 *   (`disconnected`, with the reason) and an alarm for silence (`LINK-SILENT`) or a protocol
 *   error (`LINK-PROTOCOL`), both cleared by the next `LinkUp`, and opens a new session after
 *   an exponential backoff of its own (`reconnect`, 200 ms doubling to 10 s by default, back to
 *   the start after a session that lasted `resetAfter`). The actor itself stays up, so none of
 *   this counts toward its supervisor's restart intensity; a crash of the actor (a thrown
 *   exception) is a bug, and its supervisor restarts it as before. FRC_SystemFault raises an
 *   `Alarm` carrying the controller's error (FRC_ReadError); FRC_Terminate ends the session,
 *   which is a lost connection like any other.
 * - An instruction sent with `tell` (nobody waits for its reply) that the controller refuses
 *   raises a warning `Alarm` with the RMI code (e.g. RMIT-021), cleared by the next `Reset`.
 * - {@link EmergencyStop}, sent on the urgent lane (`tellUrgent`), overtakes everything in the
 *   mailbox, latches the arm in the fleet's latch table ({@link Latches}), drops the
 *   instructions queued in the link and sends FRC_Abort; motions it dropped are raised as a
 *   `MOTION-DROPPED` alarm. While the arm is latched the link refuses motion and FRC_Continue
 *   ({@link LinkLatched}), and a link that (re)connects does not initialise the RMI program (it
 *   sends FRC_Abort again instead), so neither a queued motion nor a reconnect moves the arm
 *   after a stop. Only a successful `Reset` operation clears the latch (then publishes `Cleared`).
 * - {@link LinkEvent.Announce} makes it publish again whether it is connected, and its last
 *   reading: how a restarted `fleet/state` learns the arm's liveness.
 *
 * ```ts
 * const arm = yield* system.spawn(RmiLink.make({ id: "arm-1", host: "10.0.0.5", hub }))
 * yield* arm.ask(RmiLink.instruct(move))          // resolves when the motion has finished
 * yield* arm.tellUrgent(RmiLink.emergencyStop())   // FRC_Abort, ahead of all queued mail
 * ```
 *
 * @since 0.1.0
 */
import { Cause, Data, Deferred, Duration, Effect, Exit, type Fiber, FiberSet, Queue, Schedule } from "effect"
import * as Actor from "../../actors/Actor.js"
import * as LogSampler from "../../actors/LogSampler.js"
import type { ActorRef, Reply } from "../../actors/ActorRef.js"
import * as ExitReason from "../../actors/ExitReason.js"
import type * as PubSub from "../../actors/PubSub.js"
import * as Backoff from "../../supervisors/Backoff.js"
import * as LinkEvent from "../LinkEvent.js"
import * as SampleColumns from "../SampleColumns.js"
import * as StopLatch from "../StopLatch.js"
import * as Watchdog from "../Watchdog.js"
import * as ArmSample from "./ArmSample.js"
import * as RmiClient from "./RmiClient.js"
import type { RmiCommandError, RmiInstructionError } from "./RmiError.js"
import type * as RmiPacket from "./RmiPacket.js"

/** Options of one arm's link. */
export interface RmiLinkOptions {
  /** The robot's id in the fleet, e.g. `arm-1` (no `/`: that is how AGV ids look). */
  readonly id: string
  readonly host: string
  /** The controller's connect port; default 16001. */
  readonly port?: number | undefined
  /** Polls per second of status, position and joints, 10–125; default 10, what real deployments use. */
  readonly pollHz?: number | undefined
  /** Where link events are published. */
  readonly hub: PubSub.PubSub
  /** Each handshake step; default 5 seconds. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** Each command's reply; default 5 seconds. */
  readonly replyTimeout?: Duration.DurationInput | undefined
  /**
   * How long the arm may go without answering a poll before the link gives up on the
   * connection; default 20 poll periods, at least 1 second.
   */
  readonly silenceDeadline?: Duration.DurationInput | undefined
  /** The fleet's emergency-stop latches; default: a table of this link's own, in memory. */
  readonly latches?: StopLatch.Latches | undefined
  /**
   * The delay before each new session after one ended or could not open; default 200 ms
   * doubling to 10 s (± 20 %), from the start again after a session that lasted `resetAfter`.
   */
  readonly reconnect?: Backoff.Backoff | undefined
  /** The arm's slot in the fleet's sample columns, where its polls are written; none: each poll is an event. */
  readonly samples?: ArmSample.ArmSlot | undefined
}

/** The default delays between sessions: 200 ms doubling to 10 s. */
export const defaultReconnect: Backoff.Backoff = Backoff.exponential({ min: "200 millis", max: "10 seconds" })

/** The link has no session with the controller now (connecting, or between sessions). */
export class RmiNotConnected extends Data.TaggedError("RmiNotConnected")<{ readonly robot: string }> {}

/** The arm answered nothing for longer than the link's silence deadline. */
export class RmiLinkSilent extends Data.TaggedError("RmiLinkSilent")<{
  readonly robot: string
  readonly silentForMillis: number
}> {
  override get message() {
    return `${this.robot} was silent for ${this.silentForMillis} ms`
  }
}

/** What an operation or an emergency stop can fail with. */
export type OperationError = RmiCommandError | RmiNotConnected

/** What a motion can fail with. */
export type MotionError = RmiInstructionError | RmiNotConnected | StopLatch.LinkLatched

/**
 * Program control: FRC_Pause, FRC_Continue, FRC_Abort, or `Reset`: FRC_Reset (which ends a
 * sequence-gap HOLD; SequenceIDs continue from the controller's `NextSequenceID`), then
 * FRC_Initialize if the program was aborted (after an emergency stop).
 */
export type Operation = "Pause" | "Continue" | "Abort" | "Reset"

/** Runs a motion; the reply comes when it has finished executing. */
export interface Instruct {
  readonly _tag: "Instruct"
  readonly instruction: RmiPacket.InstructionBody
  readonly reply?: Reply<RmiPacket.InstructionReply, MotionError> | undefined
}

/** Runs a program-control command. */
export interface Operate {
  readonly _tag: "Operate"
  readonly operation: Operation
  readonly reply?: Reply<void, OperationError | StopLatch.LinkLatched> | undefined
}

/**
 * Stops the arm now (FRC_Abort) and latches it; send it with `tellUrgent`. The reply comes
 * once the controller answered the abort (`reached`), or at once when there is no session.
 */
export interface EmergencyStop {
  readonly _tag: "EmergencyStop"
  /** Who stopped it, for the latch. */
  readonly by?: string | undefined
  readonly reply?: Reply<StopLatch.StopOutcome> | undefined
}

/** What the link knows now. */
export interface RmiLinkInfo {
  readonly robot: string
  readonly connected: boolean
  /** Latched by an emergency stop: motion is refused until a `Reset`. */
  readonly stopped: boolean
  /** Replies to instructions an abort had cancelled, ignored since the link started. */
  readonly cancelledReplies: number
  /** Instructions sent and unanswered, and queued in the link. */
  readonly pending: { readonly sent: number; readonly queued: number }
  readonly last: LinkEvent.ArmTelemetry | undefined
  /** Sessions opened since the link started. */
  readonly sessions: number
  /** Sessions that ended, and attempts that could not open one, since the link started. */
  readonly lost: number
  /** Why the last session ended (or could not open), while there is none. */
  readonly reason: string | undefined
}

/** Asks for {@link RmiLinkInfo}. */
export interface GetInfo {
  readonly _tag: "GetInfo"
  readonly reply: Reply<RmiLinkInfo>
}

class Connected {
  readonly _tag = "Connected"
  constructor(readonly client: RmiClient.RmiClient, readonly session: number) {}
}
class Polled {
  readonly _tag = "Polled"
  constructor(readonly telemetry: LinkEvent.ArmTelemetry, readonly session: number) {}
}
class ControllerEvent {
  readonly _tag = "ControllerEvent"
  constructor(readonly event: RmiClient.RmiEvent, readonly errorText: string | undefined) {}
}
/** Session `session` ended, or could not open; the loop opens the next one after its backoff. */
class Lost {
  readonly _tag = "Lost"
  constructor(readonly error: RmiCommandError | RmiLinkSilent, readonly session: number) {}
}

/** The loop of sessions died of a defect: a bug, which crashes the link. */
class SessionsDied {
  readonly _tag = "SessionsDied"
  constructor(readonly cause: Cause.Cause<unknown>) {}
}

/** What an arm link accepts. `Connected`, `Polled`, `ControllerEvent`, `Lost` and `SessionsDied` are its own. */
export type RmiLinkMessage =
  | Instruct
  | Operate
  | EmergencyStop
  | GetInfo
  | LinkEvent.Announce
  | Connected
  | Polled
  | ControllerEvent
  | Lost
  | SessionsDied

/** An `Instruct` message for `ask`. */
export const instruct = (instruction: RmiPacket.InstructionBody) =>
(reply: Reply<RmiPacket.InstructionReply, MotionError>): RmiLinkMessage => ({ _tag: "Instruct", instruction, reply })

/** An `Operate` message for `ask`. */
export const operate = (operation: Operation) => (reply: Reply<void, OperationError | StopLatch.LinkLatched>): RmiLinkMessage => ({
  _tag: "Operate",
  operation,
  reply
})

/** An emergency stop to `tellUrgent`, or (with a reply) to `ask` with `{ urgent: true }`. */
export const emergencyStop = (reply?: Reply<StopLatch.StopOutcome>): RmiLinkMessage => ({ _tag: "EmergencyStop", reply })

/** An emergency stop by `by`, to `ask` with `{ urgent: true }`. */
export const emergencyStopBy = (by: string) => (reply: Reply<StopLatch.StopOutcome>): RmiLinkMessage => ({
  _tag: "EmergencyStop",
  by,
  reply
})

/** A `GetInfo` message for `ask`. */
export const getInfo = (reply: Reply<RmiLinkInfo>): RmiLinkMessage => ({ _tag: "GetInfo", reply })

interface State {
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>
  readonly latches: StopLatch.Latches
  client: RmiClient.RmiClient | undefined
  /** The number of the open session (the latest one that connected). */
  session: number
  last: LinkEvent.ArmTelemetry | undefined
  sessions: number
  lost: number
  /** Why there is no session now; published once per change, not once per attempt. */
  reason: string | undefined
}

const programStatus = (status: number): LinkEvent.ArmTelemetry["programStatus"] =>
  status === 0 ? "running" : status === 1 ? "paused" : "aborted"

/**
 * One session: opens it, then polls and forwards controller events until the connection fails
 * or the arm falls silent, and returns why it ended. Everything it opened closes with it.
 */
const session = (
  options: RmiLinkOptions,
  latches: StopLatch.Latches,
  self: ActorRef<RmiLinkMessage>,
  number: number,
  opened: () => void
): Effect.Effect<RmiCommandError | RmiLinkSilent> =>
  Effect.scoped(Effect.gen(function*() {
    const pollHz = Math.min(125, Math.max(10, options.pollHz ?? 10))
    const period = Duration.millis(1000 / pollHz)
    const deadline = options.silenceDeadline ?? Duration.millis(Math.max(1000, 20 * Duration.toMillis(period)))
    const client = yield* RmiClient.connect({
      host: options.host,
      port: options.port,
      connectTimeout: options.connectTimeout,
      replyTimeout: options.replyTimeout,
      // A latched arm's RMI program is not started again by a reconnect: only a Reset does that.
      initialize: latches.get(options.id) === undefined
    })
    opened()
    const events = yield* client.subscribe
    const silent = yield* Deferred.make<never, RmiLinkSilent>()
    const watchdog = yield* Watchdog.start(deadline, (silentForMillis) =>
      Deferred.unsafeDone(silent, Exit.fail(new RmiLinkSilent({ robot: options.id, silentForMillis }))))
    self.unsafeTellUrgent(new Connected(client, number))

    const samples = options.samples
    let told: LinkEvent.ArmTelemetry | undefined
    const poll = Effect.gen(function*() {
      const status = yield* client.readStatus
      const cartesian = yield* client.readCartesianPosition
      const joints = yield* client.readJointAngles
      watchdog.heard()
      const reading: LinkEvent.ArmTelemetry = {
        _tag: "ArmTelemetry",
        robot: options.id,
        at: Date.now(),
        programStatus: programStatus(status.ProgramStatus),
        servoReady: status.ServoReady === 1,
        tpMode: status.TPMode === 1,
        override: status.Override,
        moving: status.RMIMotionStatus !== 0,
        position: cartesian.Position,
        joints: joints.JointAngle,
        timeTag: cartesian.TimeTag
      }
      if (samples !== undefined) {
        ArmSample.write(samples, reading)
        if (!ArmSample.statusChanged(told, reading)) return
      }
      told = reading
      self.unsafeTell(new Polled(reading, number))
    }).pipe(Effect.catchAll(() => Effect.void)) // a refusal or a timeout: the watchdog judges silence
    yield* Effect.forkScoped(Effect.repeat(poll, Schedule.fixed(period)))

    const forward = Effect.gen(function*() {
      const event = yield* Queue.take(events)
      const errorText = event.Communication === "FRC_SystemFault"
        ? yield* client.command({ Command: "FRC_ReadError", Count: 1 }).pipe(
          Effect.map((reply) => reply.ErrorData),
          Effect.orElseSucceed(() => undefined)
        )
        : undefined
      self.unsafeTellUrgent(new ControllerEvent(event, errorText))
    })
    yield* Effect.forkScoped(Effect.forever(forward))

    return yield* Effect.raceFirst(client.failure, Deferred.await(silent))
  })).pipe(Effect.flip)

/**
 * Sessions, one after another, for as long as the link runs: each one that ends (or cannot open)
 * is reported to the link (`Lost`), and the next one opens after the backoff.
 */
const sessions = (
  options: RmiLinkOptions,
  latches: StopLatch.Latches,
  self: ActorRef<RmiLinkMessage>
): Effect.Effect<never> => {
  const backoff = options.reconnect ?? defaultReconnect
  const resetAfter = Duration.toMillis(backoff.resetAfter)
  let attempt = 0
  const next = (number: number): Effect.Effect<never> =>
    Effect.suspend(() => {
      let openedAt: number | undefined
      return Effect.flatMap(session(options, latches, self, number, () => void (openedAt = Date.now())), (error) => {
        // Closing the scope of a stopping link closes the client too: that is no news.
        if (!self.isAlive()) return Effect.never
        self.unsafeTellUrgent(new Lost(error, number))
        attempt = openedAt !== undefined && Date.now() - openedAt >= resetAfter ? 1 : attempt + 1
        return Effect.zipRight(Effect.sleep(Duration.millis(Backoff.delayMillis(backoff, attempt, Math.random()))), next(number + 1))
      })
    })
  return next(1)
}

const notConnected = (options: RmiLinkOptions) => Exit.fail(new RmiNotConnected({ robot: options.id }))

/** The behaviour of one arm's link; see the module documentation. */
export const make = (options: RmiLinkOptions): Actor.Behaviour<RmiLinkMessage, State> => {
  const scratch = new Float64Array(SampleColumns.fieldCount)
  /** The latest status event with the latest sample's position: the arm as it is now. */
  const current = (last: LinkEvent.ArmTelemetry | undefined) =>
    last === undefined || options.samples === undefined ? last : ArmSample.current(options.samples, last, scratch)
  return Actor.make<RmiLinkMessage, State>({
    name: "rmi_link",
    init: (ctx) =>
      Effect.map(FiberSet.makeRuntime<never, unknown, unknown>(), (run) => {
        const latches = options.latches ?? StopLatch.memory()
        const self = ctx.self
        run(sessions(options, latches, self).pipe(
          Effect.catchAllCause((cause) =>
            Effect.sync(() => {
              if (self.isAlive() && !Cause.isInterruptedOnly(cause)) self.unsafeTellUrgent(new SessionsDied(cause))
            })
          )
        ))
        return { run, latches, client: undefined, session: 0, last: undefined, sessions: 0, lost: 0, reason: undefined }
      }),
    receive: (state, message) => {
      const client = state.client
      const latch = state.latches.get(options.id)
      switch (message._tag) {
        case "Polled":
          // A reading of a session that has ended since would show the arm as connected again.
          if (client === undefined || message.session !== state.session) return state
          state.last = message.telemetry
          LinkEvent.unsafePublish(options.hub, message.telemetry)
          return state
        case "Instruct": {
          if (latch !== undefined) {
            message.reply?.fail(StopLatch.LinkLatched.of(latch))
          } else if (client === undefined) {
            message.reply?.complete(notConnected(options))
          } else {
            state.run(Effect.tap(Effect.exit(client.instruction(message.instruction)), (exit) => {
              if (message.reply !== undefined) return message.reply.complete(exit)
              // Nobody waits for a told motion: a refusal is raised where the dashboard sees it.
              if (Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag === "RmiRejected") {
                const error = exit.cause.error
                LinkEvent.unsafePublish(options.hub, {
                  _tag: "Alarm",
                  robot: options.id,
                  kind: "arm",
                  code: error.code,
                  level: "warning",
                  message: error.message,
                  at: Date.now()
                })
              }
            }))
          }
          return state
        }
        case "Operate": {
          if (latch !== undefined && message.operation === "Continue") {
            message.reply?.fail(StopLatch.LinkLatched.of(latch))
            return state
          }
          if (client === undefined) {
            message.reply?.complete(notConnected(options))
            return state
          }
          const command = operations[message.operation](client)
          if (message.operation === "Reset") {
            state.run(Effect.tap(Effect.exit(command), (exit) => {
              if (Exit.isSuccess(exit)) {
                state.latches.clear(options.id)
                LinkEvent.unsafePublish(options.hub, { _tag: "Cleared", robot: options.id, kind: "arm", at: Date.now() })
              }
              message.reply?.complete(exit)
            }))
          } else {
            state.run(Effect.tap(Effect.exit(command), (exit) => message.reply?.complete(exit)))
          }
          return state
        }
        case "EmergencyStop": {
          const by = message.by ?? latch?.by ?? "link"
          state.latches.latch(options.id, "arm", by)
          const now = Date.now()
          LinkEvent.unsafePublish(options.hub, { _tag: "EmergencyStopped", robot: options.id, kind: "arm", at: now, by })
          if (client === undefined) {
            message.reply?.succeed({ reached: false, dropped: 0 })
            return state
          }
          const { queued, sent } = Effect.runSync(client.pending)
          const dropped = queued + sent
          if (dropped > 0) {
            LinkEvent.unsafePublish(options.hub, {
              _tag: "Alarm",
              robot: options.id,
              kind: "arm",
              code: "MOTION-DROPPED",
              level: "warning",
              message: `the emergency stop dropped ${dropped} motion${dropped === 1 ? "" : "s"} that had been accepted`,
              at: now
            })
          }
          state.run(Effect.tap(Effect.exit(client.abort), (exit) => {
            if (Exit.isFailure(exit)) {
              LinkEvent.unsafePublish(options.hub, {
                _tag: "Alarm",
                robot: options.id,
                kind: "arm",
                code: "STOP-FAILED",
                level: "fatal",
                message: `FRC_Abort failed: ${Cause.squash(exit.cause)}; the arm stays latched`,
                at: Date.now()
              })
            }
            message.reply?.succeed({ reached: Exit.isSuccess(exit), dropped })
          }))
          return state
        }
        case "GetInfo":
          message.reply.succeed({
            robot: options.id,
            connected: client !== undefined,
            stopped: latch !== undefined,
            cancelledReplies: client === undefined ? 0 : Effect.runSync(client.cancelledReplies),
            pending: client === undefined ? { sent: 0, queued: 0 } : Effect.runSync(client.pending),
            last: current(state.last),
            sessions: state.sessions,
            lost: state.lost,
            reason: client === undefined ? state.reason : undefined
          })
          return state
        case "Announce":
          LinkEvent.unsafePublish(
            options.hub,
            client === undefined
              ? {
                _tag: "LinkDown",
                robot: options.id,
                kind: "arm",
                status: "disconnected",
                reason: state.reason ?? "connecting",
                at: Date.now()
              }
              : { _tag: "LinkUp", robot: options.id, kind: "arm", at: Date.now() }
          )
          if (state.last !== undefined && client !== undefined) LinkEvent.unsafePublish(options.hub, current(state.last)!)
          return state
        case "Connected":
          state.client = message.client
          state.session = message.session
          state.sessions++
          state.reason = undefined
          LinkEvent.unsafePublish(options.hub, { _tag: "LinkUp", robot: options.id, kind: "arm", at: Date.now() })
          // Whatever the controller was doing while the link was away, a latched arm stays stopped.
          if (latch !== undefined) state.run(Effect.ignore(message.client.abort))
          return state
        case "ControllerEvent": {
          const event = message.event
          const alarm = event.Communication === "FRC_SystemFault"
            ? {
              code: message.errorText?.split(" ")[0] || "FRC_SystemFault",
              level: "fatal" as const,
              message: `program paused on instruction ${event.SequenceID}${message.errorText ? `: ${message.errorText}` : ""}`
            }
            : { code: "FRC_Terminate", level: "warning" as const, message: "the controller ended the session" }
          LinkEvent.unsafePublish(options.hub, { _tag: "Alarm", robot: options.id, kind: "arm", at: Date.now(), ...alarm })
          return state
        }
        case "Lost": {
          // The robot's doing, not the link's: a status and an alarm, then the next session (after the backoff).
          const error = message.error
          const wasUp = client !== undefined && message.session === state.session
          if (wasUp) state.client = undefined
          state.lost++
          const at = Date.now()
          const alarm = error._tag === "RmiLinkSilent"
            ? { code: "LINK-SILENT", message: error.message }
            : error._tag === "RmiProtocolError"
            ? { code: "LINK-PROTOCOL", message: LogSampler.excerpt(error.message) }
            : undefined
          if (alarm !== undefined) {
            LinkEvent.unsafePublish(options.hub, { _tag: "Alarm", robot: options.id, kind: "arm", level: "warning", at, ...alarm })
          }
          const reason = LogSampler.excerpt(`${error._tag}: ${error.message}`)
          // Once per change: a controller that stays unreachable is not news at every attempt.
          if (wasUp || reason !== state.reason) {
            LinkEvent.unsafePublish(options.hub, { _tag: "LinkDown", robot: options.id, kind: "arm", status: "disconnected", reason, at })
          }
          state.reason = reason
          return state
        }
        case "SessionsDied":
          return Effect.failCause(message.cause)
      }
    },
    terminate: (_state, reason) =>
      LinkEvent.publish(options.hub, {
        _tag: "LinkDown",
        robot: options.id,
        kind: "arm",
        status: reason._tag === "Failure" || reason._tag === "Killed" ? "disconnected" : "offline",
        reason: ExitReason.format(reason),
        at: Date.now()
      })
  })
}

const operations: Record<Operation, (client: RmiClient.RmiClient) => Effect.Effect<void, RmiCommandError>> = {
  Pause: (client) => Effect.asVoid(client.command({ Command: "FRC_Pause" })),
  Continue: (client) => Effect.asVoid(client.command({ Command: "FRC_Continue" })),
  Abort: (client) => client.abort,
  Reset: (client) =>
    Effect.zipRight(
      client.reset,
      Effect.flatMap(client.readStatus, (status) => (status.ProgramStatus === 2 ? client.initialize : Effect.void))
    )
}
