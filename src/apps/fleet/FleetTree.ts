/**
 * The `fleet` subtree of the actor tree:
 *
 * ```text
 * fleet (rest_for_one)
 * ├─ links (dynamic)            robot:<id> per arm, agv:<manufacturer>/<serial> per AGV
 * ├─ mqtt                       the VDA 5050 broker connection (when a broker is configured)
 * ├─ arms                       starts the configured arms' links under links (the owned ones, with a placement)
 * ├─ stop                       the stop channel, on a thread of its own (when FLEET_STOP_PORT is set)
 * ├─ control                    the fixed 100 Hz control loop (the speed guard), on a worker thread
 * ├─ telemetry                  records telemetry in the TelemetryLog (when one is provided)
 * └─ state                      the fleet's view, lease grants, conflated view updates (30 Hz)
 * ```
 *
 * `links` comes first so that a broker connection that restarts leaves the robot links
 * alone (they find `mqtt` by name when they send), while a `links` that restarts (its
 * restart intensity exceeded) takes the rest with it: `mqtt` resubscribes and rediscovers
 * the AGVs from their retained `connection` and next messages, `arms` starts the arms again.
 * `state` comes last: nothing depends on it being up, so its crash restarts nobody else (not
 * the stop channel, not the control loop), and it loses nothing: leases, latches and the
 * roster of robots live above the tree, and it asks the running links to announce themselves.
 * Every child is registered in the fleet's registry under its name, and every robot link under
 * `robot:<id>` or `agv:<manufacturer>/<serial>`; every link reads the fleet's latch table.
 *
 * With a `placement` (several nodes share the fleet), a robot's link runs only on the node that
 * owns it: `arms` manages every configured arm and starts or stops their links as they are given
 * to this node or taken away, and `mqtt` does so for the AGVs it hears; `state` shares the views
 * of the robots this node runs with the other nodes and keeps theirs (`NodeViews.ts`).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Actor from "../../actors/Actor.js"
import type { ActorRef } from "../../actors/ActorRef.js"
import * as PubSub from "../../actors/PubSub.js"
import * as Registry from "../../actors/Registry.js"
import * as RmiLink from "../../links/rmi/RmiLink.js"
import * as AgvLink from "../../links/vda5050/AgvLink.js"
import type * as HeardHeaderIds from "../../links/vda5050/HeardHeaderIds.js"
import * as MqttLink from "../../links/vda5050/MqttLink.js"
import type * as Placement from "../../links/Placement.js"
import type * as OfficialSchemas from "../../links/vda5050/OfficialSchemas.js"
import * as Backoff from "../../supervisors/Backoff.js"
import * as ChildSpec from "../../supervisors/ChildSpec.js"
import * as DynamicSupervisor from "../../supervisors/DynamicSupervisor.js"
import * as Supervisor from "../../supervisors/Supervisor.js"
import * as ControlLoop from "./ControlLoop.js"
import * as FleetState from "./FleetState.js"
import type * as Leases from "./Leases.js"
import type { StopLatches } from "./StopLatches.js"
import type * as LinkEvent from "../../links/LinkEvent.js"
import * as SampleColumns from "../../links/SampleColumns.js"
import * as StopChannel from "./StopChannel.js"
import * as SpeedGuard from "./SpeedGuard.js"
import * as TelemetryRecorder from "./TelemetryRecorder.js"
import type { TelemetryLog } from "../../store/TelemetryLog.js"
import type { FleetSettings } from "./FleetConfig.js"

/** What the subtree is built from. */
export interface FleetTreeOptions {
  readonly settings: FleetSettings
  readonly hub: PubSub.PubSub
  /** Unique keys: `links`, `mqtt`, `state`, `control`, `robot:<id>`, `agv:<manufacturer>/<serial>`. */
  readonly registry: Registry.Registry<string, any>
  /** Backoff of robot link restarts; default 200 ms doubling to 10 s. */
  readonly linkBackoff?: Backoff.Backoff | undefined
  /** Where telemetry is recorded (a `telemetry` child); not recorded without it. */
  readonly telemetryLog?: TelemetryLog["Type"] | undefined
  /** The stop channel's table, hooks and status (a `stop` child when `settings.stopPort` is set). */
  readonly stopChannel?: Pick<StopChannel.StopChannelOptions, "table" | "hooks" | "status"> | undefined
  /** The emergency-stop latches every link consults. */
  readonly latches: StopLatches
  /** The lease table `state` grants from. */
  readonly leases: Leases.Leases
  /** Every robot heard of, kept across restarts of `state`. */
  readonly roster: Map<string, LinkEvent.RobotKind>
  /** Where robots' samples are written (by the links' threads) and read (by `state`, `control`, `telemetry`). */
  readonly samples: SampleColumns.Directory
  /** The bounds of a lease's TTL. */
  readonly ttlBounds: { readonly min: number; readonly max: number }
  /** Told when a lease ends by its TTL or its holder's death. */
  readonly onLeaseLost: FleetState.FleetStateOptions["onLeaseLost"]
  /** Told when any lease ends (the cluster's shared lease is then released). */
  readonly onLeaseEnded?: FleetState.FleetStateOptions["onLeaseEnded"]
  /** The official schemas `mqtt` checks AGV messages against, loaded from `settings.vda5050Schemas`. */
  readonly officialSchemas?: OfficialSchemas.OfficialSchemas | undefined
  /** Which robots this node runs, when several nodes share the fleet; default: every one. */
  readonly placement?: Placement.Placement | undefined
  /** The `instantActions` headerIds heard on the broker, kept above the tree. */
  readonly heard?: HeardHeaderIds.HeardHeaderIds | undefined
}

