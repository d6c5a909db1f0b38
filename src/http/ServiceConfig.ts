/**
 * The service's configuration: environment variables, overridden by command-line flags
 * (`--max-connections 500` sets `MAX_CONNECTIONS`), read with Effect's `Config` and validated
 * at start. A bad value stops the service with one line per problem, naming the variable.
 *
 * `settings` is the one list of every variable: `--help` prints it and docs/service.md shows it.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as path from "node:path"
import { parseArgs } from "node:util"
import * as ClientAddress from "./ClientAddress.js"
import * as HostCheck from "./HostCheck.js"
import type * as Role from "./Role.js"
import type * as TlsFiles from "./TlsFiles.js"

/** The validated configuration of one service process. */
export interface ServiceConfig {
  readonly port: number
  readonly host: string
  /** The certificate and key files to serve TLS with; none: plain HTTP and WS. */
  readonly tls: Option.Option<TlsFiles.TlsFiles>
  readonly dataDir: string
  readonly maxConnections: number
  /** Most sessions from one client address; 0 for no limit. */
  readonly maxConnectionsPerAddress: number
  /** Reverse proxies whose forwarding headers name the client; none by default. */
  readonly trustedProxies: ClientAddress.TrustedProxies
  readonly maxFrameBytes: number
  /** Requests (not frames) a session may send a second on average, and at once. */
  readonly rateLimit: { readonly perSecond: number; readonly burst: number }
  /** Requests answered once that a session may have unanswered at once. */
  readonly maxRequestsInFlight: number
  /** Streams a session may have open at once. */
  readonly maxStreamsPerSession: number
  readonly heartbeat: { readonly interval: Duration.Duration; readonly timeout: Duration.Duration }
  readonly adminToken: Option.Option<Redacted.Redacted<string>>
  /** Origins allowed to open `/ws` besides the page's own; `["*"]` allows any. */
  readonly allowedOrigins: ReadonlyArray<string>
  /** Names besides loopback, addresses and the listen host that `Host` may carry (`HostCheck`); `*` allows any. */
  readonly allowedHosts: ReadonlyArray<string>
  /** How long a connection may take to send complete request headers before it is closed. */
  readonly headersTimeout: Duration.Duration
  /** Most Server-Sent Events streams at once, and from one client address (0: no limit). */
  readonly maxSseStreams: number
  readonly maxSseStreamsPerAddress: number
  /** An event stream whose socket stays full this long is cut off. */
  readonly sseStallTimeout: Duration.Duration
  /** Origins whose pages may open `/foxglove` (clients without an Origin always may); `["*"]` allows any. */
  readonly foxgloveAllowedOrigins: ReadonlyArray<string>
  /** Most `/foxglove` clients from one address; 0 for no limit. */
  readonly foxgloveMaxConnectionsPerAddress: number
  readonly shutdownTimeout: Duration.Duration
  readonly logLevel: LogLevel.LogLevel
  /** Who may connect, and how it is checked (`AUTH` and the settings of its modes). */
  readonly auth: AuthSettings
}

/** How clients prove who they are: `none` (everyone is an admin), a token file, or signed JWTs. */
export type AuthMode = "none" | "tokens" | "jwt"

/** The settings of authentication. */
export interface AuthSettings {
  readonly mode: AuthMode
  /** The token file of `AUTH=tokens` (`AUTH_TOKENS_FILE`, default `<DATA_DIR>/tokens.json`). */
  readonly tokensFile: string
  /** The settings of `AUTH=jwt` (checked present when it is the mode). */
  readonly jwt: {
    /** A PEM public key, or a JWKS JSON file. */
    readonly keyFile: string
    readonly issuer: string
    readonly audience: string
    /** The claim of the roles: a string or an array of strings. */
    readonly rolesClaim: string
    /** The claim naming the user. */
    readonly userClaim: string
  }
  /** The least role of an emergency stop. */
  readonly stopRole: Role.Role
}

/** One configuration variable, for `--help` and the docs. */
export interface Setting {
  readonly env: string
  readonly flag: string
  readonly default: string
  readonly description: string
}

