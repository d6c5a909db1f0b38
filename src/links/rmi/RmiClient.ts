/**
 * A connection to one FANUC controller over RMI: the handshake, commands, instructions and
 * the controller's unsolicited packets, as Effects. It is the layer under the robot link
 * actor, which owns one client and is restarted by its supervisor when the client fails.
 *
 * - {@link connect} sends FRC_Connect to the connect port, reconnects on the port the
 *   controller names, and sends FRC_Initialize (unless told not to, for an arm whose
 *   emergency stop must hold until an operator resets it). The connection lives in the
 *   caller's scope; closing it sends FRC_Disconnect (best effort) and closes the socket.
 * - {@link RmiClient.command} sends one command at a time (callers wait their turn) and fails
 *   with {@link RmiReplyTimeout} when no reply comes in time.
 * - {@link RmiClient.instruction} numbers instructions itself and keeps at most 8 unanswered,
 *   queueing the rest; each call completes when its instruction has finished executing.
 * - After FRC_Abort the controller still answers the instruction it was executing; that reply,
 *   to an instruction the client has already failed with `RmiAborted`, is ignored and counted
 *   ({@link RmiClient.cancelledReplies}). A reply to an instruction never sent is unexpected.
 * - A lost connection, an undecodable line or an unexpected reply kills the client: every
 *   pending and later call fails with the {@link RmiLinkError}, and {@link RmiClient.failure}
 *   fails with it, which is what the owner watches.
 */
import {
  Deferred,
  Duration,
  Effect,
  ExecutionStrategy,
  Exit,
  Mailbox,
  PubSub,
  type Queue,
  Schema,
  Scope,
  Stream
} from "effect"
import { InstructionWindow } from "./InstructionWindow.js"
import * as LineSocket from "./LineSocket.js"
import { MaxOutstanding } from "./RmiController.js"
import {
  type RmiCommandError,
  RmiConnectionLost,
  type RmiInstructionError,
  type RmiLinkError,
  RmiProtocolError,
  RmiRejected,
  RmiReplyTimeout
} from "./RmiError.js"
import * as RmiPacket from "./RmiPacket.js"

/** Options of a connection; only `host` is required. */
export interface RmiClientOptions {
  readonly host: string
  /** The controller's connect port; default 16001. */
  readonly port?: number
  /** How long each step of the handshake (TCP connect, FRC_Connect reply) may take; default 5 seconds. */
  readonly connectTimeout?: Duration.DurationInput
  /** How long a command may wait for its reply, its turn included; default 5 seconds. */
  readonly replyTimeout?: Duration.DurationInput
  /** Longest accepted line in bytes; default 64 KiB. */
  readonly maxLineLength?: number
  /** `GroupMask` of every FRC_Initialize; left out by default (group 1). */
  readonly groupMask?: number
  /**
   * Whether the handshake ends with FRC_Initialize; default true. When false the RMI program
   * stays as the controller has it (aborted, after the end of a previous session) and
   * instructions are refused (RMIT-009) until {@link RmiClient.initialize}.
   */
  readonly initialize?: boolean
}

/** A packet the controller sends on its own. */
export type RmiEvent = RmiPacket.SystemFault | RmiPacket.Terminate

/** A connected RMI session, initialized unless `initialize: false` was asked for. */
export interface RmiClient {
  /** The controller's FRC_Connect reply: session port and RMI version. */
  readonly connectReply: RmiPacket.ConnectReply
  /**
   * Sends a command and waits for its reply. FRC_Initialize and FRC_Abort also fail the
   * unfinished instructions with `RmiAborted`; FRC_Reset also brings the SequenceIDs back in
   * step with the controller (see {@link reset}).
   */
  readonly command: <C extends RmiPacket.Command>(
    command: C
  ) => Effect.Effect<RmiPacket.CommandReplyOf<C>, RmiCommandError>
  /**
   * Queues an instruction and waits until it has finished executing. The client assigns its
   * SequenceID. Interrupting the wait does not withdraw the instruction.
   */
  readonly instruction: (
    instruction: RmiPacket.InstructionBody
  ) => Effect.Effect<RmiPacket.InstructionReply, RmiInstructionError>
  /** FRC_GetStatus. */
  readonly readStatus: Effect.Effect<RmiPacket.StatusReply, RmiCommandError>
  /** FRC_ReadCartesianPosition. */
  readonly readCartesianPosition: Effect.Effect<RmiPacket.CartesianPositionReply, RmiCommandError>
  /** FRC_ReadJointAngles. */
  readonly readJointAngles: Effect.Effect<RmiPacket.JointAnglesReply, RmiCommandError>
  /** FRC_Initialize: (re)starts the RMI program; SequenceIDs start again at 1. Needed after `abort`. */
  readonly initialize: Effect.Effect<void, RmiCommandError>
  /** FRC_Abort: the robot stops, and every queued and unfinished instruction fails with `RmiAborted`. */
  readonly abort: Effect.Effect<void, RmiCommandError>
  /** Recovers from a sequence gap: FRC_Reset, then continue from FRC_GetStatus's `NextSequenceID`. */
  readonly reset: Effect.Effect<void, RmiCommandError>
  /** The controller's unsolicited packets from now on, until the scope closes. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<RmiEvent>, never, Scope.Scope>
  /** Instructions sent and unanswered, and queued in the client. */
  readonly pending: Effect.Effect<{ readonly sent: number; readonly queued: number }>
  /** How many late replies to instructions already failed by FRC_Abort or FRC_Initialize were ignored. */
  readonly cancelledReplies: Effect.Effect<number>
  /** Fails with the error that killed the link, once it dies; never succeeds. */
  readonly failure: Effect.Effect<never, RmiLinkError>
}