/** The PubSub topic of the control loop's metrics, once a second. */
export const LoopTopic = "fleet/loop"

/** The registry key of a robot's link, from its fleet id (AGV ids contain a `/`). */
export const linkKey = (robot: string): string => (robot.includes("/") ? `agv:${robot}` : `robot:${robot}`)

/** The links supervisor, found by name. */
export const links = (registry: Registry.Registry<string, any>): Effect.Effect<DynamicSupervisor.DynamicSupervisorRef> =>
  Effect.flatMap(Registry.whereis(registry, "links"), Option.match({
    onNone: () => Effect.dieMessage("fleet/links is not running"),
    onSome: (ref) => Effect.succeed(ref as DynamicSupervisor.DynamicSupervisorRef)
  }))

/** `placement` gave this node an arm or took one away. */
class ArmPlaced {
  readonly _tag = "ArmPlaced"
  constructor(readonly robot: string, readonly owned: boolean) {}
}

/** Stops the link registered under `key`, if it runs. */
const stopLink = (registry: Registry.Registry<string, any>, key: string): Effect.Effect<void> =>
  Effect.gen(function*() {
    const link = Registry.unsafeWhereis(registry, key)
    if (link === undefined) return
    yield* DynamicSupervisor.terminateChild(yield* links(registry), link as ActorRef<never>)
  }).pipe(Effect.catchAll(() => Effect.void))

/**
 * Starts the configured arms' links under `links`; restarted with it, so they come back too.
 * With a placement, only the arms this node owns, following what it is given and loses.
 */
