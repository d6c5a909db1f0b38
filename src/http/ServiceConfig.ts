/**
 * The service's configuration: environment variables, overridden by command-line flags
 * (`--max-connections 500` sets `MAX_CONNECTIONS`), read with Effect's `Config` and validated
 * at start. A bad value stops the service with one line per problem, naming the variable.
 *
 * Each of the gateway's settings is declared once here (`Setting`): its variable, `Config`,
 * default and help. `config` reads them; `settings` lists them for `--help`, the flags and the
 * table of docs/service.md (`npm run docs:settings`).
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as path from "node:path"
import * as Setting from "../node/Setting.js"
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

const positiveInt = (max = Number.MAX_SAFE_INTEGER) => (name: string) =>
  Config.integer(name).pipe(
    Config.validate({ message: `must be an integer from 1 to ${max}`, validation: (n) => n >= 1 && n <= max })
  )

const nonNegativeInt = (name: string) =>
  Config.integer(name).pipe(Config.validate({ message: "must be an integer of 0 or more", validation: (n) => n >= 0 }))

const positiveDuration = (name: string) =>
  Config.duration(name).pipe(
    Config.validate({
      message: "must be a positive duration, e.g. \"15 seconds\" or \"500 millis\"",
      validation: (d) => Duration.toMillis(d) > 0
    })
  )

const origin = /^(\*|https?:\/\/[^/\s]+)$/

const originList = (list: string): Array<string> =>
  list.split(",").map((entry) => entry.trim().replace(/\/$/, "")).filter((entry) => entry !== "")

const origins = (example: string) => (name: string) =>
  Config.string(name).pipe(
    Config.validate({
      message: `must be a comma-separated list of origins like ${example}, or *`,
      validation: (list) => originList(list).every((entry) => origin.test(entry))
    }),
    Config.map(originList)
  )

/** The gateway's settings, each declared once; `--help` and docs/service.md list them in this order. */
const declared = Setting.group("Gateway", {
  port: Setting.make("PORT", {
    config: (name) =>
      Config.integer(name).pipe(
        Config.validate({ message: "must be an integer from 0 to 65535", validation: (n) => n >= 0 && n <= 65_535 })
      ),
    default: "8080",
    help: "TCP port of HTTP and WebSocket; 0 picks a free one (the log says which)."
  }),
  host: Setting.make("HOST", {
    config: Config.nonEmptyString,
    default: "127.0.0.1",
    help: "Address to listen on. Only this machine can connect until you set `0.0.0.0` (or `::`)."
  }),
  tlsCertFile: Setting.optional("TLS_CERT_FILE", {
    config: Config.nonEmptyString,
    unset: "(none)",
    help:
      "PEM certificate (leaf first, then its chain) to serve HTTPS and WSS on `PORT`, and WSS on the stop channel's port; set with `TLS_KEY_FILE`. Read again on SIGHUP. See [TLS](#tls)."
  }),
  tlsKeyFile: Setting.optional("TLS_KEY_FILE", {
    config: Config.nonEmptyString,
    unset: "(none)",
    help: "PEM private key of `TLS_CERT_FILE`; set both or neither (else exit 78). Read again on SIGHUP."
  }),
  dataDir: Setting.make("DATA_DIR", {
    config: Config.nonEmptyString,
    default: "./data",
    help: "Directory of the SQLite file `fleetvisor.db`; created if missing."
  }),
  maxConnections: Setting.make("MAX_CONNECTIONS", {
    config: positiveInt(),
    default: "20000",
    help: "Most WebSocket sessions at once (`maxChildren` of `gateway/sessions`); the next upgrade gets HTTP 503."
  }),
  maxConnectionsPerAddress: Setting.make("MAX_CONNECTIONS_PER_ADDRESS", {
    config: nonNegativeInt,
    default: "0",
    help:
      "Most WebSocket sessions from one client address (0: no limit); the next upgrade from it gets HTTP 429. Counted from the live sessions in a registry, so a session that ends frees its place. Behind a reverse proxy, set `TRUSTED_PROXIES` too."
  }),
  trustedProxies: Setting.make("TRUSTED_PROXIES", {
    config: (name) =>
      Config.string(name).pipe(
        Config.mapOrFail((list) =>
          Either.mapLeft(ClientAddress.parse(list), (entry) =>
            ConfigError.InvalidData(
              [],
              `must be a comma-separated list of addresses, CIDRs like 10.0.0.0/8 or fd00::/8, or loopback (got "${entry}")`
            ))
        )
      ),
    default: "",
    shown: "(none)",
    help:
      "Comma-separated addresses and CIDRs of reverse proxies (`10.0.0.0/8`, `fd00::/8`, `::ffff:10.0.0.1`, `loopback`) whose `X-Forwarded-For` (or `Forwarded`) names the client. Other peers' headers are ignored; the admin loopback check never reads them. See [Behind a reverse proxy](#behind-a-reverse-proxy)."
  }),
  maxFrameBytes: Setting.make("MAX_FRAME_BYTES", {
    config: positiveInt(100 * 1024 * 1024),
    default: "65536",
    help: "Largest frame a client may send; a bigger one closes the session with 1009. Requests are far smaller."
  }),
  rateLimitPerSecond: Setting.make("RATE_LIMIT_PER_SECOND", {
    config: (name) =>
      Config.number(name).pipe(Config.validate({ message: "must be a number above 0", validation: (n) => n > 0 })),
    default: "50",
    help:
      "Requests per second a session may send on average (token bucket refill): every message of a frame counts (a MessagePack frame of 1,000 requests takes 1,000), a frame at least one. Beyond it the session's frames are delayed."
  }),
  rateLimitBurst: Setting.make("RATE_LIMIT_BURST", {
    config: positiveInt(),
    default: "100",
    help:
      "Requests a session may send at once (bucket size). A frame carrying more is closed with 1008 at once, as is a session that stays a full burst behind."
  }),
  maxRequestsInFlight: Setting.make("MAX_REQUESTS_IN_FLIGHT", {
    config: positiveInt(),
    default: "32",
    help:
      "Requests (answered once) a session may have unanswered at once; past it a request is refused at once with `Overloaded` and the session goes on (an emergency stop never is). A dashboard has a few; see [Limits of a session](#limits-of-a-session)."
  }),
  maxStreamsPerSession: Setting.make("MAX_STREAMS_PER_SESSION", {
    config: positiveInt(),
    default: "16",
    help:
      "Streams (`CanvasJoin`, `FleetSubscribe`) a session may have open at once; past it a subscription is refused with `Overloaded` and the session goes on. A dashboard opens one or two."
  }),
  heartbeatInterval: Setting.make("HEARTBEAT_INTERVAL", {
    config: positiveDuration,
    default: "15 seconds",
    help:
      "How often the server pings each session (one timer for all: a new session's first ping comes at the next round)."
  }),
  heartbeatTimeout: Setting.make("HEARTBEAT_TIMEOUT", {
    config: positiveDuration,
    default: "10 seconds",
    help: "A session whose pong does not arrive within this is stopped."
  }),
  // Validated as raw strings: a validation after a `map` would lose the variable's name.
  adminToken: Setting.optional("ADMIN_TOKEN", {
    config: (name) =>
      Config.string(name).pipe(
        Config.validate({ message: "must be at least 16 characters", validation: (token) => token.length >= 16 }),
        Config.map(Redacted.make)
      ),
    unset: "(none)",
    help: "Bearer token of `/admin/*`. Without it the admin endpoints answer loopback clients only."
  }),
  allowedOrigins: Setting.make("ALLOWED_ORIGINS", {
    config: origins("https://ops.example.com"),
    default: "",
    shown: "(same origin)",
    help:
      "Comma-separated origins (`https://ops.example.com`) whose pages may open `/ws` besides the server's own; `*` allows any."
  }),
  allowedHosts: Setting.make("ALLOWED_HOSTS", {
    config: (name) =>
      Config.string(name).pipe(
        Config.validate({
          message: "must be a comma-separated list of host names like fleet.plant.example or .plant.example (no port), or *",
          validation: (list) => originList(list).every(HostCheck.validEntry)
        }),
        Config.map(originList)
      ),
    default: "",
    shown: "(none)",
    help:
      "Comma-separated host names a request's `Host` may carry besides IP addresses, `localhost`, `HOST` and the machine's name: `fleet.plant.example`, or `.plant.example` for every name under it; any other gets HTTP 421, whatever `ADMIN_TOKEN` is (DNS rebinding). `*` turns the check off. See [Hosts, origins and connections](#hosts-origins-and-connections)."
  }),
  headersTimeout: Setting.make("HEADERS_TIMEOUT", {
    config: positiveDuration,
    default: "10 seconds",
    help:
      "A connection that has not sent complete request headers within this is closed, also one that sends nothing at all."
  }),
  maxSseStreams: Setting.make("MAX_SSE_STREAMS", {
    config: positiveInt(),
    default: "1000",
    help:
      "Most Server-Sent Events streams at once (`/stream`, `/stream/…`, `/canvas/stream`, `/admin/actors/stream`); the next gets HTTP 503 with `Retry-After`."
  }),
  maxSseStreamsPerAddress: Setting.make("MAX_SSE_STREAMS_PER_ADDRESS", {
    config: nonNegativeInt,
    default: "100",
    help:
      "Most event streams from one client address (0: no limit); the next gets HTTP 429 with `Retry-After`. Behind a reverse proxy, set `TRUSTED_PROXIES` too."
  }),
  sseStallTimeout: Setting.make("SSE_STALL_TIMEOUT", {
    config: positiveDuration,
    default: "30 seconds",
    help:
      "An event stream whose client reads nothing for this long (its socket stays full) is cut off; `EventSource` reconnects to a fresh snapshot."
  }),
  foxgloveAllowedOrigins: Setting.make("FOXGLOVE_ALLOWED_ORIGINS", {
    config: origins("https://app.foxglove.dev"),
    default: "https://app.foxglove.dev",
    help:
      "Comma-separated origins whose pages may open `/foxglove`; the desktop apps send no `Origin` and are always accepted; `*` allows any. Others get HTTP 403."
  }),
  foxgloveMaxConnectionsPerAddress: Setting.make("FOXGLOVE_MAX_CONNECTIONS_PER_ADDRESS", {
    config: nonNegativeInt,
    default: "8",
    help: "Most `/foxglove` clients from one client address (0: no limit; 64 at most in all); the next gets HTTP 429."
  }),
  shutdownTimeout: Setting.make("SHUTDOWN_TIMEOUT", {
    config: positiveDuration,
    default: "10 seconds",
    help: "On SIGTERM/SIGINT, how long sessions, actors and the database get to stop before the process exits anyway."
  }),
  logLevel: Setting.make("LOG_LEVEL", {
    config: Config.logLevel,
    default: "info",
    help: "Least level of the JSON log lines: trace, debug, info, warn, error, fatal, or off."
  }),
  auth: Setting.optional("AUTH", {
    config: Config.literal("none", "tokens", "jwt"),
    unset: "`none` on a loopback `HOST`, else required",
    help:
      "Who may connect: `tokens` (bearer tokens of `AUTH_TOKENS_FILE`), `jwt` (signed JWTs), or `none` (everyone is an admin). Unset with a non-loopback `HOST` or with `TRUSTED_PROXIES`, the service refuses to start (exit 78). See [security.md](security.md)."
  }),
  authTokensFile: Setting.optional("AUTH_TOKENS_FILE", {
    config: Config.nonEmptyString,
    unset: "`<DATA_DIR>/tokens.json`",
    help:
      "The token file of `AUTH=tokens` (hashes only, mode 0600; `fleetvisor token add` writes it). Read again when it changes; the connections of a removed token close with 4401."
  }),
  authJwtKeyFile: Setting.optional("AUTH_JWT_KEY_FILE", {
    config: Config.nonEmptyString,
    unset: "(none)",
    help: "`AUTH=jwt`: the issuer's public key (PEM), or a JWKS JSON file. Read again when it changes."
  }),
  authJwtIssuer: Setting.optional("AUTH_JWT_ISSUER", {
    config: Config.nonEmptyString,
    unset: "(none)",
    help: "`AUTH=jwt`: the `iss` every token must carry."
  }),
  authJwtAudience: Setting.optional("AUTH_JWT_AUDIENCE", {
    config: Config.nonEmptyString,
    unset: "(none)",
    help: "`AUTH=jwt`: the `aud` every token must carry."
  }),
  authJwtRolesClaim: Setting.make("AUTH_JWT_ROLES_CLAIM", {
    config: Config.nonEmptyString,
    default: "roles",
    help: "`AUTH=jwt`: the claim of the user's roles (`viewer`, `operator`, `admin`): a string or an array."
  }),
  authJwtUserClaim: Setting.make("AUTH_JWT_USER_CLAIM", {
    config: Config.nonEmptyString,
    default: "sub",
    help: "`AUTH=jwt`: the claim naming the user."
  }),
  stopRole: Setting.make("STOP_ROLE", {
    config: Config.literal("viewer", "operator", "admin"),
    default: "viewer",
    help: "The least role of an emergency stop (`viewer`: whoever sees danger may stop; `operator`; `admin`)."
  })
})

