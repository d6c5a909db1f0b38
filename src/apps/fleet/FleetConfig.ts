/**
 * The fleet's configuration, read with effect `Config` (environment variables by default):
 *
 * | variable               | default   | meaning                                                        |
 * |------------------------|-----------|----------------------------------------------------------------|
 * | `FLEET_RMI_ROBOTS`     | none      | FANUC arms: `arm-1=10.0.0.5:16001,arm-2=10.0.0.6` (port 16001 if left out) |
 * | `FLEET_RMI_POLL_HZ`    | 10        | polls per second of each arm's status, position and joints (10–125) |
 * | `FLEET_MQTT_URL`       | none      | the VDA 5050 broker; none: no AGVs (or the demo's embedded broker) |
 * | `FLEET_MQTT_PREFIX`    | `uagv/v2` | `interfaceName/majorVersion` of the AGV topics                 |
 * | `FLEET_MQTT_USERNAME`  | none      | user name at the broker (every broker connection of the node)  |
 * | `FLEET_MQTT_PASSWORD_FILE` | none  | file whose content (one trailing newline removed) is the password; read at each (re)connect |
 * | `FLEET_MQTT_CA_FILE`   | none      | PEM CA bundle of an `mqtts://`/`wss://` broker (a private CA); read at each (re)connect |
 * | `FLEET_MQTT_CERT_FILE` | none      | PEM client certificate, for brokers that require one; with `FLEET_MQTT_KEY_FILE` |
 * | `FLEET_MQTT_KEY_FILE`  | none      | its PEM private key; both or neither                           |
 * | `FLEET_MQTT_INGEST_THREAD` | off   | parse and check AGV messages on a thread of their own (`IngestThread`) |
 * | `FLEET_DEMO`           | on when neither arms nor a broker are configured | simulated arms and AGVs |
 * | `FLEET_DEMO_ARMS`      | 3         | simulated arms in the demo                                     |
 * | `FLEET_DEMO_AGVS`      | 12        | simulated AGVs in the demo                                     |
 * | `FLEET_LEASE_TTL_MS`   | 30000     | a control lease's default time to live                         |
 * | `FLEET_LEASE_LOST_ARM` | `pause`   | what an arm does when its lease ends by TTL or its holder's death: `pause` or `none` |
 * | `FLEET_LEASE_LOST_AGV` | `none`    | the same for an AGV (`none` lets its order run)                |
 * | `FLEET_ARM_MAX_SPEED`  | 2000      | highest tool speed of a linear motion, mm/s, for arms without their own |
 * | `FLEET_ARM_LIMITS`     | none      | per arm: `arm-1:speed=1500,x=-800..800,z=0..1200;arm-2:speed=500` |
 * | `FLEET_ARM_BASES`      | none      | where arms stand on the map, meters: `arm-1=6,1.5;arm-2=12,1.5` (an arm without one is listed, not drawn) |
 * | `FLEET_AGV_GRACE_MS`   | 60000     | how long an OFFLINE, CONNECTIONBROKEN or silent AGV keeps its link before it is let go (it stays listed, offline, until the service restarts), and how long a new one may go without a state or visualization |
 * | `FLEET_MAX_AGVS`       | 2000      | the most AGV links at once; an AGV past it is refused (counted, logged sampled) |
 * | `FLEET_AGV_DISCOVERY_RATE` | 50    | new AGVs (not in the roster, not latched) admitted per second; known AGVs never wait |
 * | `FLEET_AGV_MANUFACTURERS` | any    | comma-separated manufacturers whose AGVs may be admitted |
 * | `FLEET_LINK_MAX_RESTARTS` | 10000  | restarts of robot links a minute before `fleet/links` gives up and `fleet` restarts it |
 * | `FLEET_CONTROL_LOOP_REALTIME_PRIORITY` | off | SCHED_FIFO priority (1–99) of the control loop's thread; refused: a warning, normal priority |
 * | `FLEET_STOP_PORT`      | off       | port of the stop channel (`StopChannel`; 0: a free one); off: stops go through the gateway only |
 * | `FLEET_STOP_HOST`      | 127.0.0.1 | address the stop channel listens on                            |
 * | `FLEET_STOP_REALTIME_PRIORITY` | off | SCHED_FIFO priority (1–99) of the stop channel's thread       |
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

const robots = Config.string("FLEET_RMI_ROBOTS").pipe(
  Config.withDefault(""),
  Config.mapOrFail((text) =>
    Either.mapLeft(parseRobots(text), (reason) => ConfigError.InvalidData(["FLEET_RMI_ROBOTS"], reason))
  )
)

const bounded = (name: string, fallback: number, min: number, max: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.mapOrFail((n) =>
      n >= min && n <= max
        ? Either.right(n)
        : Either.left(ConfigError.InvalidData([name], `${n} must be between ${min} and ${max}`))
    )
  )

const leaseLost = (name: string, fallback: LeaseLostAction) =>
  Config.literal("pause", "none")(name).pipe(Config.withDefault(fallback))

/** `off`, or an integer from `min` to `max`. */
const offOr = (name: string, min: number, max: number) =>
  Config.string(name).pipe(
    Config.withDefault("off"),
    Config.mapOrFail((text) => {
      if (text === "off") return Either.right(undefined)
      const n = Number(text)
      return text.trim() !== "" && Number.isInteger(n) && n >= min && n <= max
        ? Either.right(n)
        : Either.left(ConfigError.InvalidData([name], `"${text}" must be off or an integer from ${min} to ${max}`))
    })
  )