/** Describes a variable; its flag is the variable's name in kebab case (`MAX_CONNECTIONS` → `--max-connections`). */
export const setting = (env: string, defaultValue: string, description: string): Setting => ({
  env,
  flag: `--${env.toLowerCase().replaceAll("_", "-")}`,
  default: defaultValue,
  description
})

/** Every variable the service reads, in the order of `--help`. */
export const settings: ReadonlyArray<Setting> = [
  setting("PORT", "8080", "TCP port of HTTP and WebSocket; 0 picks a free one (the log says which)."),
  setting(
    "HOST",
    "127.0.0.1",
    "Address to listen on. Only this machine can connect until you set `0.0.0.0` (or `::`)."
  ),
  setting(
    "TLS_CERT_FILE",
    "(none)",
    "PEM certificate (leaf first, then its chain) to serve HTTPS and WSS on PORT, and WSS on the stop channel's port; set with TLS_KEY_FILE. Read again on SIGHUP."
  ),
  setting("TLS_KEY_FILE", "(none)", "PEM private key of TLS_CERT_FILE; set both or neither. Read again on SIGHUP."),
  setting("DATA_DIR", "./data", "Directory of the SQLite file `fleetvisor.db`; created if missing."),
  setting(
    "MAX_CONNECTIONS",
    "20000",
    "Most WebSocket sessions at once (`maxChildren` of `gateway/sessions`); the next upgrade gets HTTP 503."
  ),
  setting(
    "MAX_CONNECTIONS_PER_ADDRESS",
    "0",
    "Most WebSocket sessions from one client address (0: no limit); the next upgrade from it gets HTTP 429. Behind a reverse proxy, set TRUSTED_PROXIES too."
  ),
  setting(
    "TRUSTED_PROXIES",
    "(none)",
    "Comma-separated addresses and CIDRs of reverse proxies (`10.0.0.0/8`, `fd00::/8`, `loopback`) whose `X-Forwarded-For` (or `Forwarded`) names the client. Other peers' headers are ignored; the admin loopback check never reads them."
  ),
  setting(
    "MAX_FRAME_BYTES",
    "65536",
    "Largest frame a client may send; a bigger one closes the session with 1009. Requests are far smaller."
  ),
  setting(
    "RATE_LIMIT_PER_SECOND",
    "50",
    "Requests per second a session may send on average (token bucket refill): every message of a frame counts, a frame at least one. Beyond it the session's frames are delayed."
  ),
  setting(
    "RATE_LIMIT_BURST",
    "100",
    "Requests a session may send at once (bucket size). A frame carrying more is closed with 1008, as is a session that stays a full burst behind."
  ),
  setting(
    "MAX_REQUESTS_IN_FLIGHT",
    "32",
    "Requests (answered once) a session may have unanswered at once; past it a request is refused at once with `Overloaded` and the session goes on (an emergency stop never is). A dashboard has a few."
  ),
  setting(
    "MAX_STREAMS_PER_SESSION",
    "16",
    "Streams (CanvasJoin, FleetSubscribe) a session may have open at once; past it a subscription is refused with `Overloaded` and the session goes on. A dashboard opens one or two."
  ),
  setting("HEARTBEAT_INTERVAL", "15 seconds", "How often the server pings each session."),
  setting("HEARTBEAT_TIMEOUT", "10 seconds", "A session whose pong does not arrive within this is stopped."),
  setting(
    "ADMIN_TOKEN",
    "(none)",
    "Bearer token of `/admin/*`. Without it the admin endpoints answer loopback clients only."
  ),
  setting(
    "ALLOWED_ORIGINS",
    "(same origin)",
    "Comma-separated origins (`https://ops.example.com`) whose pages may open `/ws` besides the server's own; `*` allows any."
  ),
  setting(
    "ALLOWED_HOSTS",
    "(none)",
    "Comma-separated host names (`fleet.plant.example`, `.plant.example` for every name under it) a request's `Host` may carry besides IP addresses, `localhost`, `HOST` and the machine's name; any other gets HTTP 421 (DNS rebinding). `*` turns the check off."
  ),
  setting(
    "HEADERS_TIMEOUT",
    "10 seconds",
    "A connection that has not sent complete request headers within this is closed, also one that sends nothing."
  ),
  setting(
    "MAX_SSE_STREAMS",
    "1000",
    "Most Server-Sent Events streams (`/stream`, `/canvas/stream`, `/admin/actors/stream`) at once; the next gets HTTP 503."
  ),
  setting(
    "MAX_SSE_STREAMS_PER_ADDRESS",
    "100",
    "Most event streams from one client address (0: no limit); the next gets HTTP 429. Behind a reverse proxy, set TRUSTED_PROXIES too."
  ),
  setting(
    "SSE_STALL_TIMEOUT",
    "30 seconds",
    "An event stream whose client reads nothing for this long (its socket stays full) is cut off; EventSource reconnects to a fresh snapshot."
  ),
  setting(
    "FOXGLOVE_ALLOWED_ORIGINS",
    "https://app.foxglove.dev",
    "Comma-separated origins whose pages may open `/foxglove` (the Foxglove web app); desktop apps send no Origin and are always accepted; `*` allows any."
  ),
  setting(
    "FOXGLOVE_MAX_CONNECTIONS_PER_ADDRESS",
    "8",
    "Most `/foxglove` clients from one client address (0: no limit; 64 at most in all); the next gets HTTP 429."
  ),
  setting(
    "SHUTDOWN_TIMEOUT",
    "10 seconds",
    "On SIGTERM/SIGINT, how long sessions, actors and the database get to stop before the process exits anyway."
  ),
  setting("LOG_LEVEL", "info", "Least level of the JSON log lines: trace, debug, info, warn, error, fatal, or off."),
  setting(
    "AUTH",
    "none on a loopback HOST, else required",
    "Who may connect: `tokens` (bearer tokens of AUTH_TOKENS_FILE), `jwt` (signed JWTs), or `none` (everyone is an admin). Unset with a non-loopback HOST or TRUSTED_PROXIES the service refuses to start (exit 78). See docs/security.md."
  ),
  setting(
    "AUTH_TOKENS_FILE",
    "<DATA_DIR>/tokens.json",
    "The token file of AUTH=tokens (hashes only, mode 0600; `fleetvisor token add` writes it). Read again when it changes; removed tokens' connections close with 4401."
  ),
  setting(
    "AUTH_JWT_KEY_FILE",
    "(none)",
    "AUTH=jwt: the issuer's public key (PEM), or a JWKS JSON file. Read again when it changes."
  ),
  setting("AUTH_JWT_ISSUER", "(none)", "AUTH=jwt: the `iss` every token must carry."),
  setting("AUTH_JWT_AUDIENCE", "(none)", "AUTH=jwt: the `aud` every token must carry."),
  setting("AUTH_JWT_ROLES_CLAIM", "roles", "AUTH=jwt: the claim of the user's roles (viewer, operator, admin): a string or an array."),
  setting("AUTH_JWT_USER_CLAIM", "sub", "AUTH=jwt: the claim naming the user."),
  setting(
    "STOP_ROLE",
    "viewer",
    "The least role of an emergency stop (`viewer`: whoever sees danger may stop; `operator`; `admin`)."
  )
]

