/**
 * The fleet as a service: what the dashboard RPCs (`FleetRpcs`) need, over the `fleet`
 * subtree of actors ({@link FleetTree}).
 *
 * - State (every robot's latest view, the leases) is owned by the `fleet/state` actor,
 *   fed by the links over PubSub; this service only asks it.
 * - Commands need the robot's control lease; they go to the robot's link actor
 *   (`robot:<id>` or `agv:<manufacturer>/<serial>` in the fleet registry) and, when an
 *   `AuditLog` is provided, are recorded with who sent them and how they ended.
 * - The emergency stop needs no lease and asks nobody: it goes straight to the links'
 *   urgent lanes (FRC_Abort for arms, startPause + cancelOrder for AGVs).
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
import * as PubSub from "../../actors/PubSub.js"
import * as Registry from "../../actors/Registry.js"
import * as LinkEvent from "../../links/LinkEvent.js"
import * as RmiLink from "../../links/rmi/RmiLink.js"
import * as RmiPacket from "../../links/rmi/RmiPacket.js"
import * as AgvLink from "../../links/vda5050/AgvLink.js"
import * as MqttLink from "../../links/vda5050/MqttLink.js"
import * as Order from "../../links/vda5050/Order.js"
import * as SharedHeaderIds from "../../links/vda5050/SharedHeaderIds.js"
import {
  CommandNotSupported,
  CommandRefused,
  type ControlHeld,
  type Lease,
  type NotController,
  RobotOffline,
  type RobotCommand,
  UnknownRobot
} from "../../protocol/FleetRpcs.js"
import type { Backoff } from "../../supervisors/Backoff.js"
import * as ChildSpec from "../../supervisors/ChildSpec.js"
import * as DynamicSupervisor from "../../supervisors/DynamicSupervisor.js"
import { AuditLog } from "../../store/AuditLog.js"
import { TelemetryLog, type TelemetryStats } from "../../store/TelemetryLog.js"
import { FleetConfig, type FleetSettings } from "./FleetConfig.js"
import * as ControlLoop from "./ControlLoop.js"
import * as FleetState from "./FleetState.js"
import * as FleetTree from "./FleetTree.js"
import * as StopChannel from "./StopChannel.js"

export type { FleetView, Holder } from "./FleetState.js"

/** The PubSub hub the fleet publishes on: link events (`fleet`, `robot:<id>`) and views (`fleet/views`). */
export class FleetHub extends Context.Tag("fleetvisor/apps/fleet/FleetHub")<FleetHub, PubSub.PubSub>() {
  /** A hub of the fleet's own. */
  static readonly layer: Layer.Layer<FleetHub> = Layer.scoped(FleetHub, PubSub.make())
}

/** What a command can fail with. */
export type CommandError = NotController | UnknownRobot | RobotOffline | CommandNotSupported | CommandRefused

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
  /** Takes a robot's control lease for `ttlMs` (the configured default when omitted). */
  readonly acquire: (robot: string, holder: FleetState.Holder, ttlMs?: number) => Effect.Effect<Lease, ControlHeld | UnknownRobot>
  readonly renew: (robot: string, holder: FleetState.Holder, ttlMs?: number) => Effect.Effect<Lease, NotController | UnknownRobot>
  readonly release: (robot: string, holder: FleetState.Holder) => Effect.Effect<void, NotController | UnknownRobot>
  /** Sends a command to a robot whose lease `holder` has; resolves once the link took it. */
  readonly command: (robot: string, holder: FleetState.Holder, command: RobotCommand) => Effect.Effect<void, CommandError>
  /** Stops one robot, or all when `robot` is omitted; allowed to everyone. */
  readonly emergencyStop: (robot: string | undefined, who: string) => Effect.Effect<void, UnknownRobot>
  /** What the fleet's parts measure of themselves, for `/metrics` and benchmarks. */
  readonly stats: Effect.Effect<FleetStats>
  /** The stop channel's port and counters, when `stopPort` is configured. */
  readonly stopChannel: StopChannel.StopChannelStatus | undefined
}

/** What the fleet's parts measure of themselves; a part that is not running (or not configured) is absent. */
export interface FleetStats {
  /** Robot links running under `fleet/links`. */
  readonly links: number
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
  /** Records the robots' telemetry when given. */
  readonly telemetryLog?: TelemetryLog["Type"] | undefined
  /** Backoff of robot link restarts (tests shorten it). */
  readonly linkBackoff?: Backoff | undefined
}

const emergencyStopMessage = { _tag: "EmergencyStop" } as const
const noneSkipped: ReadonlyArray<string> = []

const kernelErrors = new Set(["AskTimeout", "ActorStopped", "MailboxFull"])
const isKernelError = (error: unknown) =>
  typeof error === "object" && error !== null && kernelErrors.has((error as { _tag?: string })._tag ?? "")

/**
 * Spawns the `fleet` subtree as a top-level actor of `system` (stopped when the scope closes)
 * and returns the service over it.
 */