interface Waiting {
  readonly name: string
  readonly done: Deferred.Deferred<RmiPacket.Reply, RmiLinkError>
  /** Runs as the reply is read, in stream order, even if the caller gave up waiting. */
  readonly onReply?: (reply: RmiPacket.Reply) => void
}

/**
 * Opens a session with the controller at `options.host`; see the module documentation.
 * If any step fails, whatever was opened is closed before the error is returned.
 */
export const connect = (options: RmiClientOptions): Effect.Effect<RmiClient, RmiCommandError, Scope.Scope> =>
  Effect.flatMap(Effect.scope, (parent) =>
    Effect.flatMap(Scope.fork(parent, ExecutionStrategy.sequential), (scope) =>
      open(options).pipe(
        Scope.extend(scope),
        Effect.onExit((exit) => (Exit.isFailure(exit) ? Scope.close(scope, exit) : Effect.void))
      )))

const open = (options: RmiClientOptions): Effect.Effect<RmiClient, RmiCommandError, Scope.Scope> =>
  Effect.gen(function*() {
    const connectTimeout = Duration.decode(options.connectTimeout ?? Duration.seconds(5))
    const replyTimeout = Duration.decode(options.replyTimeout ?? Duration.seconds(5))
    const connectReply = yield* handshake(options, connectTimeout)

    const socket = yield* LineSocket.connect({
      host: options.host,
      port: connectReply.PortNumber,
      timeout: connectTimeout,
      maxLineLength: options.maxLineLength
    }).pipe(Effect.mapError((error) => new RmiConnectionLost({ reason: error.message })))

    const failed = yield* Deferred.make<never, RmiLinkError>()
    let failure: RmiLinkError | undefined
    let terminated = false
    const events = yield* PubSub.sliding<RmiEvent>(256)
    const waiting: Array<Waiting> = []
    const window = new InstructionWindow(MaxOutstanding, (instruction) => socket.write(RmiPacket.encode(instruction)))
    const turn = yield* Effect.makeSemaphore(1)

    const die = (error: RmiLinkError) =>
      Effect.suspend(() => {
        if (failure !== undefined) return Effect.void
        failure = error
        window.close(error)
        socket.destroy()
        return Effect.forEach(waiting.splice(0), ({ done }) => Deferred.fail(done, error)).pipe(
          Effect.zipRight(Deferred.fail(failed, error))
        )
      })
    yield* Effect.addFinalizer(() => die(new RmiConnectionLost({ reason: "the client was closed" })))

    const protocolError = (reason: string) => Effect.fail(new RmiProtocolError({ reason }))

    const dispatch = (line: string): Effect.Effect<void, RmiProtocolError> => {
      const decoded = RmiPacket.decodeReply(line)
      if (decoded._tag === "Left") return protocolError(decoded.left.message)
      const reply = decoded.right
      if ("Instruction" in reply) {
        return window.settle(reply) === "unknown"
          ? protocolError(`reply to unknown instruction ${reply.SequenceID}`)
          : Effect.void
      }
      if (isEvent(reply)) {
        terminated ||= reply.Communication === "FRC_Terminate"
        return PubSub.publish(events, reply)
      }
      const name = RmiPacket.nameOf(reply)
      const head = waiting[0]
      if (head === undefined || (head.name !== name && name !== "Unknown")) {
        return protocolError(`unexpected reply ${name}`)
      }
      waiting.shift()
      head.onReply?.(reply)
      return Deferred.succeed(head.done, reply)
    }

    yield* Mailbox.toStream(socket.lines).pipe(
      Stream.runForEach(dispatch),
      Effect.zipRight(Effect.suspend(() =>
        Effect.fail(
          new RmiConnectionLost({
            reason: terminated
              ? "the controller ended the session (FRC_Terminate)"
              : "the controller closed the connection"
          })
        )
      )),
      Effect.catchTags({
        LineSocketError: (error) => Effect.fail(new RmiConnectionLost({ reason: error.message })),
        LineTooLong: (error) => Effect.fail(new RmiProtocolError({ reason: `a line longer than ${error.limit} bytes` }))
      }),
      Effect.catchAll(die),
      Effect.forkScoped
    )

    /** One packet out, its reply back, one at a time; refusals become `RmiRejected`. */
    const exchange = <A extends RmiPacket.Reply>(
      packet: RmiPacket.Command | typeof RmiPacket.Disconnect.Type,
      timeout: Duration.Duration,
      onReply?: (reply: RmiPacket.Reply) => void
    ): Effect.Effect<A, RmiCommandError> => {
      const name = RmiPacket.nameOf(packet)
      return turn.withPermits(1)(
        Effect.gen(function*() {
          if (failure !== undefined) return yield* Effect.fail(failure)
          const done = yield* Deferred.make<RmiPacket.Reply, RmiLinkError>()
          waiting.push({ name, done, onReply })
          socket.write(RmiPacket.encode(packet))
          return yield* Deferred.await(done)
        })
      ).pipe(
        Effect.timeoutFail({ duration: timeout, onTimeout: () => new RmiReplyTimeout({ packet: name, timeout }) }),
        Effect.flatMap((reply) =>
          RmiPacket.isRejected(reply) ? Effect.fail(RmiRejected.of(name, reply.ErrorID)) : Effect.succeed(reply as A)
        )
      )
    }

    const ifAccepted = (f: () => void) => (reply: RmiPacket.Reply) => {
      if (!RmiPacket.isRejected(reply)) f()
    }

    const command = <C extends RmiPacket.Command>(packet: C) => {
      type Reply = RmiPacket.CommandReplyOf<C>
      switch (packet.Command) {
        case "FRC_Initialize":
          return Effect.suspend(() => {
            window.holdForInitialize()
            return exchange<Reply>(packet, replyTimeout, (reply) => {
              if (RmiPacket.isRejected(reply)) window.resume()
              else window.initialize()
            }).pipe(Effect.onError(() => Effect.sync(() => window.resume())))
          })
        case "FRC_Abort":
          return Effect.suspend(() => {
            window.abortQueued()
            return exchange<Reply>(packet, replyTimeout, ifAccepted(() => window.abortAll()))
          })
        case "FRC_Reset":
          return Effect.tap(exchange<Reply>(packet, replyTimeout), () =>
            Effect.map(exchange<RmiPacket.StatusReply>({ Command: "FRC_GetStatus" }, replyTimeout), (status) =>
              window.restart(status.NextSequenceID)
            ))
        default:
          return exchange<Reply>(packet, replyTimeout)
      }
    }

    yield* Effect.addFinalizer(() =>
      failure === undefined
        ? Effect.ignore(exchange({ Communication: "FRC_Disconnect" }, Duration.seconds(1)))
        : Effect.void
    )

    const initialize = Effect.asVoid(command({
      Command: "FRC_Initialize",
      ...(options.groupMask === undefined ? {} : { GroupMask: options.groupMask })
    }))
    if (options.initialize ?? true) yield* initialize

    return {
      connectReply,
      command,
      instruction: (instruction) =>
        Effect.flatMap(Deferred.make<RmiPacket.InstructionReply, RmiInstructionError>(), (done) => {
          window.submit(instruction, done)
          return Deferred.await(done)
        }),
      readStatus: command({ Command: "FRC_GetStatus" }),
      readCartesianPosition: command({ Command: "FRC_ReadCartesianPosition" }),
      readJointAngles: command({ Command: "FRC_ReadJointAngles" }),
      initialize,
      abort: Effect.asVoid(command({ Command: "FRC_Abort" })),
      reset: Effect.asVoid(command({ Command: "FRC_Reset" })),
      subscribe: PubSub.subscribe(events),
      pending: Effect.sync(() => window.size),
      cancelledReplies: Effect.sync(() => window.cancelledReplies),
      failure: Deferred.await(failed)
    }
  })

