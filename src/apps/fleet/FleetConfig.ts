/**
 * The fleet's configuration, read with effect `Config` (environment variables by default).
 * Each setting is declared once below (`Setting`: variable, `Config`, default, help); `--help`
 * and docs/service.md list them from there.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { BrokerSecurity } from "../../links/mqtt/BrokerSecurity.js"
import { type ArmLimits, defaultMaxSpeed, type Range } from "./CommandLimits.js"
import type { StopChannelAccess, StopChannelTls } from "./StopChannel.js"
import * as Setting from "../../node/Setting.js"

/** One FANUC arm to link to. */
export interface RmiRobot {
  /** Its id in the fleet; no `/` (that is how AGV ids look). */
  readonly id: string
  readonly host: string
  readonly port: number
}

/** The fleet's configuration. */
export interface FleetSettings {
  readonly rmiRobots: ReadonlyArray<RmiRobot>
  readonly pollHz: number
  readonly mqttUrl: string | undefined
  readonly mqttPrefix: string
  /** User name and secret files of every broker connection (`BrokerSecurity`). */
  readonly mqttSecurity: BrokerSecurity
  /** Parse and check AGV messages on a thread of their own (`IngestThread`). */
  readonly mqttIngestThread: boolean
  /** How many ingest threads, with `mqttIngestThread`. */
  readonly mqttIngestThreads: number
  /** The folder of the official VDA 5050 JSON Schemas AGV messages are checked against (`OfficialSchemas`); none: the message schemas alone. */
  readonly vda5050Schemas: string | undefined
  readonly demo: boolean
  readonly demoArms: number
  readonly demoAgvs: number
  readonly leaseTtlMs: number
  /** What a robot does when its lease ends by its TTL or its holder's death, per kind. */
  readonly onLeaseLost: { readonly arm: LeaseLostAction; readonly agv: LeaseLostAction }
  /** Highest tool speed of an arm without limits of its own, mm/s. */
  readonly armMaxSpeed: number
  /** Limits of particular arms (speed, workspace envelope). */
  readonly armLimits: ReadonlyMap<string, Partial<ArmLimits>>
  /** Where arms stand on the fleet's map, meters (the dashboard draws them there). */
  readonly armBases: ReadonlyMap<string, { readonly x: number; readonly y: number }>
  readonly agvGraceMs: number
  /** The most AGV links at once (`MqttLink`'s admission). */
  readonly maxAgvs: number
  /** Poses recorded per robot per second from the sample columns into the telemetry log; 0: none. */
  readonly telemetryPoseHz: number
  /** New AGVs admitted per second (known ones never wait). */
  readonly agvDiscoveryRate: number
  /** Manufacturers whose AGVs may be admitted; none: any. */
  readonly agvManufacturers: ReadonlyArray<string> | undefined
  /** Restarts of robot links within a minute before `fleet/links` itself fails (its intensity). */
  readonly linkMaxRestarts: number
  /** SCHED_FIFO priority of the control loop's thread (`ControlLoop.makeWorker`'s `realtimePriority`); none: normal scheduling. */
  readonly controlLoopRealtimePriority: number | undefined
  /** Port of the stop channel (`StopChannel`); none: no channel, stops go through the gateway only. */
  readonly stopPort: number | undefined
  /** Address the stop channel listens on. */
  readonly stopHost: string
  /** SCHED_FIFO priority of the stop channel's thread; none: normal scheduling. */
  readonly stopRealtimePriority: number | undefined
  /**
   * Who may reach the node's ports, for the stop channel's own checks: host names besides
   * loopback names (`ALLOWED_HOSTS`) and page origins (`ALLOWED_ORIGINS`). The service's
   * settings, handed over by the node (not read here).
   */
  readonly edge: {
    readonly allowedHosts: ReadonlyArray<string>
    readonly allowedOrigins: ReadonlyArray<string>
    /** The node's certificate (`TLS_CERT_FILE`): the stop channel then serves WSS. */
    readonly tls?: StopChannelTls | undefined
    /** The node's identities (`AUTH` set): the stop channel then checks each connection's credential. */
    readonly access?: StopChannelAccess | undefined
  }
}

