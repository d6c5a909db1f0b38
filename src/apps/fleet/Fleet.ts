/**
 * The fleet as a service: what the dashboard RPCs (`FleetRpcs`) need, over the `fleet`
 * subtree of actors ({@link FleetTree}).
 *
 * - The view (every robot's latest state) is kept by the `fleet/state` actor, fed by the links
 *   over PubSub; this service asks it. What must outlive that actor is held here, above the
 *   `fleet` subtree: the lease table ({@link Leases}), the emergency-stop latches
 *   ({@link StopLatches}, also on disk), the roster of every robot heard of, and the sample
 *   columns ({@link SampleColumns}) where links' threads write what robots measure.
 * - Commands need the robot's control lease and pass {@link CommandLimits} first; they go to the
 *   robot's link actor (`robot:<id>` or `agv:<manufacturer>/<serial>` in the fleet registry).
 *   While a robot is latched, motion, orders and program starts are refused (`RobotStopped`),
 *   here and again in the link itself. With an `AuditLog`, every control action is recorded
 *   with who sent it and how it ended: acquire, renew, release, lost leases, commands, stops.
 * - The emergency stop needs no lease: it latches the robot, goes straight to the link's urgent
 *   lane (FRC_Abort for arms, startPause + cancelOrder for AGVs), then commits the latch to
 *   SQLite and answers which robots it reached and which it could only latch. With several
 *   nodes, an AGV whose link runs on another node is stopped from here all the same: its stop
 *   goes straight to the broker (`fleet/mqtt`), and its latch reaches the other nodes through
 *   the `latchExchange` (Redis) without the stop waiting for it.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { AlreadyRegistered, InitFailed } from "../../actors/ActorError.js"
import type { ActorRef, Reply } from "../../actors/ActorRef.js"
import { ActorSystem } from "../../actors/ActorSystem.js"
import type * as Backplane from "../../actors/Backplane.js"
import * as PubSub from "../../actors/PubSub.js"
import * as Registry from "../../actors/Registry.js"
import * as Remote from "../../actors/Remote.js"
import * as LinkEvent from "../../links/LinkEvent.js"
import * as Placement from "../../links/Placement.js"
import * as SampleColumns from "../../links/SampleColumns.js"
import * as RmiLink from "../../links/rmi/RmiLink.js"
import * as RmiPacket from "../../links/rmi/RmiPacket.js"
import type { StopOutcome } from "../../links/StopLatch.js"
import * as AgvLink from "../../links/vda5050/AgvLink.js"
import * as MqttLink from "../../links/vda5050/MqttLink.js"
import * as OfficialSchemas from "../../links/vda5050/OfficialSchemas.js"
import * as Order from "../../links/vda5050/Order.js"
import * as OrderId from "../../links/vda5050/OrderId.js"
import * as HeardHeaderIds from "../../links/vda5050/HeardHeaderIds.js"
import * as SharedHeaderIds from "../../links/vda5050/SharedHeaderIds.js"
import {
  CommandNotSupported,
  CommandRefused,
  ControlHeld,
  InvalidRequest,
  type Lease,
  NotController,
  RobotOffline,
  type RobotCommand,
  RobotStopped,
  type StopReport,
  UnknownRobot
} from "../../protocol/FleetRpcs.js"
import type { Backoff } from "../../supervisors/Backoff.js"
import * as ChildSpec from "../../supervisors/ChildSpec.js"
import * as DynamicSupervisor from "../../supervisors/DynamicSupervisor.js"
import { AuditLog } from "../../store/AuditLog.js"
import { StopLatchStore } from "../../store/StopLatchStore.js"
import type { StoreUnavailable } from "../../store/StoreUnavailable.js"
import { TelemetryLog, type TelemetryStats } from "../../store/TelemetryLog.js"
import * as CommandLimits from "./CommandLimits.js"
import { armLimitsOf, FleetConfig, type FleetSettings } from "./FleetConfig.js"
import * as ControlLoop from "./ControlLoop.js"
import * as FleetState from "./FleetState.js"
import * as NodeViews from "./NodeViews.js"
import * as FleetTree from "./FleetTree.js"
import * as FleetRemote from "./FleetRemote.js"
import * as Leases from "./Leases.js"
import * as SharedLeases from "./SharedLeases.js"
import * as StopChannel from "./StopChannel.js"
import * as StopLatches from "./StopLatches.js"

export type { FleetView } from "./FleetState.js"
export type { Holder } from "./Leases.js"

/** Who did something, for the audit log: the user, and their role and session when known. */
export interface Caller {
  readonly user: string
  readonly role?: string | undefined
  readonly session?: string | undefined
}

/** The PubSub hub the fleet publishes on: link events (`fleet`, `robot:<id>`) and views (`fleet/views`). */
export class FleetHub extends Context.Tag("fleetvisor/apps/fleet/FleetHub")<FleetHub, PubSub.PubSub>() {
  /** A hub of the fleet's own. */
  static readonly layer: Layer.Layer<FleetHub> = Layer.scoped(FleetHub, PubSub.make())
  /**
   * A hub of the fleet's own that shares the nodes' views (`NodeViews.Topic`, only that topic) with
   * the other nodes on `backplane`; `nodeId` is this node's cluster id, the backplane's too.
   */
  static readonly shared = (backplane: Backplane.Backplane, nodeId: string): Layer.Layer<FleetHub> =>
    Layer.scoped(FleetHub, PubSub.make({ nodeId, backplane, shares: NodeViews.shares }))
}