const positiveInt = (name: string, defaultValue: number, max = Number.MAX_SAFE_INTEGER) =>
  Config.integer(name).pipe(
    Config.validate({ message: `must be an integer from 1 to ${max}`, validation: (n) => n >= 1 && n <= max }),
    Config.withDefault(defaultValue)
  )

const positiveDuration = (name: string, defaultValue: Duration.DurationInput) =>
  Config.duration(name).pipe(
    Config.validate({
      message: "must be a positive duration, e.g. \"15 seconds\" or \"500 millis\"",
      validation: (d) => Duration.toMillis(d) > 0
    }),
    Config.withDefault(Duration.decode(defaultValue))
  )

const origin = /^(\*|https?:\/\/[^/\s]+)$/

const originList = (list: string): Array<string> =>
  list.split(",").map((entry) => entry.trim().replace(/\/$/, "")).filter((entry) => entry !== "")

/** Whether `host` reaches this machine only (`127.0.0.0/8`, `::1`, `localhost`). */
export const loopbackHost = (host: string): boolean =>
  host === "localhost" || host === "::1" || host === "[::1]" || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(host)

interface RawAuth {
  readonly mode: Option.Option<AuthMode>
  readonly tokensFile: Option.Option<string>
  readonly keyFile: Option.Option<string>
  readonly issuer: Option.Option<string>
  readonly audience: Option.Option<string>
  readonly rolesClaim: string
  readonly userClaim: string
  readonly stopRole: Role.Role
}