/** An optional setting, empty meaning unset. */
const optionalString = (name: string) =>
  Config.option(Config.string(name)).pipe(Config.map((value) => Option.getOrUndefined(Option.filter(value, (s) => s !== ""))))

/** The broker's user name and secret files; a certificate goes with its key. */
const brokerSecurity: Config.Config<BrokerSecurity> = Config.all({
  username: optionalString("FLEET_MQTT_USERNAME"),
  passwordFile: optionalString("FLEET_MQTT_PASSWORD_FILE"),
  caFile: optionalString("FLEET_MQTT_CA_FILE"),
  certFile: optionalString("FLEET_MQTT_CERT_FILE"),
  keyFile: optionalString("FLEET_MQTT_KEY_FILE")
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

/** Reads the configuration; see the module documentation. */
export const config: Config.Config<FleetSettings> = Config.all({
  rmiRobots: robots,
  pollHz: bounded("FLEET_RMI_POLL_HZ", 10, 10, 125),
  mqttUrl: Config.option(Config.string("FLEET_MQTT_URL")),
  mqttPrefix: Config.string("FLEET_MQTT_PREFIX").pipe(Config.withDefault("uagv/v2")),
  mqttSecurity: brokerSecurity,
  mqttIngestThread: Config.boolean("FLEET_MQTT_INGEST_THREAD").pipe(Config.withDefault(false)),
  demo: Config.option(Config.boolean("FLEET_DEMO")),
  demoArms: bounded("FLEET_DEMO_ARMS", 3, 0, 100),
  demoAgvs: bounded("FLEET_DEMO_AGVS", 12, 0, 10_000),
  leaseTtlMs: bounded("FLEET_LEASE_TTL_MS", 30_000, 1_000, 3_600_000),
  onLeaseLost: Config.all({ arm: leaseLost("FLEET_LEASE_LOST_ARM", "pause"), agv: leaseLost("FLEET_LEASE_LOST_AGV", "none") }),
  armMaxSpeed: bounded("FLEET_ARM_MAX_SPEED", defaultMaxSpeed, 1, 100_000),
  armLimits: Config.string("FLEET_ARM_LIMITS").pipe(
    Config.withDefault(""),
    Config.mapOrFail((text) =>
      Either.mapLeft(parseArmLimits(text), (reason) => ConfigError.InvalidData(["FLEET_ARM_LIMITS"], reason))
    )
  ),
  armBases: Config.string("FLEET_ARM_BASES").pipe(
    Config.withDefault(""),
    Config.mapOrFail((text) =>
      Either.mapLeft(parseArmBases(text), (reason) => ConfigError.InvalidData(["FLEET_ARM_BASES"], reason))
    )
  ),
  agvGraceMs: bounded("FLEET_AGV_GRACE_MS", 60_000, 0, 86_400_000),
  maxAgvs: bounded("FLEET_MAX_AGVS", 2_000, 1, 1_000_000),
  agvDiscoveryRate: bounded("FLEET_AGV_DISCOVERY_RATE", 50, 1, 1_000_000),
  agvManufacturers: Config.string("FLEET_AGV_MANUFACTURERS").pipe(
    Config.withDefault(""),
    Config.mapOrFail((text) => {
      const list = text.split(",").map((s) => s.trim()).filter((s) => s !== "")
      if (list.some((m) => /[/+#]/.test(m))) {
        return Either.left(ConfigError.InvalidData(["FLEET_AGV_MANUFACTURERS"], `"${text}" must be manufacturers without / + #`))
      }
      return Either.right(list.length === 0 ? undefined : list)
    })
  ),
  linkMaxRestarts: bounded("FLEET_LINK_MAX_RESTARTS", 10_000, 1, 1_000_000),
  controlLoopRealtimePriority: offOr("FLEET_CONTROL_LOOP_REALTIME_PRIORITY", 1, 99),
  stopPort: offOr("FLEET_STOP_PORT", 0, 65_535),
  stopHost: Config.string("FLEET_STOP_HOST").pipe(Config.withDefault("127.0.0.1")),
  stopRealtimePriority: offOr("FLEET_STOP_REALTIME_PRIORITY", 1, 99)
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

/** A fixed configuration (tests, embedding); unspecified fields take their defaults. */
export const make = (settings: Partial<FleetSettings>): FleetSettings => ({
  rmiRobots: [],
  pollHz: 10,
  mqttUrl: undefined,
  mqttPrefix: "uagv/v2",
  mqttSecurity: {},
  mqttIngestThread: false,
  demo: false,
  demoArms: 3,
  demoAgvs: 12,
  leaseTtlMs: 30_000,
  onLeaseLost: { arm: "pause", agv: "none" },
  armMaxSpeed: defaultMaxSpeed,
  armLimits: new Map(),
  armBases: new Map(),
  agvGraceMs: 60_000,
  maxAgvs: 2_000,
  agvDiscoveryRate: 50,
  agvManufacturers: undefined,
  linkMaxRestarts: 10_000,
  controlLoopRealtimePriority: undefined,
  stopPort: undefined,
  stopHost: "127.0.0.1",
  stopRealtimePriority: undefined,
  edge: { allowedHosts: [], allowedOrigins: [] },
  ...settings
})