export const make = (
  options: FleetOptions
): Effect.Effect<FleetService, InitFailed | AlreadyRegistered, Scope.Scope> =>
  Effect.gen(function*() {
    const service = makeUnstarted(options)
    yield* Effect.acquireRelease(
      options.system.spawn(service.child.behaviour, { name: service.child.id }),
      (ref) => options.system.stop(ref)
    )
    return service
  })

/**
 * The service, without starting the `fleet` subtree: the caller starts `service.child` under
 * its own supervisor (the node's root, as in DESIGN.md's tree). Calls wait (up to 2 seconds)
 * for the subtree to be running.
 */
export const makeUnstarted = (options: Omit<FleetOptions, "system">): FleetService => {
  const { hub, settings } = options
  const registry = Registry.unsafeMake<string, any>({ keys: "unique" })
  const stopChannel = settings.stopPort === undefined ? undefined : {
    table: SharedHeaderIds.make(),
    status: StopChannel.makeStatus(),
    hooks: {
      stopped: (robots, who, all) => {
        const at = Date.now()
        for (const robot of robots) {
          LinkEvent.unsafePublish(hub, { _tag: "EmergencyStopped", robot, kind: "agv", at })
          if (!all) Effect.runFork(audit(who, robot, "EmergencyStop", { via: "stop channel" })(Effect.void))
        }
      },
      stop: (robot, skip, who) =>
        stopRobots(robot, skip).pipe(audit(who, robot ?? "*", "EmergencyStop", { via: "stop channel" }))
    } satisfies StopChannel.StopChannelHooks
  }
  const child = ChildSpec.make(
    "fleet",
    FleetTree.make({
      settings,
      hub,
      registry,
      linkBackoff: options.linkBackoff,
      telemetryLog: options.telemetryLog,
      stopChannel
    })
  )

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

  const audit = (who: string, robot: string, command: string, params: unknown) =>
  <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> => {
    const log = options.auditLog
    if (log === undefined) return effect
    const record = (result: "ok" | "error", message?: string) =>
      log.record({ at: Date.now(), who, robot, command, params, result, ...(message === undefined ? {} : { message }) })
        .pipe(Effect.catchAll((error) => Effect.logWarning(`audit log unavailable: ${error.message}`)))
    return Effect.onExit(effect, (exit) =>
      exit._tag === "Success"
        ? record("ok")
        : record("error", exit.cause._tag === "Fail" ? String((exit.cause.error as { _tag?: string })._tag ?? exit.cause.error) : "defect"))
  }

  const linkOf = (robot: string) => Registry.unsafeLookup(registry, FleetTree.linkKey(robot))[0]?.ref

  const onArm = (
    robot: string,
    link: ActorRef<RmiLink.RmiLinkMessage>,
    command: RobotCommand
  ): Effect.Effect<void, RobotOffline | CommandNotSupported | CommandRefused> => {
    const refused = (reason: string, code?: string) =>
      Effect.fail(new CommandRefused({ robot, command: command._tag, reason, ...(code === undefined ? {} : { code }) }))
    const operate = (operation: RmiLink.Operation) =>
      link.ask(RmiLink.operate(operation), { timeout: "10 seconds" }).pipe(
        Effect.catchAll((error): Effect.Effect<never, RobotOffline | CommandRefused> => {
          switch (error._tag) {
            case "RmiNotConnected":
            case "RmiConnectionLost":
            case "RmiProtocolError":
            case "ActorStopped":
              return Effect.fail(new RobotOffline({ robot }))
            case "RmiRejected":
              return refused(error.message, error.code)
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
        if (joints.length < 6 || joints.length > 9) {
          return refused(`MoveJoint takes 6 to 9 joint angles (J1–J9), not ${joints.length}`)
        }
        if (!(speed > 0)) return refused("MoveJoint needs a speed above 0 percent")
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
  ): Effect.Effect<void, RobotOffline | CommandNotSupported | CommandRefused> => {
    const send = <A>(f: (reply: Reply<A, AgvLink.SendError>) => AgvLink.AgvLinkMessage) =>
      link.ask(f).pipe(
        Effect.catchAll((error): Effect.Effect<never, RobotOffline | CommandRefused> => {
          switch (error._tag) {
            case "AgvNotConnected":
            case "ActorStopped":
              return Effect.fail(new RobotOffline({ robot }))
            case "MessageEncodeError":
              // VDA 5050's errorType for a message that does not validate against its schema.
              return Effect.fail(new CommandRefused({ robot, command: command._tag, code: "validationError", reason: error.reason }))
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
      case "SendOrder": {
        const { orderUpdateId: _, ...body } = Order.fromPath({
          orderId: `fleetvisor-${Date.now().toString(36)}`,
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

  /** Asks the actor registered as `key`, on its urgent lane (its mailbox may be long), if it runs and answers within a second. */
  const askPart = <A>(key: string, message: (reply: Reply<A>) => unknown): Effect.Effect<A | undefined> => {
    const ref = Registry.unsafeLookup(registry, key)[0]?.ref as ActorRef<unknown> | undefined
    if (ref === undefined) return Effect.succeed(undefined)
    return ref.ask(message, { timeout: "1 second", urgent: true }).pipe(Effect.orElseSucceed(() => undefined))
  }

  /** Stops `robot`, or every robot whose id is not in `skip` (those the stop channel stopped itself). */
  const stopRobots = (robot: string | undefined, skip: ReadonlyArray<string>): Effect.Effect<void, UnknownRobot> =>
    Effect.suspend(() => {
      if (robot === undefined) {
        const skipped = new Set(skip.map(FleetTree.linkKey))
        for (const entry of Registry.all(registry)) {
          if ((entry.key.startsWith("robot:") || entry.key.startsWith("agv:")) && !skipped.has(entry.key)) {
            entry.ref.unsafeTellUrgent(emergencyStopMessage)
          }
        }
        return Effect.void
      }
      const link = linkOf(robot)
      if (link !== undefined) return Effect.sync(() => void link.unsafeTellUrgent(emergencyStopMessage))
      return Effect.flatMap(
        ask<FleetState.Authorized["kind"] | undefined, never>((reply) => ({ _tag: "Lookup", robot, reply }), true),
        (kind) => (kind === undefined ? Effect.fail(new UnknownRobot({ robot })) : Effect.void)
      )
    })

  const stats: Effect.Effect<FleetStats> = Effect.gen(function*() {
    const links = Option.getOrUndefined(yield* Registry.whereis(registry, "links"))
    return {
      links: links === undefined ? 0 : yield* DynamicSupervisor.countChildren(links as DynamicSupervisor.DynamicSupervisorRef).pipe(
        Effect.map((count) => count.active),
        Effect.orElseSucceed(() => 0)
      ),
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
    state: ask<FleetState.FleetView, never>((reply) => ({ _tag: "GetState", reply })),
    acquire: (robot, holder, ttlMs) =>
      ask((reply) => ({ _tag: "Acquire", robot, holder, ttlMs: ttl(ttlMs), reply })),
    renew: (robot, holder, ttlMs) => ask((reply) => ({ _tag: "Renew", robot, holder, ttlMs: ttl(ttlMs), reply })),
    release: (robot, holder) => ask((reply) => ({ _tag: "Release", robot, holder, reply })),
    command: (robot, holder, command) =>
      Effect.gen(function*() {
        const { kind } = yield* ask<FleetState.Authorized, NotController | UnknownRobot | RobotOffline>((reply) => ({
          _tag: "Authorize",
          robot,
          holder,
          reply
        }))
        const link = linkOf(robot)
        if (link === undefined) return yield* new RobotOffline({ robot })
        if (kind === "arm") yield* onArm(robot, link, command)
        else yield* onAgv(robot, link, command)
        if ((kind === "arm" && command._tag === "Reset") || (kind === "agv" && command._tag === "Resume")) {
          yield* Effect.flatMap(stateActor, (ref) => ref.tell({ _tag: "Cleared", robot })).pipe(Effect.ignore)
        }
      }).pipe(audit(holder.user, robot, command._tag, command)),
    emergencyStop: (robot, who) => stopRobots(robot, noneSkipped).pipe(audit(who, robot ?? "*", "EmergencyStop", {})),
    stats,
    stopChannel: stopChannel?.status
  } satisfies FleetService
}

/**
 * The fleet's service without its subtree started (see {@link makeUnstarted}): the node starts
 * `child` under its root supervisor. Uses `AuditLog` and `TelemetryLog` when present.
 */
export const layerUnstarted: Layer.Layer<Fleet, never, FleetConfig | FleetHub> = Layer.effect(
  Fleet,
  Effect.gen(function*() {
    return makeUnstarted({
      settings: yield* FleetConfig,
      hub: yield* FleetHub,
      auditLog: Option.getOrUndefined(yield* Effect.serviceOption(AuditLog)),
      telemetryLog: Option.getOrUndefined(yield* Effect.serviceOption(TelemetryLog))
    })
  })
)

/**
 * The fleet over the system, its configuration and its hub; records commands when an
 * `AuditLog` is there, and telemetry when a `TelemetryLog` is.
 */
export const layer: Layer.Layer<Fleet, InitFailed | AlreadyRegistered, ActorSystem | FleetConfig | FleetHub> = Layer.scoped(
  Fleet,
  Effect.gen(function*() {
    return yield* make({
      settings: yield* FleetConfig,
      hub: yield* FleetHub,
      system: yield* ActorSystem,
      auditLog: Option.getOrUndefined(yield* Effect.serviceOption(AuditLog)),
      telemetryLog: Option.getOrUndefined(yield* Effect.serviceOption(TelemetryLog))
    })
  })
)