const arms = (options: FleetTreeOptions) => {
  const configured = new Map(options.settings.rmiRobots.map((robot) => [robot.id, robot]))
  const placement = options.placement
  const start = (robot: FleetTreeOptions["settings"]["rmiRobots"][number]) =>
    Effect.gen(function*() {
      const key = linkKey(robot.id)
      if (Registry.unsafeWhereis(options.registry, key) !== undefined) return
      yield* DynamicSupervisor.startChild(
        yield* links(options.registry),
        ChildSpec.make(
          key,
          RmiLink.make({
            id: robot.id,
            host: robot.host,
            port: robot.port,
            pollHz: options.settings.pollHz,
            hub: options.hub,
            latches: options.latches,
            // A lost or refused session is the arm's status: the link reconnects with its own backoff.
            reconnect: options.linkBackoff,
            samples: armSlot(options.samples, robot.id)
          }),
          { restart: "permanent", via: Registry.via(options.registry, key), mailbox: { capacity: 1_000 } }
        )
      ).pipe(Effect.catchAll((error) => Effect.logWarning(`could not start the link of ${robot.id}`, error)))
    })
  return Actor.make<ArmPlaced, null>({
    name: "arms",
    init: (ctx) =>
      Effect.gen(function*() {
        if (placement === undefined) {
          for (const robot of configured.values()) yield* start(robot)
          return null
        }
        const unwatch = placement.watch((robot, owned) => {
          if (configured.has(robot)) ctx.self.unsafeTellUrgent(new ArmPlaced(robot, owned))
        })
        yield* Scope.addFinalizer(ctx.scope, Effect.sync(unwatch))
        yield* placement.manage(configured.keys())
        for (const robot of configured.values()) if (placement.owns(robot.id)) yield* start(robot)
        return null
      }),
    receive: (state, message, ctx) => {
      const robot = configured.get(message.robot)!
      if (!message.owned) {
        // Each lost arm's link stops on its own fiber (its session says FRC_Disconnect first), so
        // that a node losing several arms lets go of them together; given back meanwhile, it starts again.
        const stop = Effect.zipRight(
          stopLink(options.registry, linkKey(robot.id)),
          Effect.sync(() => placement!.owns(robot.id) && ctx.self.unsafeTellUrgent(new ArmPlaced(robot.id, true)))
        )
        return Effect.as(Effect.forkIn(stop, ctx.scope), state)
      }
      return placement!.owns(robot.id) ? Effect.as(start(robot), state) : state
    }
  })
}

/** Where an arm's link writes its polls: its slot, for the life of the process. */
const armSlot = (samples: SampleColumns.Directory, robot: string) => {
  const slot = samples.assign(robot)
  return slot === undefined ? undefined : { columns: samples.columns, slot }
}

/** Whether the fleet knows an AGV: heard of it before (the roster, above the tree) or latched it. */
const knownAgv = (options: FleetTreeOptions) => (robot: string): boolean =>
  options.roster.has(robot) || options.latches.get(robot) !== undefined

const startAgv = (options: FleetTreeOptions) =>
(identity: AgvLink.AgvLinkOptions["identity"], outbox: AgvLink.Outbox, known: boolean) => {
  const slot = options.samples.assign(AgvLink.robotId(identity))
  return Effect.flatMap(links(options.registry), (supervisor) =>
    DynamicSupervisor.startChild(
      supervisor,
      ChildSpec.make(
        MqttLink.agvKey(identity),
        AgvLink.make({
          identity,
          outbox,
          hub: options.hub,
          grace: options.settings.agvGraceMs,
          shared: options.stopChannel?.table.slotOf(identity),
          instantActionsAfter: options.heard?.last(AgvLink.robotId(identity)),
          latches: options.latches,
          // An AGV the fleet did not know is not listed until it reports (a state or a visualization).
          probation: !known,
          samples: slot === undefined ? undefined : { columns: options.samples.columns, slot }
        }),
        { restart: "transient", via: Registry.via(options.registry, MqttLink.agvKey(identity)), mailbox: { capacity: 1_000 } }
      )
    )) as Effect.Effect<ActorRef<AgvLink.AgvLinkMessage>, unknown>
}