/** Every variable of the gateway, in the order of `--help`. */
export const settings: ReadonlyArray<Setting.Setting<unknown>> = Object.values(declared)

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
  port: declared.port.config,
  host: declared.host.config,
  tls: Config.all({ certFile: declared.tlsCertFile.config, keyFile: declared.tlsKeyFile.config }).pipe(
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
  dataDir: declared.dataDir.config,
  maxConnections: declared.maxConnections.config,
  maxConnectionsPerAddress: declared.maxConnectionsPerAddress.config,
  trustedProxies: declared.trustedProxies.config,
  maxFrameBytes: declared.maxFrameBytes.config,
  rateLimit: Config.all({ perSecond: declared.rateLimitPerSecond.config, burst: declared.rateLimitBurst.config }),
  maxRequestsInFlight: declared.maxRequestsInFlight.config,
  maxStreamsPerSession: declared.maxStreamsPerSession.config,
  heartbeat: Config.all({ interval: declared.heartbeatInterval.config, timeout: declared.heartbeatTimeout.config }),
  adminToken: declared.adminToken.config,
  allowedOrigins: declared.allowedOrigins.config,
  allowedHosts: declared.allowedHosts.config,
  headersTimeout: declared.headersTimeout.config,
  maxSseStreams: declared.maxSseStreams.config,
  maxSseStreamsPerAddress: declared.maxSseStreamsPerAddress.config,
  sseStallTimeout: declared.sseStallTimeout.config,
  foxgloveAllowedOrigins: declared.foxgloveAllowedOrigins.config,
  foxgloveMaxConnectionsPerAddress: declared.foxgloveMaxConnectionsPerAddress.config,
  shutdownTimeout: declared.shutdownTimeout.config,
  logLevel: declared.logLevel.config,
  auth: Config.all({
    mode: declared.auth.config,
    tokensFile: declared.authTokensFile.config,
    keyFile: declared.authJwtKeyFile.config,
    issuer: declared.authJwtIssuer.config,
    audience: declared.authJwtAudience.config,
    rolesClaim: declared.authJwtRolesClaim.config,
    userClaim: declared.authJwtUserClaim.config,
    stopRole: declared.stopRole.config
  })
}).pipe(Config.mapOrFail(resolveAuth))

/** The SQLite file of a configuration. */
export const databaseFile = (config: ServiceConfig): string => path.join(config.dataDir, "fleetvisor.db")

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