/** What a robot does when its control lease is lost: `pause` it, or leave it be. */
export type LeaseLostAction = "pause" | "none"

/** The limits of arm `id`: its own, over the fleet's maximum speed. */
export const armLimitsOf = (settings: Pick<FleetSettings, "armMaxSpeed" | "armLimits">, id: string): ArmLimits => ({
  maxSpeed: settings.armMaxSpeed,
  ...settings.armLimits.get(id)
})

/** Parses `arm-1:speed=1500,x=-800..800,z=0..1200;arm-2:speed=500`. */
export const parseArmLimits = (text: string): Either.Either<ReadonlyMap<string, Partial<ArmLimits>>, string> => {
  const limits = new Map<string, Partial<ArmLimits>>()
  const number = "(-?\\d+(?:\\.\\d+)?)"
  for (const entry of text.split(";").map((s) => s.trim()).filter((s) => s !== "")) {
    const colon = entry.indexOf(":")
    const id = entry.slice(0, colon).trim()
    if (colon <= 0 || id.includes("/")) return Either.left(`"${entry}" is not id:key=value,… (an arm id without "/")`)
    const arm: { maxSpeed?: number; x?: Range; y?: Range; z?: Range } = {}
    for (const item of entry.slice(colon + 1).split(",").map((s) => s.trim()).filter((s) => s !== "")) {
      const speed = new RegExp(`^speed=${number}$`).exec(item)
      const range = new RegExp(`^([xyz])=${number}\\.\\.${number}$`).exec(item)
      if (speed !== null && Number(speed[1]) > 0) arm.maxSpeed = Number(speed[1])
      else if (range !== null && Number(range[2]) < Number(range[3])) {
        arm[range[1] as "x" | "y" | "z"] = { min: Number(range[2]), max: Number(range[3]) }
      } else return Either.left(`"${item}" of ${id} is not speed=<mm/s above 0> or x|y|z=<min>..<max> with min < max`)
    }
    limits.set(id, arm)
  }
  return Either.right(limits)
}

/** Parses `arm-1=6,1.5;arm-2=12,1.5`: each arm's base on the map, x and y in meters. */
export const parseArmBases = (text: string): Either.Either<ReadonlyMap<string, { readonly x: number; readonly y: number }>, string> => {
  const bases = new Map<string, { readonly x: number; readonly y: number }>()
  for (const entry of text.split(";").map((s) => s.trim()).filter((s) => s !== "")) {
    const match = /^([^=/\s]+)\s*=\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)$/.exec(entry)
    if (match === null) return Either.left(`"${entry}" is not id=x,y (meters; an arm id without "/")`)
    bases.set(match[1], { x: Number(match[2]), y: Number(match[3]) })
  }
  return Either.right(bases)
}

/** The fleet's configuration as a service. */
export class FleetConfig extends Context.Tag("fleetvisor/apps/fleet/FleetConfig")<FleetConfig, FleetSettings>() {}

/** Parses `arm-1=10.0.0.5:16001,arm-2=10.0.0.6`. */
export const parseRobots = (text: string): Either.Either<ReadonlyArray<RmiRobot>, string> => {
  const robots: Array<RmiRobot> = []
  for (const item of text.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    const match = /^([^=/\s]+)=([^:\s]+)(?::(\d+))?$/.exec(item)
    if (match === null) return Either.left(`"${item}" is not id=host[:port] (an id without "/")`)
    const port = match[3] === undefined ? 16001 : Number(match[3])
    if (port < 1 || port > 65535) return Either.left(`"${item}": port ${port} is out of range`)
    robots.push({ id: match[1], host: match[2], port })
  }
  if (new Set(robots.map((r) => r.id)).size !== robots.length) return Either.left("robot ids must be unique")
  return Either.right(robots)
}

// Refusals of a variable's value carry no path: `Config` prefixes the variable's name.

/** A list read by `parse`, its refusal an error naming the variable. */
const parsed = <A>(parse: (text: string) => Either.Either<A, string>) => (name: string) =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => Either.mapLeft(parse(text), (reason) => ConfigError.InvalidData([], reason)))
  )

