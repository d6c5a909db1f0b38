/**
 * The fleet from a terminal: `robots`, `watch`, `stop`, `reset`, over the typed client
 * (`src/client`) and protocol v1, as a dashboard would.
 *
 * ```text
 * $ fleetvisor robots                       a table of every robot (--json: the views)
 * $ fleetvisor watch demo/agv-1 --count 5   the robot's view as it changes (JSON lines with --json)
 * $ fleetvisor stop demo/agv-1              an emergency stop; `stop --all` stops every robot
 * $ fleetvisor reset demo/agv-1             takes the lease, sends Reset, gives the lease back
 * ```
 *
 * Each takes `--url` (default `http://127.0.0.1:8080`) and a bearer token from `--token-file`
 * or `FLEETVISOR_TOKEN`, never from the command line (where `ps` shows it); it is sent as
 * `Authorization: Bearer`. Exit codes are `CliError.ExitCode`'s.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Socket from "@effect/platform/Socket"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as WS from "ws"
import * as FleetvisorClient from "../client/FleetvisorClient.js"
import type { RobotView, StopReport } from "../protocol/FleetRpcs.js"
import { CliError, ExitCode } from "./CliError.js"

/** `--url`: the service. */
export const url = Options.text("url").pipe(
  Options.withDescription("The service (http:// or https://)"),
  Options.withDefault("http://127.0.0.1:8080")
)

/** `--token-file`: a file holding the bearer token. */
export const tokenFile = Options.file("token-file", { exists: "yes" }).pipe(
  Options.withDescription("A file holding the bearer token (default: $FLEETVISOR_TOKEN)"),
  Options.optional
)

const json = Options.boolean("json").pipe(Options.withDescription("Print JSON"))

/** The bearer token: the file's first line, else `FLEETVISOR_TOKEN`, else none. */
export const tokenOf = (file: Option.Option<string>): Effect.Effect<string | undefined, CliError> =>
  Option.match(file, {
    onNone: () => Effect.succeed(process.env.FLEETVISOR_TOKEN || undefined),
    onSome: (path) =>
      Effect.try({
        try: () => fs.readFileSync(path, "utf8").split("\n")[0].trim() || undefined,
        catch: (error) => new CliError({ message: `--token-file ${path}: ${(error as Error).message}`, exitCode: ExitCode.usage })
      })
  })

/** The WebSocket endpoint of a service URL: `http://h:p` → `ws://h:p/ws`, `https` → `wss`. */
export const endpointOf = (service: string): string => {
  const parsed = new URL("/ws", service)
  parsed.protocol = parsed.protocol === "https:" ? "wss:" : "ws:"
  return parsed.toString()
}

/** Close codes that mean "not allowed": no or a bad credential, or a role too low. */
const refusedCodes = new Set([4401, 4403])

/**
 * A connected client, once its socket is open: fails at once when the service refuses the
 * credential, and after 10 s when it cannot be reached.
 */
const connect = (service: string, token: string | undefined) =>
  Effect.gen(function*() {
    const endpoint = endpointOf(service)
    const client = yield* FleetvisorClient.make({ url: endpoint, openTimeout: "5 seconds", disableTracing: true }).pipe(
      Effect.provideService(Socket.WebSocketConstructor, (target, protocols) =>
        new WS.WebSocket(target, protocols, {
          headers: token === undefined ? {} : { authorization: `Bearer ${token}` }
        }) as unknown as globalThis.WebSocket)
    )
    const refused = client.state.pipe(
      Stream.filter((state) => state._tag === "Closed" && refusedCodes.has(state.code)),
      Stream.runHead,
      Effect.flatMap((state) => {
        const reason = Option.match(state, { onNone: () => "", onSome: (s) => s._tag === "Closed" ? s.reason : "" })
        return new CliError({
          message: `${endpoint}: ${reason || "not allowed"} (set FLEETVISOR_TOKEN or --token-file)`,
          exitCode: ExitCode.notAllowed
        })
      })
    )
    yield* Effect.raceFirst(
      Effect.mapError(client.ready, (error) => new CliError({ message: error.message, exitCode: ExitCode.unreachable })),
      refused
    ).pipe(
      Effect.timeoutFail({
        duration: "10 seconds",
        onTimeout: () => new CliError({ message: `cannot reach ${endpoint}`, exitCode: ExitCode.unreachable })
      })
    )
    return client
  })

