/**
 * A simulated FANUC controller speaking RMI over real TCP: an {@link RmiController} behind
 * two listening ports, with a clock that moves the robot, and faults on demand for tests.
 *
 * - The connect port (16001 by default, 0 for an ephemeral one) answers FRC_Connect with
 *   the session port and then drops the connection, as the controller does.
 * - The session port (ephemeral by default; 16002 on a real controller) serves one remote
 *   device at a time. While a session is open, FRC_Connect on the connect port, and the
 *   first packet of any other connection on the session port, are refused with RMIT-026.
 * - Robot time runs `timeScale` times faster than wall time, so tests need not wait for
 *   real motion. The session ends with FRC_Terminate after `idleTimeout` without a packet.
 * - FRC_Abort is answered, then, on the same connection, the instruction it interrupted
 *   (`ErrorID` 0), as a real controller does; the queued instructions it dropped are never
 *   answered.
 * - When the session ends the RMI program is aborted; the robot stays where it stopped.
 * - Its stats count what a strict controller would hold against a remote device:
 *   `motionsAfterAbort`, instructions accepted after FRC_Abort without FRC_Reset since, even
 *   across sessions and after FRC_Initialize.
 *
 * Everything lives in the scope: closing it stops the clock and closes both ports and every
 * connection.
 */
import * as net from "node:net"
import { Clock, Data, Duration, Effect, FiberSet, Queue, Schedule, Scope } from "effect"
import * as ErrorCode from "./RmiErrorCode.js"
import * as LineSocket from "./LineSocket.js"
import { RmiController, type ControllerSnapshot, type ControllerStats } from "./RmiController.js"
import * as RmiPacket from "./RmiPacket.js"

/** Options of a simulator; every one has a default. */
export interface RmiSimulatorOptions {
  /** Address to listen on; default `127.0.0.1`. */
  readonly host?: string
  /** The connect port; default 16001, the controller's. 0 picks a free one. */
  readonly port?: number
  /** The session port announced in FRC_Connect replies; default 0 (a free one), so simulators can run side by side. */
  readonly sessionPort?: number
  /** How many times faster than wall time the robot moves; default 1. Tests use 2–10. */
  readonly timeScale?: number
  /** A session without any packet for this long gets FRC_Terminate; default 60 minutes, the controller's default. */
  readonly idleTimeout?: Duration.DurationInput
  /**
   * Updates the robot's position on a fixed period (e.g. 8 ms, the rate of the manual's polling
   * example) instead of when it matters. By default the simulator sleeps until something is due
   * (a motion's end, a stall's end, the idle timeout) and brings the robot up to the moment of
   * each packet it reads, so a simulator nobody moves costs nothing and one that moves wakes
   * only when asked or when a motion ends.
   */
  readonly tickInterval?: Duration.DurationInput
  /** Longest accepted line in bytes; default 64 KiB. */
  readonly maxLineLength?: number
  /** Where the tool starts; default `RobotModel.HomePosition`. */
  readonly position?: RmiPacket.Position
}

/** Counters of the controller plus those of its ports. */
export interface SimulatorStats extends ControllerStats {
  /** TCP connections accepted on either port. */
  readonly connectionsAccepted: number
  /** Sessions that were opened on the session port. */
  readonly sessionsOpened: number
}

/** The robot and RMI program state, and whether a remote device is connected. */
export interface SimulatorSnapshot extends ControllerSnapshot {
  readonly connected: boolean
}

/**
 * Faults to inject into the open session; each is a no-op when no session is open. They
 * are what a real network and controller do to a link now and then.
 */
export interface RmiSimulatorFaults {
  /** Destroys the session connection at once, as a pulled cable or a controller reboot does. */
  readonly dropConnection: Effect.Effect<void>
  /** Holds every reply for `duration`, then sends them all: a controller that stops answering for a while. */
  readonly stall: (duration: Duration.DurationInput) => Effect.Effect<void>
  /** Sends a line that is not JSON. */
  readonly sendGarbage: Effect.Effect<void>
  /** Sends `packet` cut into pieces of `pieceSize` bytes, each written on its own a millisecond apart. */
  readonly sendInPieces: (packet: RmiPacket.Reply, pieceSize?: number) => Effect.Effect<void>
  /** Sends `size` bytes that never end in `\r\n`. */
  readonly sendUnterminated: (size: number) => Effect.Effect<void>
  /** Sends one properly terminated line of `size` bytes (default 1 MiB). */
  readonly sendHugeLine: (size?: number) => Effect.Effect<void>
  /** Sends bytes as they are. */
  readonly sendRaw: (bytes: string | Uint8Array) => Effect.Effect<void>
  /** Pauses the program and sends FRC_SystemFault naming `sequenceId` (by default the running instruction). */
  readonly systemFault: (sequenceId?: number) => Effect.Effect<void>
  /** Ends the session with FRC_Terminate at once, as the idle timeout does. */
  readonly terminate: Effect.Effect<void>
  /** Makes the controller expect a later SequenceID, so the next instruction looks like a gap. */
  readonly skipSequenceIds: (count: number) => Effect.Effect<void>
}