/** What a command can fail with. */
export type CommandError =
  | NotController
  | UnknownRobot
  | RobotOffline
  | CommandNotSupported
  | CommandRefused
  | RobotStopped
  | InvalidRequest

/** The fleet service. */
export interface FleetService {
  readonly hub: PubSub.PubSub
  /** The fleet's registry: `links`, `mqtt`, `state`, `control`, and every robot link. */
  readonly registry: Registry.Registry<string, any>
  /** The `fleet` subtree's child spec (already started by `make` and `layer`; yours to start with `makeUnstarted`). */
  readonly child: ChildSpec.ChildSpec
  /** The topic of conflated `Encoded<FleetUpdate>` broadcasts. */
  readonly viewsTopic: string
  /** Every robot now, and the tick of the last update. */
  readonly state: Effect.Effect<FleetState.FleetView>
  /** The emergency-stop latches (read-only use: stops and resets go through this service). */
  readonly latches: StopLatches.StopLatches
  /** Takes a robot's control lease for `ttlMs` (the configured default when omitted). */
  readonly acquire: (
    robot: string,
    holder: Leases.Holder,
    ttlMs?: number
  ) => Effect.Effect<Lease, ControlHeld | UnknownRobot | InvalidRequest>
  readonly renew: (
    robot: string,
    holder: Leases.Holder,
    ttlMs?: number
  ) => Effect.Effect<Lease, NotController | UnknownRobot | InvalidRequest>
  readonly release: (robot: string, holder: Leases.Holder) => Effect.Effect<void, NotController | UnknownRobot>
  /**
   * Sends a command to a robot whose lease `holder` has; resolves once the link took it. With
   * several nodes, a robot another node runs gets it through that node (`FleetRemote`): a command
   * whose answer does not come back in time fails with `CommandRefused` code `outcomeUnknown`,
   * and is never sent again.
   */
  readonly command: (robot: string, holder: Leases.Holder, command: RobotCommand) => Effect.Effect<void, CommandError>
  /**
   * Stops and latches one robot, or every robot known when `robot` is omitted; needs no lease
   * (the gateway checks `STOP_ROLE`). Resolves once the latches are committed, with which robots
   * the stop reached. `who` is the user's name, or the caller with their role and session.
   * `copyOf` names the node a dashboard sent the same stop to first: the audit log records this
   * one as its copy (a robot already latched keeps its first latch).
   */
  readonly emergencyStop: (
    robot: string | undefined,
    who: string | Caller,
    copyOf?: string | undefined
  ) => Effect.Effect<StopReport, UnknownRobot>
  /** What the fleet's parts measure of themselves, for `/metrics` and benchmarks. */
  readonly stats: Effect.Effect<FleetStats>
  /** The stop channel's port and counters, when `stopPort` is configured. */
  readonly stopChannel: StopChannel.StopChannelStatus | undefined
  /**
   * Answers the other nodes' commands and stops for the robots this node runs until the scope
   * closes (with `peers`; nothing without).
   */
  readonly serveRemote: Effect.Effect<void, never, Scope.Scope>
}

/** What the fleet's parts measure of themselves; a part that is not running (or not configured) is absent. */
export interface FleetStats {
  /** Robot links running under `fleet/links`. */
  readonly links: number
  /** Robots latched by an emergency stop. */
  readonly latched: number
  /** Control leases held. */
  readonly leases: number
  /** Emergency stops asked (per robot: a stop of every robot counts each). */
  readonly stops: number
  /** Latches that could not be written to disk. */
  readonly latchWriteFailures: number
  /** Replies to instructions an abort had cancelled, ignored by the arms' links (live sessions). */
  readonly cancelledReplies: number
  readonly loop?: ControlLoop.LoopMetrics | undefined
  readonly mqtt?: MqttLink.MqttLinkStats | undefined
  readonly telemetry?: TelemetryStats | undefined
  readonly stopChannel?: StopChannel.StopChannelStats | undefined
}

/** The fleet service as a Context tag. */
export class Fleet extends Context.Tag("fleetvisor/apps/fleet/Fleet")<Fleet, FleetService>() {}

/** What {@link make} needs. */
export interface FleetOptions {
  readonly settings: FleetSettings
  readonly hub: PubSub.PubSub
  readonly system: ActorSystem
  readonly auditLog?: AuditLog["Type"] | undefined
  /** Where emergency-stop latches are kept on disk; without it they live in memory only. */
  readonly latchStore?: StopLatchStore["Type"] | undefined
  /** Records the robots' telemetry when given. */
  readonly telemetryLog?: TelemetryLog["Type"] | undefined
  /** Backoff of robot link restarts (tests shorten it). */
  readonly linkBackoff?: Backoff | undefined
  /** Which robots this node runs, when several nodes share the fleet; default: every one. */
  readonly placement?: Placement.Placement | undefined
  /** The cluster-wide latches, when several nodes share the fleet. */
  readonly latchExchange?: StopLatches.Exchange | undefined
  /** The cluster-wide control leases, when several nodes share the fleet. */
  readonly sharedLeases?: SharedLeases.SharedLeases | undefined
  /** The other nodes, asked to command and stop the robots they run, when several nodes share the fleet. */
  readonly peers?: FleetRemote.Peers | undefined
}

const kernelErrors = new Set(["AskTimeout", "ActorStopped", "MailboxFull"])
const isKernelError = (error: unknown) =>
  typeof error === "object" && error !== null && kernelErrors.has((error as { _tag?: string })._tag ?? "")