/** A typed error of the fleet, or a lost connection, in words and with its exit code. */
const explain = (error: unknown): CliError => {
  if (error instanceof CliError) return error
  if (error instanceof RpcClientError) return new CliError({ message: `connection lost: ${error.message}`, exitCode: ExitCode.unreachable })
  const e = error as { _tag?: string; robot?: string; holder?: string; since?: number; by?: string; reason?: string; code?: string; field?: string; message?: string }
  const message = (() => {
    switch (e._tag) {
      case "UnknownRobot":
        return `no robot ${e.robot}`
      case "ControlHeld":
        return `${e.robot} is held by ${e.holder}`
      case "NotController":
        return `this session does not hold ${e.robot}`
      case "RobotOffline":
        return `${e.robot} is not connected`
      case "RobotStopped":
        return `${e.robot} is stopped since ${new Date(e.since ?? 0).toISOString()} by ${e.by}; it needs a Reset`
      case "CommandRefused":
        return `${e.robot} refused: ${e.code === undefined ? "" : `${e.code} `}${e.reason}`
      case "InvalidRequest":
        return `${e.field}: ${e.reason}`
      case "Unauthorized":
      case "Forbidden":
        return e.message ?? e._tag
      default:
        return e.message ?? String(error)
    }
  })()
  const notAllowed = e._tag === "Unauthorized" || e._tag === "Forbidden"
  return new CliError({ message, exitCode: notAllowed ? ExitCode.notAllowed : ExitCode.refused })
}

const common = { url, tokenFile }

/** Runs `use` with a connected client; every failure becomes a `CliError`. */
const withClient = <A>(
  options: { readonly url: string; readonly tokenFile: Option.Option<string> },
  use: (client: FleetvisorClient.FleetvisorClient["Type"]) => Effect.Effect<A, unknown>
): Effect.Effect<A, CliError> =>
  Effect.scoped(Effect.gen(function*() {
    const token = yield* tokenOf(options.tokenFile)
    const client = yield* connect(options.url, token)
    return yield* use(client)
  })).pipe(Effect.mapError(explain))

const cell = (value: unknown): string => value === undefined ? "-" : String(value)

/** The columns of `robots`. */
export const table = (robots: ReadonlyArray<RobotView>): string => {
  const header = ["ID", "KIND", "STATUS", "CONNECTION", "SAFETY", "BATTERY", "HELD BY", "ALARMS"]
  const rows = [...robots].sort((a, b) => a.id.localeCompare(b.id)).map((robot) => [
    robot.id,
    robot.kind,
    robot.status,
    cell(robot.connection),
    robot.stop === undefined ? cell(robot.safety) : `${robot.safety} by ${robot.stop.by}`,
    robot.battery === undefined ? "-" : `${Math.round(robot.battery)}%`,
    cell(robot.controlledBy),
    robot.alarms.map((alarm) => alarm.code).join(",") || "-"
  ])
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i].length)))
  return [header, ...rows].map((row) => row.map((value, i) => value.padEnd(widths[i])).join("  ").trimEnd()).join("\n")
}

/** One line of `watch` for a robot's view. */
export const line = (robot: RobotView): string => {
  const where = robot.kind === "agv"
    ? `x=${robot.pose.x.toFixed(2)} y=${robot.pose.y.toFixed(2)} θ=${robot.pose.theta.toFixed(2)}`
    : `joints=${robot.joints.map((j) => j.toFixed(1)).join(",")}`
  const battery = robot.battery === undefined ? "" : ` battery=${Math.round(robot.battery)}%`
  const alarms = robot.alarms.length === 0 ? "" : ` alarms=${robot.alarms.map((a) => a.code).join(",")}`
  return `${new Date().toISOString()} ${robot.id} ${robot.status} ${cell(robot.connection)}/${cell(robot.safety)} ${where}${battery}${alarms}`
}