/** A running simulator. */
export interface RmiSimulator {
  readonly host: string
  /** The connect port it listens on (the real one when 0 was asked for). */
  readonly port: number
  /** The session port announced in FRC_Connect replies. */
  readonly sessionPort: number
  /** The robot and RMI program state now. */
  readonly snapshot: Effect.Effect<SimulatorSnapshot>
  /** Counters since the simulator started. */
  readonly stats: Effect.Effect<SimulatorStats>
  /** Fault injection into the open session. */
  readonly faults: RmiSimulatorFaults
}

/** A port could not be opened. */
export class SimulatorListenError extends Data.TaggedError("SimulatorListenError")<{
  readonly port: number
  readonly message: string
}> {}

/** The RMI protocol version the simulator announces (R-30iB Plus, RMI 7.0). */
const Version = { major: 7, minor: 0 }

/** How long a connection that is not the session may stay silent before it is closed. */
const FirstPacketTimeout = Duration.seconds(5)

interface Session {
  readonly connection: LineSocket.LineSocket
  lastPacketAt: number
  stalledUntil: number
  held: Array<string>
  ending: boolean
}

/** Starts a simulator; it runs until the scope closes. */
export const make = (options?: RmiSimulatorOptions): Effect.Effect<RmiSimulator, SimulatorListenError, Scope.Scope> =>
  Effect.gen(function*() {
    const host = options?.host ?? "127.0.0.1"
    const timeScale = options?.timeScale ?? 1
    const idleTimeout = Duration.toMillis(options?.idleTimeout ?? Duration.minutes(60))
    const lineOptions = { maxLineLength: options?.maxLineLength }
    const controller = new RmiController({ position: options?.position })
    const counters = { connectionsAccepted: 0, sessionsOpened: 0 }
    let session: Session | undefined

    const send = (target: Session, packet: RmiPacket.Reply) => {
      const line = RmiPacket.encode(packet)
      if (target.stalledUntil > 0) target.held.push(line)
      else target.connection.write(line)
    }

    const refuse = (connection: LineSocket.LineSocket, refusal: RmiPacket.Rejected) => {
      controller.countRefusal(refusal.ErrorID)
      connection.write(RmiPacket.encode(refusal))
    }

    const run = yield* FiberSet.makeRuntime<never, void, never>()
    const accept = (handle: (connection: LineSocket.LineSocket) => Effect.Effect<void, unknown, Scope.Scope>) =>
      (socket: net.Socket) => {
        counters.connectionsAccepted++
        run(Effect.scoped(Effect.flatMap(LineSocket.fromSocket(socket, lineOptions), handle)).pipe(Effect.ignore))
      }

    /** The open session: packets go to the controller until FRC_Disconnect or the end of the connection. */
    const serve = (current: Session) =>
      Effect.gen(function*() {
        for (;;) {
          const [lines, done] = yield* current.connection.lines.takeAll
          step(yield* Clock.currentTimeMillis)
          for (const line of lines) {
            current.lastPacketAt = yield* Clock.currentTimeMillis
            const request = RmiPacket.decodeRequest(line)
            if (request._tag === "Left") {
              refuse(current.connection, refusalOf(request.left))
            } else if (!("Communication" in request.right)) {
              const reply = controller.receive(request.right)
              if (reply !== undefined) send(current, reply)
              for (const late of controller.takeReplies()) send(current, late)
            } else if (request.right.Communication === "FRC_Disconnect") {
              return send(current, { Communication: "FRC_Disconnect", ErrorID: 0 })
            } else {
              refuse(current.connection, alreadyConnected("Communication", "FRC_Connect"))
            }
          }
          wakeIfSooner(yield* Clock.currentTimeMillis)
          if (done) return
        }
      })

    /** A connection on the session port: it becomes the session, unless one is open. */
    const admit = (connection: LineSocket.LineSocket) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        if (session !== undefined) {
          const request = RmiPacket.decodeRequest(yield* firstLine(connection))
          return refuse(
            connection,
            request._tag === "Right"
              ? alreadyConnected(RmiPacket.kindOf(request.right), RmiPacket.nameOf(request.right))
              : alreadyConnected("Command", "Unknown")
          )
        }
        const current: Session = { connection, lastPacketAt: now, stalledUntil: 0, held: [], ending: false }
        session = current
        counters.sessionsOpened++
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            session = undefined
            controller.endSession()
          })
        )
        yield* serve(current)
      })

    const sessionPort = boundPort(yield* listen(host, options?.sessionPort ?? 0, accept(admit)))

    /** A connection on the connect port: FRC_Connect is answered with the session port, then dropped. */
    const greet = (connection: LineSocket.LineSocket) =>
      Effect.gen(function*() {
        const request = RmiPacket.decodeRequest(yield* firstLine(connection))
        if (request._tag === "Left") return refuse(connection, refusalOf(request.left))
        const packet = request.right
        if (!("Communication" in packet) || packet.Communication !== "FRC_Connect") {
          const [kind, name] = [RmiPacket.kindOf(packet), RmiPacket.nameOf(packet)]
          return refuse(connection, RmiPacket.rejected(kind, name, ErrorCode.ErrorId.InvalidCommand))
        }
        if (session !== undefined) return refuse(connection, alreadyConnected("Communication", "FRC_Connect"))
        connection.write(RmiPacket.encode({
          Communication: "FRC_Connect",
          ErrorID: 0,
          PortNumber: sessionPort,
          MajorVersion: Version.major,
          MinorVersion: Version.minor
        }))
      })

    const port = boundPort(yield* listen(host, options?.port ?? 16001, accept(greet)))

    const terminate = (current: Session) => {
      if (current.ending) return
      current.ending = true
      current.stalledUntil = 0
      current.connection.write(current.held.join("") + RmiPacket.encode({ Communication: "FRC_Terminate" }))
      current.connection.end()
    }

    let lastTick = yield* Clock.currentTimeMillis
    /** Brings the robot up to `now`: sends the replies of what finished, ends a stall that is over, terminates an idle session. */
    const step = (now: number) => {
      const finished = controller.advance(Math.max(0, now - lastTick) * timeScale)
      lastTick = Math.max(lastTick, now)
      const current = session
      if (current === undefined) return
      for (const reply of finished) send(current, reply)
      if (current.stalledUntil > 0 && now >= current.stalledUntil) {
        current.stalledUntil = 0
        current.connection.write(current.held.join(""))
        current.held = []
      }
      if (now - current.lastPacketAt > idleTimeout) terminate(current)
    }
    /** When `step` next has something to do, wall-clock ms. */
    const nextDue = (now: number) => {
      let due = now + 1_000
      const motion = controller.untilNextEvent()
      if (motion !== undefined) due = Math.min(due, now + motion / timeScale)
      const current = session
      if (current !== undefined) {
        if (current.stalledUntil > 0) due = Math.min(due, current.stalledUntil)
        due = Math.min(due, current.lastPacketAt + idleTimeout + 1)
      }
      return due
    }
    // A packet read may start a motion or a stall: it wakes the loop when that makes it due sooner.
    const wake = yield* Queue.sliding<void>(1)
    let sleepingUntil = Infinity
    const wakeIfSooner = (now: number) => {
      if (nextDue(now) < sleepingUntil) wake.unsafeOffer(undefined)
    }
    if (options?.tickInterval !== undefined) {
      yield* Effect.sync(() => step(Date.now())).pipe(
        Effect.repeat(Schedule.spaced(options.tickInterval)),
        Effect.forkScoped
      )
    } else {
      yield* Effect.gen(function*() {
        for (;;) {
          const now = yield* Clock.currentTimeMillis
          step(now)
          const wait = Math.max(1, Math.ceil(nextDue(now) - now))
          sleepingUntil = now + wait
          yield* Effect.raceFirst(Effect.sleep(Duration.millis(wait)), Queue.take(wake))
          sleepingUntil = Infinity
        }
      }).pipe(Effect.forkScoped)
    }

    const withSession = (f: (current: Session) => void | Effect.Effect<void>): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (session === undefined) return Effect.void
        return f(session) ?? Effect.void
      })

    const faults: RmiSimulatorFaults = {
      dropConnection: withSession((current) => current.connection.destroy()),
      stall: (duration) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          withSession((current) => {
            current.stalledUntil = now + Duration.toMillis(duration)
            wakeIfSooner(now)
          })),
      sendGarbage: withSession((current) => current.connection.write("\u0000\u00ff}{ not a packet\r\n")),
      sendInPieces: (packet, pieceSize = 1) =>
        withSession((current) =>
          Effect.forEach(
            chunks(RmiPacket.encode(packet), pieceSize),
            (piece) => Effect.zipRight(Effect.sync(() => current.connection.write(piece)), Effect.sleep("1 millis")),
            { discard: true }
          )
        ),
      sendUnterminated: (size) => withSession((current) => current.connection.write("x".repeat(size))),
      sendHugeLine: (size = 1024 * 1024) =>
        withSession((current) => current.connection.write(`{"Command":"${"x".repeat(Math.max(0, size - 14))}"}\r\n`)),
      sendRaw: (bytes) => withSession((current) => current.connection.write(bytes)),
      systemFault: (sequenceId) => withSession((current) => send(current, controller.systemFault(sequenceId))),
      terminate: withSession(terminate),
      skipSequenceIds: (count) => Effect.sync(() => controller.skipSequenceIds(count))
    }

    return {
      host,
      port,
      sessionPort,
      snapshot: Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sync(() => {
          step(now)
          return { ...controller.snapshot(), connected: session !== undefined }
        })),
      stats: Effect.sync(() => ({ ...controller.stats(), ...counters })),
      faults
    }
  })