/**
 * Settles `AUTH`: unset, it is `none` only on a loopback `HOST` without `TRUSTED_PROXIES`
 * (anything else would open the robots to the network without anyone choosing to); `jwt`
 * needs its key, issuer and audience.
 */
const resolveAuth = (
  raw: Omit<ServiceConfig, "auth"> & { readonly auth: RawAuth }
): Either.Either<ServiceConfig, ConfigError.ConfigError> => {
  const { auth } = raw
  if (Option.isNone(auth.mode) && (!loopbackHost(raw.host) || raw.trustedProxies.entries.length > 0)) {
    return Either.left(ConfigError.InvalidData(
      ["AUTH"],
      `must be set when HOST (${raw.host}) is not loopback or TRUSTED_PROXIES is set: AUTH=tokens or AUTH=jwt, or AUTH=none to let anyone who reaches the port move robots`
    ))
  }
  const mode = Option.getOrElse(auth.mode, () => "none" as const)
  if (mode === "jwt") {
    const missing = (["keyFile", "issuer", "audience"] as const).filter((key) => Option.isNone(auth[key]))
    if (missing.length > 0) {
      const names = { keyFile: "AUTH_JWT_KEY_FILE", issuer: "AUTH_JWT_ISSUER", audience: "AUTH_JWT_AUDIENCE" }
      return Either.left(ConfigError.InvalidData([names[missing[0]!]], "must be set with AUTH=jwt"))
    }
  }
  return Either.right({
    ...raw,
    auth: {
      mode,
      tokensFile: Option.getOrElse(auth.tokensFile, () => path.join(raw.dataDir, "tokens.json")),
      jwt: {
        keyFile: Option.getOrElse(auth.keyFile, () => ""),
        issuer: Option.getOrElse(auth.issuer, () => ""),
        audience: Option.getOrElse(auth.audience, () => ""),
        rolesClaim: auth.rolesClaim,
        userClaim: auth.userClaim
      },
      stopRole: auth.stopRole
    }
  })
}