/** Commands refused while an emergency stop latches the robot: whatever could make it move. */
const movesRobot = new Set<RobotCommand["_tag"]>(["MoveLinear", "MoveJoint", "Continue", "Resume", "SendOrder"])

/** How long a stop waits for a link's word that the stop left it before calling the robot "latched only". */
const stopAnswerTimeout = "2 seconds"

/**
 * Spawns the `fleet` subtree as a top-level actor of `system` (stopped when the scope closes)
 * and returns the service over it.
 */
export const make = (
  options: FleetOptions
): Effect.Effect<
  FleetService,
  InitFailed | AlreadyRegistered | StoreUnavailable | OfficialSchemas.OfficialSchemasInvalid,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const service = yield* makeUnstarted(options)
    yield* Effect.acquireRelease(
      options.system.spawn(service.child.behaviour, { name: service.child.id }),
      (ref) => options.system.stop(ref)
    )
    return service
  })

/**
 * The service, without starting the `fleet` subtree: the caller starts `service.child` under
 * its own supervisor (the node's root, as in DESIGN.md's tree). Reads the latches on disk.
 * Calls wait (up to 2 seconds) for the subtree to be running.
 */
export const makeUnstarted = (
  options: Omit<FleetOptions, "system">
): Effect.Effect<FleetService, StoreUnavailable | OfficialSchemas.OfficialSchemasInvalid> =>
  Effect.gen(function*() {
    const { hub, settings } = options
    const officialSchemas = settings.vda5050Schemas === undefined ? undefined : yield* OfficialSchemas.load(settings.vda5050Schemas)
    if (officialSchemas !== undefined) {
      yield* Effect.logInfo(
        `VDA 5050 messages checked against the official schemas ${officialSchemas.versions.join(", ")} of ${officialSchemas.folder}`
      )
    }
    const registry = Registry.unsafeMake<string, any>({ keys: "unique" })
    const shared = settings.stopPort === undefined ? undefined : SharedHeaderIds.make()
    const latches = yield* StopLatches.make({ store: options.latchStore, shared, mirror: options.latchExchange })
    // With several nodes, the stop channel's thread stops any AGV heard of, in the sequence of the ids heard.
    const heard = HeardHeaderIds.make(options.placement === undefined ? undefined : shared)
    const leases = Leases.make()
    const roster = new Map<string, LinkEvent.RobotKind>(settings.rmiRobots.map((robot) => [robot.id, "arm"]))
    for (const latch of latches.all()) roster.set(latch.robot, latch.kind)
    // A slot per robot for the process's life: room for the cap of AGV links, every arm, and AGVs let go and back.
    const samples = SampleColumns.makeDirectory(2 * settings.maxAgvs + settings.rmiRobots.length)
    const counters = { stops: 0, latchWriteFailures: 0 }
    if (options.latchExchange !== undefined) {
      yield* options.latchExchange.attach({
        all: () => latches.all().map(({ by, kind, robot, since }) => ({ robot, kind, since, by })),
        remote: (robot, row) => {
          if (!latches.remote(robot, row)) return
          const kind = row?.kind ?? roster.get(robot) ?? (robot.includes("/") ? "agv" : "arm")
          if (!roster.has(robot)) roster.set(robot, kind)
          LinkEvent.unsafePublish(
            hub,
            row === undefined
              ? { _tag: "Cleared", robot, kind, at: Date.now() }
              : { _tag: "EmergencyStopped", robot, kind, at: Date.now(), by: row.by }
          )
        }
      })
    }
    if (options.sharedLeases !== undefined) {
      yield* options.sharedLeases.attach({
        all: () => {
          const now = Date.now()
          return [...leases.values()].map((lease) => ({
            robot: lease.robot,
            holder: { session: lease.holder.session, user: lease.holder.user },
            remainingMs: lease.expiresAt - now
          }))
        },
        lost: (robot, session) => {
          const lease = leases.get(robot)
          // Another session took it while Redis had lost it: it ends here at once.
          if (lease !== undefined && lease.holder.session === session) lease.expiresAt = 0
        }
      })
    }
    const ttlBounds = { min: FleetState.defaultTtlBounds.min, max: Math.max(FleetState.defaultTtlBounds.max, settings.leaseTtlMs) }

    const stateActor = Registry.whereis(registry, "state").pipe(
      Effect.flatMap(Option.match({
        onNone: () => Effect.fail("restarting" as const),
        onSome: (ref) => Effect.succeed(ref as ActorRef<FleetState.FleetStateMessage>)
      })),
      Effect.retry({ times: 100, schedule: Schedule.spaced("20 millis") }),
      Effect.orDieWith(() => new Error("fleet/state is not running"))
    )

    const ask = <A, E>(f: (reply: Reply<A, E>) => FleetState.FleetStateMessage, urgent = false) =>
      Effect.flatMap(stateActor, (ref) =>
        ref.ask(f, { urgent }).pipe(
          Effect.catchAll((error) => (isKernelError(error) ? Effect.die(error) : Effect.fail(error as E)))
        ))

    const record = (who: string | Caller, robot: string, command: string, params: unknown, result: "ok" | "error", message?: string) => {
      const log = options.auditLog
      if (log === undefined) return Effect.void
      const caller = typeof who === "string" ? { user: who } : who
      return log.record({
        at: Date.now(),
        who: caller.user,
        ...(caller.role === undefined ? {} : { role: caller.role }),
        ...(caller.session === undefined ? {} : { session: caller.session }),
        robot,
        command,
        params,
        result,
        ...(message === undefined ? {} : { message })
      })
        .pipe(Effect.catchAll((error) => Effect.logWarning(`audit log unavailable: ${error.message}`)))
    }

    const audit = (who: string | Caller, robot: string, command: string, params: unknown) =>
    <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      options.auditLog === undefined ? effect : Effect.onExit(effect, (exit) =>
        exit._tag === "Success"
          ? record(who, robot, command, params, "ok")
          : record(
            who,
            robot,
            command,
            params,
            "error",
            exit.cause._tag === "Fail" ? String((exit.cause.error as { _tag?: string })._tag ?? exit.cause.error) : "defect"
          ))

    const linkOf = (robot: string) => Registry.unsafeWhereis(registry, FleetTree.linkKey(robot))

    const persist = (robots: Iterable<string>) =>
      Effect.tap(latches.persist(robots), (written) =>
        Effect.sync(() => {
          if (!written && options.latchStore !== undefined) counters.latchWriteFailures++
        }))

    const stopped = (robot: string) => {
      const latch = latches.get(robot)
      return latch === undefined ? undefined : new RobotStopped({ robot, since: latch.since, by: latch.by })
    }

    const onArm = (
      robot: string,
      link: ActorRef<RmiLink.RmiLinkMessage>,
      command: RobotCommand
    ): Effect.Effect<void, RobotOffline | CommandNotSupported | CommandRefused | RobotStopped> => {
      const refused = (reason: string, code?: string) =>
        Effect.fail(new CommandRefused({ robot, command: command._tag, reason, ...(code === undefined ? {} : { code }) }))
      const operate = (operation: RmiLink.Operation) =>
        link.ask(RmiLink.operate(operation), { timeout: "10 seconds" }).pipe(
          Effect.catchAll((error): Effect.Effect<never, RobotOffline | CommandRefused | RobotStopped> => {
            switch (error._tag) {
              case "RmiNotConnected":
              case "RmiConnectionLost":
              case "RmiProtocolError":
              case "ActorStopped":
                return Effect.fail(new RobotOffline({ robot }))
              case "RmiRejected":
                return refused(error.message, error.code)
              case "LinkLatched":
                return Effect.fail(new RobotStopped({ robot, since: error.since, by: error.by }))
              default:
                return Effect.dieMessage(`${robot}: ${operation} failed: ${JSON.stringify(error)}`)
            }
          })
        )
      /** Queues a motion in the link: done when the link has it, not when the arm arrives. */
      const instruct = (instruction: RmiPacket.InstructionBody) =>
        link.tell({ _tag: "Instruct", instruction }).pipe(Effect.catchAll(() => Effect.fail(new RobotOffline({ robot }))))
      switch (command._tag) {
        case "MoveLinear": {
          const { p, r, w, x, y, z } = command.position
          return instruct({
            Instruction: "FRC_LinearMotion",
            Configuration: RmiPacket.DefaultConfiguration,
            Position: { X: x, Y: y, Z: z, W: w, P: p, R: r },
            SpeedType: "mmSec",
            Speed: command.speed,
            TermType: "FINE",
            TermValue: 1
          })
        }
        case "MoveJoint": {
          const { joints, speed } = command
          return instruct({
            Instruction: "FRC_JointMotionJRep",
            JointAngle: Object.fromEntries(joints.map((angle, i) => [`J${i + 1}`, angle])) as RmiPacket.JointAngle,
            SpeedType: "Percent",
            Speed: speed,
            TermType: "FINE",
            TermValue: 1
          })
        }
        case "Pause":
        case "Continue":
        case "Reset":
        case "Abort":
          return operate(command._tag)
        default:
          return Effect.fail(new CommandNotSupported({ robot, command: command._tag }))
      }
    }

    const onAgv = (
      robot: string,
      link: ActorRef<AgvLink.AgvLinkMessage>,
      command: RobotCommand
    ): Effect.Effect<void, RobotOffline | CommandNotSupported | CommandRefused | RobotStopped> => {
      const send = <A>(f: (reply: Reply<A, AgvLink.SendError>) => AgvLink.AgvLinkMessage) =>
        link.ask(f).pipe(
          Effect.catchAll((error): Effect.Effect<never, RobotOffline | CommandRefused | RobotStopped> => {
            switch (error._tag) {
              case "AgvNotConnected":
              case "ActorStopped":
                return Effect.fail(new RobotOffline({ robot }))
              case "MessageEncodeError":
                // VDA 5050's errorType for a message that does not validate against its schema.
                return Effect.fail(new CommandRefused({ robot, command: command._tag, code: "validationError", reason: error.reason }))
              case "LinkLatched":
                return Effect.fail(new RobotStopped({ robot, since: error.since, by: error.by }))
              default:
                return Effect.dieMessage(`${robot}: ${command._tag} failed: ${JSON.stringify(error)}`)
            }
          }),
          Effect.asVoid
        )
      switch (command._tag) {
        case "Pause":
          return send(AgvLink.instantAction("startPause"))
        case "Resume":
          return send(AgvLink.instantAction("stopPause"))
        case "CancelOrder":
          return send(AgvLink.instantAction("cancelOrder"))
        case "StateRequest":
          return send(AgvLink.instantAction("stateRequest"))
        case "Reset":
          return send(AgvLink.resetStop)
        case "SendOrder": {
          const { orderUpdateId: _, ...body } = Order.fromPath({
            orderId: OrderId.make(options.placement?.node, Date.now()),
            path: command.nodes.map((node) => ({
              nodeId: node.nodeId,
              nodePosition: {
                x: node.x,
                y: node.y,
                mapId: node.mapId,
                ...(node.theta === undefined ? {} : { theta: node.theta })
              }
            }))
          })
          return send(AgvLink.order(body))
        }
        default:
          return Effect.fail(new CommandNotSupported({ robot, command: command._tag }))
      }
    }

    const ttl = (ttlMs: number | undefined) => ttlMs ?? settings.leaseTtlMs

    /** Runs a command on the link of a robot this node runs (its lease checked by the caller). */
    const runHere = (robot: string, kind: LinkEvent.RobotKind, command: RobotCommand) =>
      Effect.gen(function*() {
        const link = linkOf(robot)
        // A node whose claim on the robot ended (its own deadline) sends nothing, even before its link is stopped.
        if (link === undefined || options.placement?.owns(robot) === false) return yield* new RobotOffline({ robot })
        if (kind === "arm") yield* onArm(robot, link, command)
        else yield* onAgv(robot, link, command)
        if (command._tag === "Reset") yield* persist([robot])
      })

    /** How long a command to a robot another node runs waits for that node's answer. */
    const remoteCommandTimeout = "10 seconds"

    /**
     * Sends a command to the node that runs the robot, with that node's lease token: once, never
     * again. No answer in time is `outcomeUnknown`: the robot may or may not have taken it.
     */
    const commandElsewhere = (
      owner: { readonly node: string; readonly token: string | undefined },
      holder: Leases.Holder,
      robot: string,
      command: RobotCommand
    ): Effect.Effect<void, RobotOffline | CommandNotSupported | CommandRefused | RobotStopped> => {
      const peers = options.peers
      if (peers === undefined) return Effect.fail(new RobotOffline({ robot }))
      const refused = (code: string, reason: string) => new CommandRefused({ robot, command: command._tag, code, reason })
      return Remote.ref(peers.transport, owner.node, FleetRemote.RemoteCommand).ask({
        robot,
        ...(owner.token === undefined ? {} : { token: owner.token }),
        holder: { session: holder.session, user: holder.user, ...(holder.role === undefined ? {} : { role: holder.role }) },
        command
      }, { timeout: remoteCommandTimeout }).pipe(
        Effect.catchTags({
          NodeDown: () => Effect.fail(new RobotOffline({ robot })),
          RemoteTimeout: (error) =>
            Effect.fail(refused(
              "outcomeUnknown",
              `node ${owner.node}, which runs ${robot}, did not answer within ${error.timeoutMillis} ms: the command may or may not have been carried out, and it is not sent again`
            )),
          IncompatibleNode: (error) =>
            Effect.fail(refused("incompatibleNode", `node ${owner.node} speaks node protocol ${error.theirs}, this node ${error.ours.min}–${error.ours.max}`)),
          RemoteDefect: (error) => Effect.fail(refused("remoteDefect", `node ${owner.node} failed: ${error.message}`))
        })
      )
    }

    /** Runs another node's command for a robot this node runs, if the lease token it carries is this node's. */
    const commandFromPeer = (request: FleetRemote.CommandRequest, from: string) => {
      const { command, robot } = request
      const who: Caller = { user: request.holder.user, role: request.holder.role, session: `${from}/${request.holder.session}` }
      return Effect.gen(function*() {
        const token = options.placement?.tokenOf?.(robot)
        if (options.placement?.owns(robot) !== true || linkOf(robot) === undefined) return yield* new RobotOffline({ robot })
        if (request.token !== undefined && token !== undefined && request.token !== token) {
          return yield* new CommandRefused({
            robot,
            command: command._tag,
            code: "staleOwner",
            reason: `the command was meant for lease ${request.token}; this node holds ${robot} under lease ${token}`
          })
        }
        const invalid = CommandLimits.check(command, armLimitsOf(settings, robot))
        if (invalid !== undefined) {
          return yield* new CommandRefused({ robot, command: command._tag, code: "validationError", reason: invalid.reason })
        }
        const latched = movesRobot.has(command._tag) ? stopped(robot) : undefined
        if (latched !== undefined) return yield* latched
        yield* runHere(robot, kindOf(robot) ?? (robot.includes("/") ? "agv" : "arm"), command)
      }).pipe(audit(who, robot, command._tag, { ...command, from }))
    }

    /** Asks the actor registered as `key`, on its urgent lane (its mailbox may be long), if it runs and answers within a second. */
    const askPart = <A>(key: string, message: (reply: Reply<A>) => unknown): Effect.Effect<A | undefined> => {
      const ref = Registry.unsafeWhereis(registry, key) as ActorRef<unknown> | undefined
      if (ref === undefined) return Effect.succeed(undefined)
      return ref.ask(message, { timeout: "1 second", urgent: true }).pipe(Effect.orElseSucceed(() => undefined))
    }

    const kindOf = (robot: string): LinkEvent.RobotKind | undefined =>
      roster.get(robot) ?? latches.get(robot)?.kind ??
        (linkOf(robot) !== undefined ? (robot.includes("/") ? "agv" : "arm") : heard.has(robot) ? "agv" : undefined)

    /**
     * Publishes the stop of an AGV whose link does not run here straight to the broker through
     * `fleet/mqtt` (another node runs it): no lock, no Redis. Resolves with whether it was written.
     */
    const stopElsewhere = (robot: string): Effect.Effect<boolean> => {
      const mqtt = Registry.unsafeWhereis(registry, "mqtt") as ActorRef<MqttLink.MqttLinkMessage> | undefined
      const slash = robot.indexOf("/")
      if (mqtt === undefined || slash <= 0) return Effect.succeed(false)
      const identity = { manufacturer: robot.slice(0, slash), serialNumber: robot.slice(slash + 1) }
      return mqtt.ask(MqttLink.publishStop(identity), { urgent: true, timeout: stopAnswerTimeout }).pipe(
        Effect.map(({ cancelId, written }) => {
          if (cancelId !== undefined) latches.get(robot)?.cancelActions.add(cancelId)
          return written
        }),
        Effect.orElseSucceed(() => false)
      )
    }

    /**
     * Sends the stop of an arm whose link does not run here to every other live node at once, on
     * the node link's urgent lane (not through Redis): the one that runs it stops it, the others
     * only latch it. Resolves with whether one of them reached the arm.
     */
    const stopArmElsewhere = (robot: string, who: string): Effect.Effect<boolean> => {
      const peers = options.peers
      if (peers === undefined) return Effect.succeed(false)
      return Effect.forEach(
        peers.others(),
        (node) =>
          Remote.ref(peers.transport, node, FleetRemote.RemoteStop).ask({ robot, by: who }, { urgent: true, timeout: stopAnswerTimeout }).pipe(
            Effect.map(({ reached }) => reached),
            Effect.orElseSucceed(() => false)
          ),
        { concurrency: "unbounded" }
      ).pipe(Effect.map((answers) => answers.some((reached) => reached)))
    }

    /** Every robot a stop of all must latch: those heard of (here, or on the broker with several nodes), and those whose link runs. */
    const everyRobot = (): Map<string, LinkEvent.RobotKind> => {
      const robots = new Map(roster)
      if (options.placement !== undefined) for (const robot of heard.robots()) if (!robots.has(robot)) robots.set(robot, "agv")
      for (const entry of Registry.all(registry)) {
        if (entry.key.startsWith("robot:")) robots.set(entry.key.slice("robot:".length), "arm")
        else if (entry.key.startsWith("agv:")) robots.set(entry.key.slice("agv:".length), "agv")
      }
      return robots
    }

    /** Sends the stop to the robot's link (already latched), resolving with whether it reached the robot. */
    const stopOne = (robot: string, kind: LinkEvent.RobotKind, who: string): Effect.Effect<boolean> => {
      const link = linkOf(robot)
      if (link === undefined) {
        LinkEvent.unsafePublish(hub, { _tag: "EmergencyStopped", robot, kind, at: Date.now(), by: who })
        if (options.placement === undefined) return Effect.succeed(false)
        return kind === "agv" ? stopElsewhere(robot) : stopArmElsewhere(robot, who)
      }
      const asked: Effect.Effect<StopOutcome, unknown> = kind === "arm"
        ? (link as ActorRef<RmiLink.RmiLinkMessage>).ask(RmiLink.emergencyStopBy(who), { urgent: true, timeout: stopAnswerTimeout })
        : (link as ActorRef<AgvLink.AgvLinkMessage>).ask(AgvLink.emergencyStopBy(who), { urgent: true, timeout: stopAnswerTimeout })
      return asked.pipe(Effect.map((outcome) => outcome.reached), Effect.orElseSucceed(() => false))
    }

    /**
     * Latches and stops `robot`, or every robot but those in `skip` (the stop channel stopped those
     * itself: they count as reached), then commits the latches.
     */
    const stopRobots = (
      robot: string | undefined,
      skip: ReadonlyArray<string>,
      who: string
    ): Effect.Effect<StopReport, UnknownRobot> =>
      Effect.gen(function*() {
        let targets: Map<string, LinkEvent.RobotKind>
        if (robot === undefined) {
          targets = everyRobot()
          for (const skipped of skip) targets.delete(skipped)
        } else {
          const kind = kindOf(robot)
          if (kind === undefined) return yield* new UnknownRobot({ robot })
          targets = new Map([[robot, kind]])
        }
        for (const [target, kind] of targets) latches.latch(target, kind, who)
        counters.stops += targets.size
        const entries = [...targets]
        const reached = yield* Effect.forEach(entries, ([target, kind]) => stopOne(target, kind, who), {
          concurrency: "unbounded"
        })
        yield* persist(targets.keys())
        return {
          reached: [...skip, ...entries.filter((_, i) => reached[i]).map(([target]) => target)],
          latchedOnly: entries.filter((_, i) => !reached[i]).map(([target]) => target)
        }
      })

    const onLeaseLost = (lease: Leases.LeaseRecord, kind: LinkEvent.RobotKind, why: Leases.LeaseLost) => {
      const action = settings.onLeaseLost[kind]
      const link = linkOf(lease.robot)
      const pause: Effect.Effect<unknown, unknown> = action === "none" || link === undefined
        ? Effect.void
        : kind === "arm"
        ? (link as ActorRef<RmiLink.RmiLinkMessage>).ask(RmiLink.operate("Pause"), { timeout: "5 seconds" })
        : (link as ActorRef<AgvLink.AgvLinkMessage>).ask(AgvLink.instantAction("startPause"))
      Effect.runFork(
        pause.pipe(
          Effect.matchEffect({
            onFailure: (error) =>
              record(lease.holder, lease.robot, "LeaseLost", { why, action }, "error", String((error as { _tag?: string })._tag ?? error)),
            onSuccess: () => record(lease.holder, lease.robot, "LeaseLost", { why, action }, "ok")
          })
        )
      )
    }

    const stopChannel = shared === undefined ? undefined : {
      table: shared,
      status: StopChannel.makeStatus(),
      hooks: {
        stopped: (robots, who, published, all) =>
          Effect.gen(function*() {
            for (const robot of robots) {
              latches.latch(robot, "agv", who)
              const link = linkOf(robot) as ActorRef<AgvLink.AgvLinkMessage> | undefined
              const sent = published[robot] ?? []
              if (link === undefined || !link.unsafeTellUrgent({ _tag: "EmergencyStop", by: who, published: sent })) {
                // Another node runs its link (or nobody does yet): a link started here later knows the stop it watches for.
                for (const cancelId of sent) latches.get(robot)?.cancelActions.add(cancelId)
                LinkEvent.unsafePublish(hub, { _tag: "EmergencyStopped", robot, kind: "agv", at: Date.now(), by: who })
              }
            }
            counters.stops += robots.length
            yield* persist(robots)
            if (!all) yield* Effect.forEach(robots, (robot) => record(who, robot, "EmergencyStop", { via: "stop channel" }, "ok"))
          }),
        stop: (robot, skip, who) =>
          stopRobots(robot, skip, who).pipe(audit(who, robot ?? "*", "EmergencyStop", { via: "stop channel" })),
        coalesced: (robot, count, who) =>
          void Effect.runFork(record(who, robot ?? "*", "EmergencyStop", { via: "stop channel", coalesced: count }, "ok"))
      } satisfies StopChannel.StopChannelHooks
    }
    const child = ChildSpec.make(
      "fleet",
      FleetTree.make({
        settings,
        hub,
        registry,
        latches,
        leases,
        roster,
        samples,
        ttlBounds,
        onLeaseLost,
        onLeaseEnded: options.sharedLeases === undefined
          ? undefined
          : (lease) => void Effect.runFork(options.sharedLeases!.release(lease.robot, lease.holder.session)),
        linkBackoff: options.linkBackoff,
        telemetryLog: options.telemetryLog,
        stopChannel,
        officialSchemas,
        placement: options.placement,
        heard
      })
    )

    const stats: Effect.Effect<FleetStats> = Effect.gen(function*() {
      const links = Option.getOrUndefined(yield* Registry.whereis(registry, "links"))
      let cancelledReplies = 0
      for (const entry of Registry.all(registry)) {
        if (!entry.key.startsWith("robot:")) continue
        const info = yield* (entry.ref as ActorRef<RmiLink.RmiLinkMessage>).ask(RmiLink.getInfo, { timeout: "1 second", urgent: true })
          .pipe(Effect.option)
        cancelledReplies += Option.match(info, { onNone: () => 0, onSome: (i) => i.cancelledReplies })
      }
      return {
        links: links === undefined ? 0 : yield* DynamicSupervisor.countChildren(links as DynamicSupervisor.DynamicSupervisorRef).pipe(
          Effect.map((count) => count.active),
          Effect.orElseSucceed(() => 0)
        ),
        latched: latches.all().length,
        leases: leases.size,
        stops: counters.stops,
        latchWriteFailures: counters.latchWriteFailures,
        cancelledReplies,
        loop: yield* askPart("control", ControlLoop.getMetrics),
        mqtt: yield* askPart("mqtt", MqttLink.getStats),
        telemetry: options.telemetryLog === undefined ? undefined : yield* options.telemetryLog.stats,
        stopChannel: stopChannel?.status.stats()
      }
    })

    return {
      hub,
      registry,
      child,
      viewsTopic: FleetState.ViewsTopic,
      latches,
      state: ask<FleetState.FleetView, never>((reply) => ({ _tag: "GetState", reply })),
      acquire: (robot, holder, ttlMs) => {
        const local = ask<Lease, ControlHeld | UnknownRobot | InvalidRequest>((reply) => ({
          _tag: "Acquire",
          robot,
          holder,
          ttlMs: ttl(ttlMs),
          reply
        }))
        const shared = options.sharedLeases
        return (shared === undefined ? local : Effect.gen(function*() {
          // An impossible length is refused here, as on a single node, before Redis is asked.
          const invalid = FleetState.checkLeaseTtl(ttlBounds, ttl(ttlMs))
          if (invalid !== undefined) return yield* invalid
          const grant = yield* shared.acquire(robot, holder, ttl(ttlMs)).pipe(
            Effect.mapError((error) => new InvalidRequest({ field: "robot", reason: `control leases are unavailable: ${error.message}` }))
          )
          if (grant._tag === "Held") return yield* new ControlHeld({ robot, holder: grant.user })
          return yield* Effect.tapError(local, () => shared.release(robot, holder.session))
        })).pipe(audit(holder, robot, "Acquire", { ttlMs: ttl(ttlMs) }))
      },
      renew: (robot, holder, ttlMs) => {
        const local = ask<Lease, NotController | UnknownRobot | InvalidRequest>((reply) => ({
          _tag: "Renew",
          robot,
          holder,
          ttlMs: ttl(ttlMs),
          reply
        }))
        const shared = options.sharedLeases
        return (shared === undefined ? local : Effect.gen(function*() {
          const invalid = FleetState.checkLeaseTtl(ttlBounds, ttl(ttlMs))
          if (invalid !== undefined) return yield* invalid
          // Redis away: the lease goes on here until its own end; a renewal Redis refuses ends it.
          const held = yield* shared.renew(robot, holder.session, ttl(ttlMs)).pipe(Effect.orElseSucceed(() => true))
          if (held) return yield* local
          yield* Effect.ignore(ask<void, NotController | UnknownRobot>((reply) => ({ _tag: "Release", robot, holder, reply })))
          return yield* new NotController({ robot })
        })).pipe(audit(holder, robot, "Renew", { ttlMs: ttl(ttlMs) }))
      },
      release: (robot, holder) =>
        ask<void, NotController | UnknownRobot>((reply) => ({ _tag: "Release", robot, holder, reply })).pipe(
          // Free for the other nodes' sessions before the answer (it is also freed when the table ends it).
          Effect.tap(() => options.sharedLeases?.release(robot, holder.session) ?? Effect.void),
          audit(holder, robot, "Release", {})
        ),
      command: (robot, holder, command) =>
        Effect.gen(function*() {
          const invalid = CommandLimits.check(command, armLimitsOf(settings, robot))
          if (invalid !== undefined) return yield* invalid
          const { kind, owner } = yield* ask<FleetState.Authorized, NotController | UnknownRobot | RobotOffline>((reply) => ({
            _tag: "Authorize",
            robot,
            holder,
            reply
          }))
          const latched = movesRobot.has(command._tag) ? stopped(robot) : undefined
          if (latched !== undefined) return yield* latched
          if (owner !== undefined) return yield* commandElsewhere(owner, holder, robot, command)
          return yield* runHere(robot, kind, command)
        }).pipe(audit(holder, robot, command._tag, command)),
      emergencyStop: (robot, who, copyOf) =>
        stopRobots(robot, [], typeof who === "string" ? who : who.user).pipe(
          audit(who, robot ?? "*", "EmergencyStop", copyOf === undefined ? {} : { copyOf })
        ),
      stats,
      stopChannel: stopChannel?.status,
      serveRemote: options.peers === undefined ? Effect.void : Effect.gen(function*() {
        const { transport } = options.peers!
        yield* Remote.serve(transport, FleetRemote.RemoteCommand, commandFromPeer)
        yield* Remote.serve(transport, FleetRemote.RemoteStop, ({ by, robot }, from) => {
          const kind = kindOf(robot) ?? (robot.includes("/") ? "agv" : "arm")
          // The node that runs it stops it; the others latch it, and send it nowhere else.
          const here = linkOf(robot) !== undefined
            ? stopRobots(robot, [], by).pipe(Effect.map((report) => ({ reached: report.reached.includes(robot) })))
            : Effect.sync(() => {
              latches.latch(robot, kind, by)
              counters.stops++
              LinkEvent.unsafePublish(hub, { _tag: "EmergencyStopped", robot, kind, at: Date.now(), by })
            }).pipe(Effect.zipRight(persist([robot])), Effect.as({ reached: false }))
          return here.pipe(
            Effect.orElseSucceed(() => ({ reached: false })),
            audit(by, robot, "EmergencyStop", { via: `node ${from}` })
          )
        })
      })
    } satisfies FleetService
  })