/** The `fleet` supervisor; spawn it, or nest it as a child of the service's root. */
export const make = (options: FleetTreeOptions) => {
  const { registry, settings } = options
  const linkBackoff = options.linkBackoff ?? Backoff.exponential({ min: "200 millis", max: "10 seconds" })
  return Supervisor.make({
    strategy: "rest_for_one",
    maxRestarts: 5,
    period: "30 seconds",
    backoff: Backoff.exponential({ min: "200 millis", max: "5 seconds" }),
    children: [
      // A robot or a network acting up (silence, garbage, refusals, dropped connections) is handled
      // inside its link, with the link's own backoff: only a bug crashes a link and counts here.
      // Backoff bounds how often each crashing link restarts, so the intensity is set for a whole fleet.
      ChildSpec.make(
        "links",
        DynamicSupervisor.make({ maxRestarts: settings.linkMaxRestarts, period: "60 seconds", backoff: linkBackoff }),
        { via: Registry.via(registry, "links") }
      ),
      ...(settings.mqttUrl === undefined ? [] : [
        ChildSpec.make(
          "mqtt",
          MqttLink.make({
            url: settings.mqttUrl,
            prefix: settings.mqttPrefix,
            security: settings.mqttSecurity,
            ingestThread: settings.mqttIngestThread,
            ingestThreads: settings.mqttIngestThreads,
            officialSchemas: options.officialSchemas,
            registry,
            samples: options.samples,
            startAgv: startAgv(options),
            placement: options.placement,
            heard: options.heard,
            senderTag: options.placement === undefined ? undefined : `${options.placement.node}-`,
            stopAgv: (identity) => stopLink(registry, MqttLink.agvKey(identity)),
            admission: {
              maxAgvs: settings.maxAgvs,
              perSecond: settings.agvDiscoveryRate,
              manufacturers: settings.agvManufacturers === undefined ? undefined : new Set(settings.agvManufacturers),
              known: knownAgv(options),
              // A latched AGV is never kept out: its unconfirmed stop is resent as soon as its link runs.
              always: (robot) => options.latches.get(robot) !== undefined
            }
          }),
          { via: Registry.via(registry, "mqtt"), mailbox: { capacity: 100_000 } }
        )
      ]),
      ChildSpec.make("arms", arms(options)),
      // Before state: a crash of state never restarts the stop channel.
      ...(settings.stopPort === undefined || settings.mqttUrl === undefined || options.stopChannel === undefined ? [] : [
        ChildSpec.make(
          "stop",
          StopChannel.make({
            ...options.stopChannel,
            host: settings.stopHost,
            port: settings.stopPort,
            brokerUrl: settings.mqttUrl,
            brokerSecurity: settings.mqttSecurity,
            prefix: settings.mqttPrefix,
            realtimePriority: settings.stopRealtimePriority,
            allowedHosts: settings.edge.allowedHosts,
            allowedOrigins: settings.edge.allowedOrigins,
            tls: settings.edge.tls,
            access: settings.edge.access
          }),
          { via: Registry.via(registry, "stop") }
        )
      ]),
      ChildSpec.make(
        "control",
        ControlLoop.makeWorker({
          hz: 100,
          phases: SpeedGuard.workerPhases(options.hub, {}, options.samples),
          priority: -10,
          realtimePriority: settings.controlLoopRealtimePriority,
          report: (metrics) => void Effect.runFork(PubSub.broadcast(options.hub, LoopTopic, metrics))
        }),
        { via: Registry.via(registry, "control") }
      ),
      ...(options.telemetryLog === undefined ? [] : [
        ChildSpec.make(
          "telemetry",
          TelemetryRecorder.make(options.hub, options.telemetryLog, { samples: options.samples, poseHz: settings.telemetryPoseHz })
        )
      ]),
      // Last: its crash restarts no sibling, and what it needs to rebuild its view lives above the tree.
      ChildSpec.make(
        "state",
        FleetState.make({
          hub: options.hub,
          arms: settings.rmiRobots.map((r) => r.id),
          armBases: settings.armBases,
          leases: options.leases,
          latches: options.latches,
          roster: options.roster,
          registry,
          samples: options.samples,
          ttlBounds: options.ttlBounds,
          onLeaseLost: options.onLeaseLost,
          onLeaseEnded: options.onLeaseEnded,
          placement: options.placement
        }),
        { via: Registry.via(registry, "state") }
      )
    ]
  })
}