/** The configuration, as Effect `Config`. */
export const config: Config.Config<ServiceConfig> = Config.all({
  port: Config.integer("PORT").pipe(
    Config.validate({ message: "must be an integer from 0 to 65535", validation: (n) => n >= 0 && n <= 65_535 }),
    Config.withDefault(8080)
  ),
  host: Config.nonEmptyString("HOST").pipe(Config.withDefault("127.0.0.1")),
  tls: Config.all({
    certFile: Config.option(Config.nonEmptyString("TLS_CERT_FILE")),
    keyFile: Config.option(Config.nonEmptyString("TLS_KEY_FILE"))
  }).pipe(
    Config.mapOrFail(({ certFile, keyFile }) =>
      Option.isSome(certFile) && Option.isSome(keyFile)
        ? Either.right(Option.some({ certFile: certFile.value, keyFile: keyFile.value }))
        : Option.isNone(certFile) && Option.isNone(keyFile)
        ? Either.right(Option.none())
        : Either.left(ConfigError.InvalidData(
          [Option.isSome(certFile) ? "TLS_KEY_FILE" : "TLS_CERT_FILE"],
          `must be set with ${Option.isSome(certFile) ? "TLS_CERT_FILE" : "TLS_KEY_FILE"} (set both to serve TLS, or neither)`
        ))
    )
  ),
  dataDir: Config.nonEmptyString("DATA_DIR").pipe(Config.withDefault("./data")),
  maxConnections: positiveInt("MAX_CONNECTIONS", 20_000),
  maxConnectionsPerAddress: Config.integer("MAX_CONNECTIONS_PER_ADDRESS").pipe(
    Config.validate({ message: "must be an integer of 0 or more", validation: (n) => n >= 0 }),
    Config.withDefault(0)
  ),
  trustedProxies: Config.string("TRUSTED_PROXIES").pipe(
    Config.mapOrFail((list) =>
      Either.mapLeft(ClientAddress.parse(list), (entry) =>
        ConfigError.InvalidData(
          [],
          `must be a comma-separated list of addresses, CIDRs like 10.0.0.0/8 or fd00::/8, or loopback (got "${entry}")`
        ))
    ),
    Config.withDefault(ClientAddress.none)
  ),
  maxFrameBytes: positiveInt("MAX_FRAME_BYTES", 65_536, 100 * 1024 * 1024),
  rateLimit: Config.all({
    perSecond: Config.number("RATE_LIMIT_PER_SECOND").pipe(
      Config.validate({ message: "must be a number above 0", validation: (n) => n > 0 }),
      Config.withDefault(50)
    ),
    burst: positiveInt("RATE_LIMIT_BURST", 100)
  }),
  maxRequestsInFlight: positiveInt("MAX_REQUESTS_IN_FLIGHT", 32),
  maxStreamsPerSession: positiveInt("MAX_STREAMS_PER_SESSION", 16),
  heartbeat: Config.all({
    interval: positiveDuration("HEARTBEAT_INTERVAL", "15 seconds"),
    timeout: positiveDuration("HEARTBEAT_TIMEOUT", "10 seconds")
  }),
  // Validated as raw strings: a validation after a `map` would lose the variable's name.
  adminToken: Config.option(
    Config.string("ADMIN_TOKEN").pipe(
      Config.validate({ message: "must be at least 16 characters", validation: (token) => token.length >= 16 }),
      Config.map(Redacted.make)
    )
  ),
  allowedOrigins: Config.string("ALLOWED_ORIGINS").pipe(
    Config.validate({
      message: "must be a comma-separated list of origins like https://ops.example.com, or *",
      validation: (list) => originList(list).every((entry) => origin.test(entry))
    }),
    Config.map(originList),
    Config.withDefault([])
  ),
  allowedHosts: Config.string("ALLOWED_HOSTS").pipe(
    Config.validate({
      message: "must be a comma-separated list of host names like fleet.plant.example or .plant.example (no port), or *",
      validation: (list) => originList(list).every(HostCheck.validEntry)
    }),
    Config.map(originList),
    Config.withDefault([])
  ),
  headersTimeout: positiveDuration("HEADERS_TIMEOUT", "10 seconds"),
  maxSseStreams: positiveInt("MAX_SSE_STREAMS", 1000),
  maxSseStreamsPerAddress: Config.integer("MAX_SSE_STREAMS_PER_ADDRESS").pipe(
    Config.validate({ message: "must be an integer of 0 or more", validation: (n) => n >= 0 }),
    Config.withDefault(100)
  ),
  sseStallTimeout: positiveDuration("SSE_STALL_TIMEOUT", "30 seconds"),
  foxgloveAllowedOrigins: Config.string("FOXGLOVE_ALLOWED_ORIGINS").pipe(
    Config.validate({
      message: "must be a comma-separated list of origins like https://app.foxglove.dev, or *",
      validation: (list) => originList(list).every((entry) => origin.test(entry))
    }),
    Config.map(originList),
    Config.withDefault(["https://app.foxglove.dev"])
  ),
  foxgloveMaxConnectionsPerAddress: Config.integer("FOXGLOVE_MAX_CONNECTIONS_PER_ADDRESS").pipe(
    Config.validate({ message: "must be an integer of 0 or more", validation: (n) => n >= 0 }),
    Config.withDefault(8)
  ),
  shutdownTimeout: positiveDuration("SHUTDOWN_TIMEOUT", "10 seconds"),
  logLevel: Config.logLevel("LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info)),
  auth: Config.all({
    mode: Config.option(Config.literal("none", "tokens", "jwt")("AUTH")),
    tokensFile: Config.option(Config.nonEmptyString("AUTH_TOKENS_FILE")),
    keyFile: Config.option(Config.nonEmptyString("AUTH_JWT_KEY_FILE")),
    issuer: Config.option(Config.nonEmptyString("AUTH_JWT_ISSUER")),
    audience: Config.option(Config.nonEmptyString("AUTH_JWT_AUDIENCE")),
    rolesClaim: Config.nonEmptyString("AUTH_JWT_ROLES_CLAIM").pipe(Config.withDefault("roles")),
    userClaim: Config.nonEmptyString("AUTH_JWT_USER_CLAIM").pipe(Config.withDefault("sub")),
    stopRole: Config.literal("viewer", "operator", "admin")("STOP_ROLE").pipe(Config.withDefault("viewer" as const))
  })
}).pipe(Config.mapOrFail(resolveAuth))

/** The SQLite file of a configuration. */
export const databaseFile = (config: ServiceConfig): string => path.join(config.dataDir, "fleetvisor.db")

/** Command-line arguments that are not settings. */
export class UsageError extends Error {
  override readonly name = "UsageError"
}

/**
 * Reads `--flag value` and `--flag=value` pairs into variable names (with `node:util`'s
 * `parseArgs`). `--help` yields `"help"`.
 * Throws `UsageError` for an unknown flag or a flag without a value.
 */
export const parseFlags = (
  argv: ReadonlyArray<string>,
  known: ReadonlyArray<Setting> = settings
): Map<string, string> | "help" => {
  const options: Record<string, { type: "string" } | { type: "boolean"; short: string }> = {
    help: { type: "boolean", short: "h" }
  }
  for (const setting of known) options[setting.flag.slice(2)] = { type: "string" }
  let parsed: ReturnType<typeof parseArgs<{ options: typeof options; args: Array<string>; strict: true }>>
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false })
  } catch (error) {
    const code = (error as { code?: string }).code
    const flag = /'(-[^' ]+)/.exec(String((error as Error).message))?.[1] ?? ""
    throw new UsageError(
      code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE"
        ? `${flag} needs a value.`
        : `Unknown argument ${flag || argv.join(" ")}. Run with --help for the settings.`
    )
  }
  if (parsed.values.help === true) return "help"
  const values = new Map<string, string>()
  for (const setting of known) {
    const value = parsed.values[setting.flag.slice(2)]
    if (typeof value === "string") values.set(setting.env, value)
  }
  return values
}