const robots = Command.make("robots", { ...common, json }, (options) =>
  withClient(options, (client) =>
    Effect.gen(function*() {
      const first = yield* client.rpc.FleetSubscribe({}).pipe(Stream.runHead)
      const views = Option.match(first, { onNone: () => [], onSome: (event) => event.robots })
      yield* Console.log(options.json ? JSON.stringify(views, null, 2) : table(views))
    }))).pipe(Command.withDescription("Print every robot: status, connection, safety, battery, lease holder, alarms"))

const watch = Command.make("watch", {
  ...common,
  json,
  robot: Args.text({ name: "robot" }).pipe(Args.withDescription("The robot's id, e.g. demo/agv-1 or arm-1")),
  count: Options.integer("count").pipe(Options.withDescription("Stop after this many views (default: until Ctrl-C)"), Options.optional)
}, (options) =>
  withClient(options, (client) =>
    client.rpc.FleetSubscribe({ robots: [options.robot] }).pipe(
      Stream.mapEffect((event) =>
        event._tag === "FleetSnapshot" && !event.robots.some((robot) => robot.id === options.robot)
          ? Effect.fail(new CliError({ message: `no robot ${options.robot}`, exitCode: ExitCode.refused }))
          : Effect.succeed(event.robots)
      ),
      Stream.flattenIterables,
      (views) => Option.isSome(options.count) ? Stream.take(views, options.count.value) : views,
      Stream.runForEach((robot) => Console.log(options.json ? JSON.stringify(robot) : line(robot)))
    ))).pipe(Command.withDescription("Print a robot's view each time it changes"))

const report = (result: StopReport | undefined): string =>
  result === undefined
    ? "stopped"
    : [
      result.reached.length === 0 ? undefined : `stopped: ${result.reached.join(", ")}`,
      result.latchedOnly.length === 0 ? undefined : `latched without a live link (stopped when it comes back): ${result.latchedOnly.join(", ")}`
    ].filter((part) => part !== undefined).join("\n") || "no robot to stop"

const stop = Command.make("stop", {
  ...common,
  json,
  all: Options.boolean("all").pipe(Options.withDescription("Stop every robot")),
  robot: Args.text({ name: "robot" }).pipe(Args.withDescription("The robot to stop"), Args.optional)
}, (options) =>
  Effect.gen(function*() {
    if (options.all === Option.isSome(options.robot)) {
      return yield* new CliError({ message: "name one robot, or --all", exitCode: ExitCode.usage })
    }
    const robot = Option.getOrUndefined(options.robot)
    const result = yield* withClient(options, (client) => client.rpc.FleetEmergencyStop(robot === undefined ? {} : { robot }))
    yield* Console.log(options.json ? JSON.stringify(result ?? null) : report(result))
  })).pipe(Command.withDescription("Emergency stop of a robot or of every robot (latched until a Reset)"))

const reset = Command.make("reset", {
  ...common,
  robot: Args.text({ name: "robot" }).pipe(Args.withDescription("The stopped robot"))
}, (options) =>
  withClient(options, (client) =>
    Effect.gen(function*() {
      yield* client.rpc.FleetAcquire({ robot: options.robot, ttlMs: 30_000 })
      yield* Effect.ensuring(
        client.rpc.FleetCommand({ robot: options.robot, command: { _tag: "Reset" } }),
        Effect.ignore(client.rpc.FleetRelease({ robot: options.robot }))
      )
      yield* Console.log(`${options.robot} reset`)
    }))).pipe(Command.withDescription("Clear a robot's emergency stop: take its lease, send Reset, give the lease back"))

/** The fleet's commands. */
export const commands = [robots, watch, stop, reset] as const