/**
 * Runs one simulator until interrupted, logging where it listens: the body of a command
 * line tool. For several robots, run several with consecutive ports in one process.
 */
export const runSimulator = (options?: RmiSimulatorOptions): Effect.Effect<never, SimulatorListenError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const simulator = yield* make(options)
      yield* Effect.logInfo("RMI simulator listening").pipe(
        Effect.annotateLogs({ host: simulator.host, port: simulator.port, sessionPort: simulator.sessionPort })
      )
      return yield* Effect.never
    })
  )

const firstLine = (connection: LineSocket.LineSocket) => connection.lines.take.pipe(Effect.timeout(FirstPacketTimeout))

const alreadyConnected = (kind: RmiPacket.PacketKind, name: string) =>
  RmiPacket.rejected(kind, name, ErrorCode.ErrorId.AlreadyConnected)

/** The refusal a controller sends for a line it could not decode. */
const refusalOf = (error: RmiPacket.RmiDecodeError): RmiPacket.Rejected => {
  const { kind, name, sequenceId } = error
  switch (error.reason) {
    case "NotJson":
    case "BadFirstKey":
      return RmiPacket.rejected("Command", "Unknown", ErrorCode.ErrorId.InvalidTextString)
    case "UnknownName":
      return RmiPacket.rejected(
        "Command",
        "Unknown",
        kind === "Instruction" ? ErrorCode.ErrorId.InvalidInstruction
          : kind === "Command" ? ErrorCode.ErrorId.InvalidCommand
          : ErrorCode.ErrorId.InvalidTextString
      )
    case "InvalidFields":
      return kind === "Instruction"
        ? RmiPacket.rejected("Instruction", name!, ErrorCode.ErrorId.InvalidInstructionPacket, sequenceId)
        : RmiPacket.rejected(kind!, name!, ErrorCode.ErrorId.InvalidValue)
  }
}

const chunks = (text: string, size: number): Array<string> =>
  Array.from({ length: Math.ceil(text.length / size) }, (_, i) => text.slice(i * size, (i + 1) * size))

const boundPort = (server: net.Server): number => (server.address() as net.AddressInfo).port

/** A listening TCP server whose connections go to `onSocket`; closing the scope closes it and every connection. */
const listen = (
  host: string,
  portNumber: number,
  onSocket: (socket: net.Socket) => void
): Effect.Effect<net.Server, SimulatorListenError, Scope.Scope> => {
  const sockets = new Set<net.Socket>()
  return Effect.acquireRelease(
    Effect.async<net.Server, SimulatorListenError>((resume) => {
      const server = net.createServer((socket) => {
        sockets.add(socket)
        socket.once("close", () => sockets.delete(socket))
        onSocket(socket)
      })
      server.once("error", (error) =>
        resume(Effect.fail(new SimulatorListenError({ port: portNumber, message: error.message }))))
      server.listen(portNumber, host, () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        for (const socket of sockets) socket.destroy()
      })
  )
}