/** The stores the fleet uses when the context has them. */
const stores = Effect.gen(function*() {
  return {
    auditLog: Option.getOrUndefined(yield* Effect.serviceOption(AuditLog)),
    latchStore: Option.getOrUndefined(yield* Effect.serviceOption(StopLatchStore)),
    telemetryLog: Option.getOrUndefined(yield* Effect.serviceOption(TelemetryLog)),
    placement: Option.getOrUndefined(yield* Effect.serviceOption(Placement.Placement)),
    latchExchange: Option.getOrUndefined(yield* Effect.serviceOption(StopLatches.Exchange)),
    sharedLeases: Option.getOrUndefined(yield* Effect.serviceOption(SharedLeases.SharedLeases)),
    peers: Option.getOrUndefined(yield* Effect.serviceOption(FleetRemote.Peers))
  }
})

/**
 * The fleet's service without its subtree started (see {@link makeUnstarted}): the node starts
 * `child` under its root supervisor. Uses `AuditLog`, `StopLatchStore`, `TelemetryLog`, `Placement` and `StopLatches.Exchange` when present.
 */
export const layerUnstarted: Layer.Layer<
  Fleet,
  StoreUnavailable | OfficialSchemas.OfficialSchemasInvalid,
  FleetConfig | FleetHub
> = Layer.effect(
  Fleet,
  Effect.gen(function*() {
    return yield* makeUnstarted({ settings: yield* FleetConfig, hub: yield* FleetHub, ...yield* stores })
  })
)

/**
 * The fleet over the system, its configuration and its hub; records commands when an
 * `AuditLog` is there, keeps stop latches on disk when a `StopLatchStore` is, and records
 * telemetry when a `TelemetryLog` is.
 */
export const layer: Layer.Layer<
  Fleet,
  InitFailed | AlreadyRegistered | StoreUnavailable | OfficialSchemas.OfficialSchemasInvalid,
  ActorSystem | FleetConfig | FleetHub
> = Layer.scoped(
  Fleet,
  Effect.gen(function*() {
    return yield* make({ settings: yield* FleetConfig, hub: yield* FleetHub, system: yield* ActorSystem, ...yield* stores })
  })
)