const isConnectReply = Schema.is(RmiPacket.ConnectReply)
const isEvent = Schema.is(Schema.Union(RmiPacket.SystemFault, RmiPacket.Terminate))

/** FRC_Connect on the connect port; the controller answers with the session port and drops the connection. */
const handshake = (
  options: RmiClientOptions,
  timeout: Duration.Duration
): Effect.Effect<RmiPacket.ConnectReply, RmiCommandError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const socket = yield* LineSocket.connect({
        host: options.host,
        port: options.port ?? 16001,
        timeout,
        maxLineLength: options.maxLineLength
      })
      socket.write(RmiPacket.encode({ Communication: "FRC_Connect" }))
      const line = yield* socket.lines.take.pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => new RmiReplyTimeout({ packet: "FRC_Connect", timeout })
        })
      )
      const reply = RmiPacket.decodeReply(line)
      if (reply._tag === "Left") return yield* new RmiProtocolError({ reason: reply.left.message })
      if (RmiPacket.isRejected(reply.right)) return yield* RmiRejected.of("FRC_Connect", reply.right.ErrorID)
      if (!isConnectReply(reply.right)) {
        return yield* new RmiProtocolError({ reason: `unexpected reply ${RmiPacket.nameOf(reply.right)}` })
      }
      return reply.right
    })
  ).pipe(
    Effect.catchTags({
      LineSocketError: (error) => Effect.fail(new RmiConnectionLost({ reason: error.message })),
      NoSuchElementException: () =>
        Effect.fail(new RmiConnectionLost({ reason: "the controller closed the connection during FRC_Connect" })),
      LineTooLong: (error) => Effect.fail(new RmiProtocolError({ reason: `a line longer than ${error.limit} bytes` }))
    })
  )