const bounded = (min: number, max: number) => (name: string) =>
  Config.integer(name).pipe(
    Config.mapOrFail((n) =>
      n >= min && n <= max
        ? Either.right(n)
        : Either.left(ConfigError.InvalidData([], `${n} must be between ${min} and ${max}`))
    )
  )

const leaseLost = Config.literal("pause", "none")

/** `off`, or an integer from `min` to `max`. */
const offOr = (min: number, max: number) => (name: string) =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      if (text === "off") return Either.right(undefined)
      const n = Number(text)
      return text.trim() !== "" && Number.isInteger(n) && n >= min && n <= max
        ? Either.right(n)
        : Either.left(ConfigError.InvalidData([], `"${text}" must be off or an integer from ${min} to ${max}`))
    })
  )

/** An optional setting, empty meaning unset. */
const nonEmpty = (value: Option.Option<string>): string | undefined => Option.getOrUndefined(Option.filter(value, (s) => s !== ""))

/** The fleet's settings, each declared once; `--help` and docs/service.md list them in this order. */
const declared = Setting.group("Fleet", {
  enabled: Setting.make("FLEET", {
    config: Config.boolean,
    default: "on",
    help: "`off` runs the node without the fleet (its RPCs answer from an empty fleet, `/fleet/` and `/stream` are 404)."
  }),
  rmiRobots: Setting.make("FLEET_RMI_ROBOTS", {
    config: parsed(parseRobots),
    default: "",
    shown: "(none)",
    help: "FANUC arms over RMI: `arm-1=10.0.0.5:16001,arm-2=10.0.0.6` (port 16001 when left out)."
  }),
  pollHz: Setting.make("FLEET_RMI_POLL_HZ", {
    config: bounded(10, 125),
    default: "10",
    help: "Polls per second of each arm's status, position and joints (10–125)."
  }),
  mqttUrl: Setting.optional("FLEET_MQTT_URL", {
    config: Config.string,
    unset: "(none)",
    help:
      "The VDA 5050 broker, e.g. `mqtt://127.0.0.1:1883`. None: no AGVs, or the demo's embedded broker on 127.0.0.1:18830."
  }),
  mqttPrefix: Setting.make("FLEET_MQTT_PREFIX", {
    config: Config.string,
    default: "uagv/v2",
    help: "`interfaceName/majorVersion` of the AGV topics."
  }),
  mqttUsername: Setting.optional("FLEET_MQTT_USERNAME", {
    config: Config.string,
    unset: "(none)",
    help:
      "User name at the broker, for every broker connection of the node: `fleet/mqtt`, the ingest thread, the stop channel's thread, the demo's simulators ([links.md](links.md#broker-security))."
  }),
  mqttPasswordFile: Setting.optional("FLEET_MQTT_PASSWORD_FILE", {
    config: Config.string,
    unset: "(none)",
    help:
      "File whose content (one trailing newline removed) is the broker password; read at each connect and reconnect, so a rotated file is used without a restart. With systemd: `LoadCredential=mqtt-password:/etc/fleetvisor/mqtt-password` and `FLEET_MQTT_PASSWORD_FILE=%d/mqtt-password`."
  }),
  mqttCaFile: Setting.optional("FLEET_MQTT_CA_FILE", {
    config: Config.string,
    unset: "(none)",
    help:
      "PEM CA bundle the certificate of an `mqtts://` or `wss://` broker must chain to (a private CA); none: the system's public CAs. Read at each (re)connect."
  }),
  mqttCertFile: Setting.optional("FLEET_MQTT_CERT_FILE", {
    config: Config.string,
    unset: "(none)",
    help:
      "PEM client certificate, for brokers that require one; with `FLEET_MQTT_KEY_FILE`: both or neither, else the service exits with 78. Read at each (re)connect."
  }),
  mqttKeyFile: Setting.optional("FLEET_MQTT_KEY_FILE", {
    config: Config.string,
    unset: "(none)",
    help: "PEM private key of `FLEET_MQTT_CERT_FILE`."
  }),
  mqttIngestThread: Setting.make("FLEET_MQTT_INGEST_THREAD", {
    config: Config.boolean,
    default: "off",
    help:
      "`on`: parse and check AGV messages on a thread of their own (`IngestThread`), with a second broker connection (`<client id>-ingest`), for fleets of thousands of messages a second; `off`: on the main thread ([links.md](links.md#vda-5050-agvs))."
  }),
  mqttIngestThreads: Setting.make("FLEET_MQTT_INGEST_THREADS", {
    config: bounded(1, 16),
    default: "1",
    help:
      "With `FLEET_MQTT_INGEST_THREAD=on`, how many ingest threads. One subscribes to the whole prefix (with `REDIS_URL`, to the topics of the AGVs its node runs, by name); with more, each AGV is given to one thread (by a hash of its id), which subscribes to its topics by name, and AGVs are discovered by their `connection` message (which VDA 5050 requires them to publish) ([links.md](links.md#samples-and-events))."
  }),
  vda5050Schemas: Setting.optional("FLEET_VDA5050_SCHEMAS", {
    config: Config.string,
    unset: "(none: the message schemas alone)",
    help:
      "Folder of the official VDA 5050 JSON Schemas (each version's `json_schemas` of github.com/VDA5050/VDA5050): `schemas-2.0.0/`, `schemas-2.1.0/`… of `<topic>.schema` files, or one version's files. Each AGV message is checked against the schema of its header's version (compiled once, ajv); a visualization then skips the message schemas' decoding, about half the cost. A folder that cannot be loaded stops the start (exit 78) ([links.md](links.md#official-json-schemas))."
  }),
  demo: Setting.optional("FLEET_DEMO", {
    config: Config.boolean,
    unset: "on when neither arms nor a broker are set",
    help: "Simulated arms (RMI over TCP) and AGVs (over the broker, or an embedded one), so the dashboard moves at once."
  }),
  demoArms: Setting.make("FLEET_DEMO_ARMS", {
    config: bounded(0, 100),
    default: "3",
    help: "Simulated arms of the demo (0–100)."
  }),
  demoAgvs: Setting.make("FLEET_DEMO_AGVS", {
    config: bounded(0, 10_000),
    default: "12",
    help: "Simulated AGVs of the demo (0–10000)."
  }),
  leaseTtlMs: Setting.make("FLEET_LEASE_TTL_MS", {
    config: bounded(1_000, 3_600_000),
    default: "30000",
    help:
      "A control lease's default time to live; the dashboard renews it while held. A client may ask 1 s to 10 min (or up to this default, if longer)."
  }),
  leaseLostArm: Setting.make("FLEET_LEASE_LOST_ARM", {
    config: leaseLost,
    default: "pause",
    help: "What an arm does when its lease ends by its TTL or its holder's death: `pause` (FRC_Pause) or `none`."
  }),
  leaseLostAgv: Setting.make("FLEET_LEASE_LOST_AGV", {
    config: leaseLost,
    default: "none",
    help: "The same for an AGV: `none` (its order runs on) or `pause` (startPause)."
  }),
  armMaxSpeed: Setting.make("FLEET_ARM_MAX_SPEED", {
    config: bounded(1, 100_000),
    default: String(defaultMaxSpeed),
    help:
      "Highest tool speed (mm/s) of a linear motion to an arm without limits of its own; faster is refused with `InvalidRequest`."
  }),
  armLimits: Setting.make("FLEET_ARM_LIMITS", {
    config: parsed(parseArmLimits),
    default: "",
    shown: "(none)",
    help:
      "Per-arm speed and workspace envelope: `arm-1:speed=1500,x=-800..800,y=-800..800,z=0..1200;arm-2:speed=500` (mm/s; mm in the user frame). A target outside is refused; without an envelope, a target beyond 10 m is."
  }),
  armBases: Setting.make("FLEET_ARM_BASES", {
    config: parsed(parseArmBases),
    default: "",
    shown: "(none; the demo's arms stand beside its AGVs)",
    help:
      "Where arms stand on the dashboard's map, meters: `arm-1=6,1.5;arm-2=12,1.5`. An arm without one is listed, not drawn."
  }),
  agvGraceMs: Setting.make("FLEET_AGV_GRACE_MS", {
    config: bounded(0, 86_400_000),
    default: "60000",
    help:
      "How long an OFFLINE, CONNECTIONBROKEN or silent AGV keeps its link before the link is let go; the AGV stays listed, offline, until the service restarts. Also how long a newly discovered AGV may go without sending a state or visualization before its link is let go."
  }),
  maxAgvs: Setting.make("FLEET_MAX_AGVS", {
    config: bounded(1, 1_000_000),
    default: "2000",
    help:
      "Most AGV links at once. Past it, an AGV without a link is refused (its messages dropped, counted in `fleetvisor_mqtt_agvs_refused_total{reason=\"cap\"}`, logged sampled) until links are let go. Size it above the fleet ([links.md](links.md#admission))."
  }),
  telemetryPoseHz: Setting.make("FLEET_TELEMETRY_POSE_HZ", {
    config: bounded(0, 100),
    default: "10",
    help:
      "AGV poses and arm polls recorded in the telemetry log per robot per second, sampled from the fleet's sample columns by the log's worker thread whatever rate the robots report at (`0`: none; states, arms' status changes and alarms are recorded as they come) ([links.md](links.md#samples-and-events))."
  }),
  agvDiscoveryRate: Setting.make("FLEET_AGV_DISCOVERY_RATE", {
    config: bounded(1, 1_000_000),
    default: "50",
    help:
      "New AGVs admitted per second (a bucket of one second's worth). New: neither in the fleet's roster (every robot it has listed since the process started) nor latched. Known AGVs never wait: after a restart of `fleet/links` their retained `connection` admits them at once."
  }),
  agvManufacturers: Setting.make("FLEET_AGV_MANUFACTURERS", {
    config: (name) =>
      Config.string(name).pipe(
        Config.mapOrFail((text) => {
          const list = text.split(",").map((s) => s.trim()).filter((s) => s !== "")
          if (list.some((m) => /[/+#]/.test(m))) {
            return Either.left(ConfigError.InvalidData([], `"${text}" must be manufacturers without / + #`))
          }
          return Either.right(list.length === 0 ? undefined : list)
        })
      ),
    default: "",
    shown: "(any)",
    help:
      "Comma-separated manufacturers whose AGVs may be admitted (`acme,kit`); any other is refused. The demo's AGVs are `fleetvisor`."
  }),
  linkMaxRestarts: Setting.make("FLEET_LINK_MAX_RESTARTS", {
    config: bounded(1, 1_000_000),
    default: "10000",
    help:
      "Crashes of robot links within a minute before `fleet/links` gives up and `fleet` restarts it (the links' restart intensity; each crashing link is backed off, 200 ms doubling to 10 s). Only bugs crash a link: a robot's silence, garbage, refusals or dropped connections are its status, handled inside its link with a backoff of its own, and never count."
  }),
  controlLoopRealtimePriority: Setting.make("FLEET_CONTROL_LOOP_REALTIME_PRIORITY", {
    config: offOr(1, 99),
    default: "off",
    help:
      "SCHED_FIFO priority (1–99) of the control loop's thread only, so its ticks stay on time when the cores are busy. Needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least that (systemd `LimitRTPRIO=`, see [Real-time priority of the control loop](#real-time-priority-of-the-control-loop)); refused, a warning is logged and the loop runs at normal priority."
  }),
  stopPort: Setting.make("FLEET_STOP_PORT", {
    config: offOr(0, 65_535),
    default: "off",
    help:
      "Port of the stop channel: emergency stops over a WebSocket served by a thread of its own with its own MQTT connection, published to AGVs without the main thread ([links.md](links.md#the-stop-channel)); `0` picks a free port. The dashboard uses it when it is on."
  }),
  stopHost: Setting.make("FLEET_STOP_HOST", {
    config: Config.string,
    default: "127.0.0.1",
    help: "Address the stop channel listens on."
  }),
  stopRealtimePriority: Setting.make("FLEET_STOP_REALTIME_PRIORITY", {
    config: offOr(1, 99),
    default: "off",
    help:
      "SCHED_FIFO priority (1–99) of the stop channel's thread, as for the control loop (same drop-in: `LimitRTPRIO=` at least the higher of the two)."
  })
})

/** Every variable of the fleet, `FLEET` first, in the order of `--help`. */
export const settings: ReadonlyArray<Setting.Setting<unknown>> = Object.values(declared)

/** `FLEET`: whether the node runs the fleet at all. */
export const enabled: Config.Config<boolean> = declared.enabled.config

/** The broker's user name and secret files; a certificate goes with its key. */
const brokerSecurity: Config.Config<BrokerSecurity> = Config.all({
  username: Config.map(declared.mqttUsername.config, nonEmpty),
  passwordFile: Config.map(declared.mqttPasswordFile.config, nonEmpty),
  caFile: Config.map(declared.mqttCaFile.config, nonEmpty),
  certFile: Config.map(declared.mqttCertFile.config, nonEmpty),
  keyFile: Config.map(declared.mqttKeyFile.config, nonEmpty)
}).pipe(
  Config.mapOrFail((security) =>
    (security.certFile === undefined) === (security.keyFile === undefined)
      ? Either.right(security)
      : Either.left(ConfigError.InvalidData(
        [security.certFile === undefined ? "FLEET_MQTT_CERT_FILE" : "FLEET_MQTT_KEY_FILE"],
        "FLEET_MQTT_CERT_FILE and FLEET_MQTT_KEY_FILE go together: set both (a client certificate and its key) or neither"
      ))
  )
)

/** Reads the fleet's settings, declared above; `FLEET_DEMO` unset means a demo when neither arms nor a broker are set. */
export const config: Config.Config<FleetSettings> = Config.all({
  rmiRobots: declared.rmiRobots.config,
  pollHz: declared.pollHz.config,
  mqttUrl: declared.mqttUrl.config,
  mqttPrefix: declared.mqttPrefix.config,
  mqttSecurity: brokerSecurity,
  mqttIngestThread: declared.mqttIngestThread.config,
  mqttIngestThreads: declared.mqttIngestThreads.config,
  vda5050Schemas: Config.map(declared.vda5050Schemas.config, nonEmpty),
  demo: declared.demo.config,
  demoArms: declared.demoArms.config,
  demoAgvs: declared.demoAgvs.config,
  leaseTtlMs: declared.leaseTtlMs.config,
  onLeaseLost: Config.all({ arm: declared.leaseLostArm.config, agv: declared.leaseLostAgv.config }),
  armMaxSpeed: declared.armMaxSpeed.config,
  armLimits: declared.armLimits.config,
  armBases: declared.armBases.config,
  agvGraceMs: declared.agvGraceMs.config,
  maxAgvs: declared.maxAgvs.config,
  telemetryPoseHz: declared.telemetryPoseHz.config,
  agvDiscoveryRate: declared.agvDiscoveryRate.config,
  agvManufacturers: declared.agvManufacturers.config,
  linkMaxRestarts: declared.linkMaxRestarts.config,
  controlLoopRealtimePriority: declared.controlLoopRealtimePriority.config,
  stopPort: declared.stopPort.config,
  stopHost: declared.stopHost.config,
  stopRealtimePriority: declared.stopRealtimePriority.config
}).pipe(
  Config.map(({ demo, mqttUrl, ...rest }) => {
    const url = Option.getOrUndefined(Option.filter(mqttUrl, (u) => u !== ""))
    return {
      ...rest,
      edge: { allowedHosts: [], allowedOrigins: [] },
      mqttUrl: url,
      demo: Option.getOrElse(demo, () => rest.rmiRobots.length === 0 && url === undefined)
    }
  })
)

/** The configuration read from the environment. */
export const layer: Layer.Layer<FleetConfig, ConfigError.ConfigError> = Layer.effect(FleetConfig, config)

/** The settings with every variable unset, but no demo: what `make` starts from. */
const defaults: FleetSettings = { ...Setting.defaultsOf(config), demo: false }

/** A fixed configuration (tests, embedding); unspecified fields take their defaults (no demo). */
export const make = (settings: Partial<FleetSettings>): FleetSettings => ({ ...defaults, ...settings })