/** `--help`: every setting, its flag, variable and default. */
export const usage = (known: ReadonlyArray<Setting> = settings): string => {
  // Columns as wide as the longest flag and variable, two spaces apart: names never run together.
  const flagWidth = Math.max(0, ...known.map((s) => s.flag.length)) + 2
  const envWidth = Math.max(0, ...known.map((s) => s.env.length)) + 2
  return [
    "Usage: fleetvisor [--flag value]…   (each flag also reads from its environment variable)",
    "",
    ...known.map((s) => `  ${s.flag.padEnd(flagWidth)}${s.env.padEnd(envWidth)}default ${s.default}\n      ${s.description}`)
  ].join("\n")
}

/** Where flags win over the environment. */
export const provider = (
  flags: ReadonlyMap<string, string>,
  env: Record<string, string | undefined> = process.env
): ConfigProvider.ConfigProvider => {
  const fromEnv = new Map<string, string>()
  for (const [key, value] of Object.entries(env)) if (value !== undefined) fromEnv.set(key, value)
  return ConfigProvider.fromMap(new Map([...fromEnv, ...flags]))
}

/** One line per problem: `PORT: must be an integer from 0 to 65535 (got "http")`. */
export const describeError = (error: ConfigError.ConfigError): ReadonlyArray<string> => {
  const lines: Array<string> = []
  const walk = (e: ConfigError.ConfigError): void => {
    switch (e._op) {
      case "And":
      case "Or":
        walk(e.left)
        walk(e.right)
        return
      case "InvalidData":
      case "MissingData":
      case "SourceUnavailable":
      case "Unsupported":
        lines.push(`${e.path.join("_") || "(config)"}: ${e.message}`)
    }
  }
  walk(error)
  return [...new Set(lines)]
}

/** Reads and validates any configuration from `flags` and `env`. */
export const loadConfig = <A>(
  of: Config.Config<A>,
  flags: ReadonlyMap<string, string>,
  env?: Record<string, string | undefined>
): Either.Either<A, ReadonlyArray<string>> =>
  Effect.runSync(Effect.either(Effect.withConfigProvider(of, provider(flags, env)))).pipe(Either.mapLeft(describeError))

/** Reads and validates the service's configuration from `flags` and `env`. */
export const load = (
  flags: ReadonlyMap<string, string>,
  env?: Record<string, string | undefined>
): Either.Either<ServiceConfig, ReadonlyArray<string>> => loadConfig(config, flags, env)
