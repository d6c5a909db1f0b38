/**
 * Who a client is, and whether they may: the one place a credential becomes an {@link Identity}
 * (or a typed refusal), and the table of the live connections it let in, which it closes when
 * their access ends.
 *
 * - `AUTH=none`: everyone is `{ user: <client address>, roles: [admin] }`, as before there was
 *   any login; nothing is tracked.
 * - `AUTH=tokens`: the bearer token is looked up in the token file (`TokenFile`, hashes only),
 *   which is watched (`WatchedFile`) and read again when it changes; a file that does not parse
 *   keeps the previous contents and logs one line.
 * - `AUTH=jwt`: the token is verified with `jose` against the configured public key (PEM) or
 *   JWKS file (watched too), with the issuer and audience checked, `exp` honoured, and only the
 *   key's algorithms accepted; the user is the `AUTH_JWT_USER_CLAIM` claim (`sub`), the roles
 *   the `AUTH_JWT_ROLES_CLAIM` claim (`roles`, a string or an array).
 *
 * `ADMIN_TOKEN`, when set, is an admin credential in every mode.
 *
 * Credentials come the way each client can send them ({@link credentialOf}): `Authorization:
 * Bearer` (scripts, the CLI), a `Sec-WebSocket-Protocol` entry `fleetvisor.bearer.<token>`
 * (browsers' WebSockets, which cannot set headers; stripped before negotiation by
 * {@link offeredProtocols}, never selected, never logged), the `fleetvisor_token` cookie the
 * login page sets, and `?token=` where the caller allows it (`/foxglove` only: Foxglove and
 * Lichtblick take only a URL).
 *
 * Authentication runs once per connection, never per frame. The connections it admitted are
 * {@link Authenticator.track}ed with a way to close them: on every reload of the token file or
 * key each is checked again, and once a second their expiry; one whose token was removed, whose
 * roles changed, or whose token or JWT expired is closed (WebSockets with 4401, event streams
 * ended) within about a second.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as jose from "jose"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import type { IncomingMessage } from "node:http"
import * as Subprotocol from "../protocol/Subprotocol.js"
import * as Role from "./Role.js"
import type { AuthMode, AuthSettings } from "./ServiceConfig.js"
import * as TokenFile from "./TokenFile.js"
import * as WatchedFile from "./WatchedFile.js"

/** Who a connection belongs to. */
export interface Identity {
  readonly user: string
  readonly roles: ReadonlyArray<Role.Role>
  /** When the credential stops working, ms since the epoch; absent: never. */
  readonly expiresAt?: number | undefined
  /** How it was proven: no authentication, the token file, a JWT, or `ADMIN_TOKEN`. */
  readonly via: "none" | "token" | "jwt" | "admin-token"
}

/** What a route or an upgrade needs: nothing (`public`), any identity (`user`), or a role. */
export type Access = "public" | "user" | Role.Role

/** Why a client was not let in (label `reason` of `fleetvisor_auth_refused_total`). */
export type RefuseReason = "no_credential" | "bad_credential" | "expired" | "forbidden" | "revoked"

/** Where a refusal happened (label `endpoint` of `fleetvisor_auth_refused_total`). */
export type Endpoint = "http" | "sse" | "ws" | "foxglove" | "rpc" | "stop" | "login"

/** No credential, a wrong one, or one that expired or was revoked: HTTP 401, close code 4401. */
export class Unauthorized extends Data.TaggedError("Unauthorized")<{
  readonly reason: "none" | "bad" | "expired" | "revoked"
}> {
  override get message(): string {
    switch (this.reason) {
      case "none":
        return "Sign in first: no credential was sent"
      case "bad":
        return "The credential is not valid"
      case "expired":
        return "The credential has expired"
      case "revoked":
        return "The credential was revoked"
    }
  }
}

/** A known user whose roles do not allow this: HTTP 403, close code 4403. */
export class Forbidden extends Data.TaggedError("Forbidden")<{
  readonly user: string
  readonly needed: Role.Role
}> {
  override get message(): string {
    return `${this.user} needs the role ${this.needed} for this`
  }
}

/** The close code of a WebSocket refused or ended for want of a valid credential. */
export const CloseUnauthorized = 4401

/** The close code of a WebSocket whose user lacks the role. */
export const CloseForbidden = 4403

/** The close code a WebSocket refused with `error` gets: 4403 for a role too low, else 4401. */
export const closeCodeOf = (error: Unauthorized | Forbidden): number =>
  error._tag === "Forbidden" ? CloseForbidden : CloseUnauthorized

/** The metric reason of a refusal. */
export const reasonOf = (error: Unauthorized | Forbidden): RefuseReason =>
  error._tag === "Forbidden"
    ? "forbidden"
    : error.reason === "none"
    ? "no_credential"
    : error.reason === "bad"
    ? "bad_credential"
    : error.reason

/** The prefix of the `Sec-WebSocket-Protocol` entry that carries a token. */
export const bearerProtocol = Subprotocol.bearerPrefix

/** The cookie the login page sets. */
export const cookieName = "fleetvisor_token"

/** A credential and where it came from. */
export interface Credential {
  readonly token: string
  readonly from: "authorization" | "subprotocol" | "cookie" | "query"
}

const cookieValue = (header: string | undefined): string | undefined => {
  if (header === undefined) return undefined
  for (const part of header.split(";")) {
    const eq = part.indexOf("=")
    if (eq > 0 && part.slice(0, eq).trim() === cookieName) {
      const value = part.slice(eq + 1).trim()
      return value === "" ? undefined : value
    }
  }
  return undefined
}

/**
 * The credential of a request: `Authorization: Bearer`, else a `fleetvisor.bearer.<token>`
 * subprotocol entry, else the `fleetvisor_token` cookie, else (only with `query`) `?token=`.
 */
export const credentialOf = (
  request: IncomingMessage,
  options: { readonly query?: URL | undefined } = {}
): Credential | undefined => {
  const authorization = request.headers.authorization
  if (authorization !== undefined && /^bearer /i.test(authorization)) {
    const token = authorization.slice(7).trim()
    if (token !== "") return { token, from: "authorization" }
  }
  const protocols = request.headers["sec-websocket-protocol"]
  if (protocols !== undefined && protocols.includes(bearerProtocol)) {
    for (const entry of protocols.split(",")) {
      const name = entry.trim()
      if (name.startsWith(bearerProtocol) && name.length > bearerProtocol.length) {
        return { token: name.slice(bearerProtocol.length), from: "subprotocol" }
      }
    }
  }
  const cookie = cookieValue(request.headers.cookie)
  if (cookie !== undefined) return { token: cookie, from: "cookie" }
  const query = options.query?.searchParams.get("token")
  if (query !== undefined && query !== null && query !== "") return { token: query, from: "query" }
  return undefined
}

/** The subprotocols a WebSocket client offered, without the entry that carries its token. */
export const offeredProtocols = (request: IncomingMessage): Array<string> =>
  (request.headers["sec-websocket-protocol"] ?? "")
    .split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "" && !name.startsWith(bearerProtocol))

/** A request target for a log line: its path, with any query string replaced by `?…`. */
export const redactUrl = (url: string | undefined): string => {
  if (url === undefined) return ""
  const q = url.indexOf("?")
  return q < 0 ? url : `${url.slice(0, q)}?…`
}

/** A live connection let in by a credential, and how to end it. */
export interface Connection {
  /** Ends it: a WebSocket with `code` and `reason`, an event stream by ending the response. */
  readonly close: (code: number, reason: string) => void
  /** Whether it is still open; a closed one leaves the table at the next sweep. */
  readonly alive: () => boolean
  /** What it is, for the metric of its closing; default `ws`. */
  readonly endpoint?: Endpoint | undefined
}

/** The settings the authenticator reads: `ServiceConfig.auth`, and `ADMIN_TOKEN`. */
export interface AuthenticatorSettings extends AuthSettings {
  readonly adminToken?: Option.Option<Redacted.Redacted<string>> | undefined
  /** How often a changed file is looked for besides file-system events; default 1 s. */
  readonly pollMs?: number | undefined
}

/** The authenticator of a node. */
export interface Authenticator {
  readonly mode: AuthMode
  /** The least role of an emergency stop (`STOP_ROLE`). */
  readonly stopRole: Role.Role
  /** Who the credential's bearer is; `address` is the client's (the user under `AUTH=none`). */
  readonly authenticate: (credential: Credential | undefined, address: string) => Effect.Effect<Identity, Unauthorized>
  /** `authenticate`, then whether the identity has what `access` needs. */
  readonly check: (
    credential: Credential | undefined,
    address: string,
    access: Access
  ) => Effect.Effect<Identity, Unauthorized | Forbidden>
  /**
   * Keeps a connection admitted with `credential` until it closes: it is closed when the
   * credential is revoked or expires. (Nothing is kept under `AUTH=none` or for `ADMIN_TOKEN`.)
   */
  readonly track: (identity: Identity, credential: Credential | undefined, connection: Connection) => void
  /** Connections in the table (closed ones stay until the next sweep). */
  readonly tracked: () => number
  /** Checks every tracked connection now: closes the revoked and expired, drops the closed. */
  readonly sweep: Effect.Effect<void>
}

/** The node's authenticator. */
export const Authenticator = Context.GenericTag<Authenticator>("fleetvisor/http/Authenticator")

/** Whether `identity` has what `access` needs. */
export const allows = (identity: Identity, access: Access): boolean =>
  access === "public" || access === "user" || Role.allows(identity.roles, access)

/** The authorization check of `check`. */
export const authorize = (identity: Identity, access: Access): Either.Either<Identity, Forbidden> =>
  allows(identity, access)
    ? Either.right(identity)
    : Either.left(new Forbidden({ user: identity.user, needed: access as Role.Role }))

const adminRoles: ReadonlyArray<Role.Role> = ["admin"]

/** The identity of everyone under `AUTH=none`: the client's address, an admin. */
export const anonymous = (address: string): Identity => ({ user: address, roles: adminRoles, via: "none" })

/** The startup failed: a token file or key that cannot be read. */
export class AuthSetupFailed extends Data.TaggedError("AuthSetupFailed")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

const sameSecret = (given: string, expected: string): boolean => {
  const a = crypto.createHash("sha256").update(given).digest()
  const b = crypto.createHash("sha256").update(expected).digest()
  return crypto.timingSafeEqual(a, b)
}

/** A JWT verification key and the algorithms it may verify. */
interface JwtKey {
  readonly key: crypto.KeyObject | ReturnType<typeof jose.createLocalJWKSet>
  readonly algorithms: ReadonlyArray<string>
}

const algorithmsOfKey = (type: string | undefined, curve: string | undefined): ReadonlyArray<string> => {
  switch (type) {
    case "rsa":
    case "RSA":
      return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    case "rsa-pss":
      return ["PS256", "PS384", "PS512"]
    case "ec":
    case "EC":
      return curve === "P-256" || curve === "prime256v1"
        ? ["ES256"]
        : curve === "P-384" || curve === "secp384r1"
        ? ["ES384"]
        : curve === "P-521" || curve === "secp521r1"
        ? ["ES512"]
        : []
    case "ed25519":
    case "OKP":
      return curve === undefined || curve === "Ed25519" ? ["EdDSA", "Ed25519"] : []
    default:
      return []
  }
}

/** Reads a PEM public key or a JWKS file. */
const readJwtKey = (file: string): Either.Either<JwtKey, string> => {
  let text: string
  try {
    text = fs.readFileSync(file, "utf8")
  } catch (error) {
    return Either.left(`AUTH_JWT_KEY_FILE ${file}: ${(error as Error).message}`)
  }
  try {
    if (text.trimStart().startsWith("{")) {
      const jwks = JSON.parse(text) as jose.JSONWebKeySet
      if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) throw new Error("a JWKS file needs a non-empty `keys` array")
      const algorithms = new Set<string>()
      for (const jwk of jwks.keys) {
        if (typeof jwk.alg === "string") algorithms.add(jwk.alg)
        else for (const alg of algorithmsOfKey(jwk.kty, jwk.crv)) algorithms.add(alg)
      }
      algorithms.delete("none")
      for (const alg of [...algorithms]) if (alg.startsWith("HS")) algorithms.delete(alg)
      if (algorithms.size === 0) throw new Error("no key of the set is a public signing key")
      return Either.right({ key: jose.createLocalJWKSet(jwks), algorithms: [...algorithms] })
    }
    const key = crypto.createPublicKey(text)
    const algorithms = algorithmsOfKey(key.asymmetricKeyType, key.asymmetricKeyDetails?.namedCurve)
    if (algorithms.length === 0) throw new Error(`a ${key.asymmetricKeyType} key cannot verify JWTs`)
    return Either.right({ key, algorithms })
  } catch (error) {
    return Either.left(`AUTH_JWT_KEY_FILE ${file}: ${(error as Error).message}`)
  }
}

interface Tracked {
  readonly identity: Identity
  readonly connection: Connection
  /** `AUTH=tokens`: the token's hash, to find it in the file again. */
  readonly sha256?: string | undefined
  /** `AUTH=jwt`: the token, to verify it again with a new key. */
  readonly jwt?: string | undefined
}

const sameRoles = (a: ReadonlyArray<Role.Role>, b: ReadonlyArray<Role.Role>): boolean =>
  a.length === b.length && a.every((role) => b.includes(role))

/**
 * Makes the authenticator of `settings`: reads the token file or key (failing when it cannot
 * be read at start), watches it while the scope lasts, and sweeps its connections once a second.
 * `onClosed` hears each connection it closes (for metrics).
 */
export const make = (
  settings: AuthenticatorSettings,
  options: { readonly onClosed?: ((reason: "revoked" | "expired", endpoint: Endpoint) => void) | undefined } = {}
): Effect.Effect<Authenticator, AuthSetupFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const admin = Option.getOrUndefined(settings.adminToken ?? Option.none())
    const table = new Set<Tracked>()
    let tokens: TokenFile.TokenFileContents = TokenFile.empty
    let jwtKey: JwtKey | undefined

    if (settings.mode === "tokens") {
      const file = settings.tokensFile
      const first = yield* Effect.either(TokenFile.read(file))
      if (Either.isLeft(first)) return yield* new AuthSetupFailed({ reason: first.left.message })
      tokens = first.right
      if (!fs.existsSync(file)) {
        yield* Effect.logWarning(`AUTH=tokens: ${file} does not exist yet; no one can connect until \`fleetvisor token add\` writes it`)
      }
    } else if (settings.mode === "jwt") {
      const first = readJwtKey(settings.jwt.keyFile)
      if (Either.isLeft(first)) return yield* new AuthSetupFailed({ reason: first.left })
      jwtKey = first.right
    }

    const verifyJwt = (token: string, key: JwtKey): Effect.Effect<Identity, Unauthorized> =>
      Effect.tryPromise({
        try: () =>
          jose.jwtVerify(token, key.key as Parameters<typeof jose.jwtVerify>[1], {
            issuer: settings.jwt.issuer,
            audience: settings.jwt.audience,
            algorithms: [...key.algorithms]
          }),
        catch: (error) => new Unauthorized({ reason: error instanceof jose.errors.JWTExpired ? "expired" : "bad" })
      }).pipe(
        Effect.flatMap(({ payload }) => {
          const user = payload[settings.jwt.userClaim]
          if (typeof user !== "string" || user === "") return Effect.fail(new Unauthorized({ reason: "bad" }))
          const claim = payload[settings.jwt.rolesClaim]
          const listed = typeof claim === "string" ? claim.split(/[\s,]+/) : Array.isArray(claim) ? claim : []
          const roles = listed.filter(Role.isRole)
          return Effect.succeed<Identity>({
            user,
            roles: [...new Set(roles)],
            ...(typeof payload.exp === "number" ? { expiresAt: payload.exp * 1000 } : {}),
            via: "jwt"
          })
        })
      )

    const authenticate = (credential: Credential | undefined, address: string): Effect.Effect<Identity, Unauthorized> => {
      if (settings.mode === "none") return Effect.succeed(anonymous(address))
      if (credential === undefined) return Effect.fail(new Unauthorized({ reason: "none" }))
      if (admin !== undefined && sameSecret(credential.token, Redacted.value(admin))) {
        return Effect.succeed<Identity>({ user: "admin-token", roles: adminRoles, via: "admin-token" })
      }
      if (settings.mode === "tokens") {
        return Effect.suspend(() => {
          const sha256 = TokenFile.hash(credential.token)
          const entry = tokens.tokens.find((candidate) => candidate.sha256 === sha256)
          if (entry === undefined) return Effect.fail(new Unauthorized({ reason: "bad" }))
          if (TokenFile.expired(entry, Date.now())) return Effect.fail(new Unauthorized({ reason: "expired" }))
          return Effect.succeed<Identity>({
            user: entry.user,
            roles: entry.roles,
            ...(entry.expiresAt === undefined ? {} : { expiresAt: Date.parse(entry.expiresAt) }),
            via: "token"
          })
        })
      }
      return Effect.suspend(() => verifyJwt(credential.token, jwtKey!))
    }

    const close = (item: Tracked, reason: "revoked" | "expired") => {
      table.delete(item)
      options.onClosed?.(reason, item.connection.endpoint ?? "ws")
      item.connection.close(
        CloseUnauthorized,
        reason === "expired" ? "Your credential expired; sign in again" : "Your access was revoked"
      )
    }

    /** Closes the expired, drops the closed; with `recheck`, checks every token against the file again. */
    const sweepNow = (recheck: boolean): Effect.Effect<void> =>
      Effect.gen(function*() {
        const now = Date.now()
        const again: Array<Tracked> = []
        for (const item of table) {
          if (!item.connection.alive()) {
            table.delete(item)
            continue
          }
          if (item.identity.expiresAt !== undefined && item.identity.expiresAt <= now) {
            close(item, "expired")
            continue
          }
          if (!recheck) continue
          if (item.sha256 !== undefined) {
            const entry = tokens.tokens.find((candidate) => candidate.sha256 === item.sha256)
            if (entry === undefined || TokenFile.expired(entry, now) || !sameRoles(entry.roles, item.identity.roles)) {
              close(item, entry !== undefined && TokenFile.expired(entry, now) ? "expired" : "revoked")
            }
          } else if (item.jwt !== undefined) again.push(item)
        }
        const key = jwtKey
        if (key === undefined || again.length === 0) return
        yield* Effect.forEach(again, (item) =>
          verifyJwt(item.jwt!, key).pipe(
            Effect.match({
              onFailure: (error) => {
                if (table.has(item)) close(item, error.reason === "expired" ? "expired" : "revoked")
              },
              onSuccess: () => undefined
            })
          ), { concurrency: 8, discard: true })
      })

    if (settings.mode === "tokens") {
      const file = settings.tokensFile
      yield* WatchedFile.watch(file, () =>
        Runtime.runPromise(runtime)(
          Effect.gen(function*() {
            const read = yield* Effect.either(TokenFile.read(file))
            if (Either.isLeft(read)) {
              return yield* Effect.logWarning(`${read.left.message}; keeping the tokens read before`)
            }
            tokens = read.right
            yield* Effect.logInfo(`token file read again: ${tokens.tokens.length} tokens`)
            yield* sweepNow(true)
          })
        ), { pollMs: settings.pollMs })
    } else if (settings.mode === "jwt") {
      const file = settings.jwt.keyFile
      yield* WatchedFile.watch(file, () =>
        Runtime.runPromise(runtime)(
          Effect.gen(function*() {
            const read = readJwtKey(file)
            if (Either.isLeft(read)) return yield* Effect.logWarning(`${read.left}; keeping the key read before`)
            jwtKey = read.right
            yield* Effect.logInfo(`JWT key read again (${read.right.algorithms.join(", ")})`)
            yield* sweepNow(true)
          })
        ), { pollMs: settings.pollMs })
    }

    if (settings.mode !== "none") {
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          const timer = setInterval(() => Runtime.runFork(runtime)(sweepNow(false)), 1000)
          timer.unref()
          return timer
        }),
        (timer) => Effect.sync(() => clearInterval(timer))
      )
    }

    return {
      mode: settings.mode,
      stopRole: settings.stopRole,
      authenticate,
      check: (credential, address, access) =>
        Effect.flatMap(authenticate(credential, address), (identity) => authorize(identity, access)),
      track: (identity, credential, connection) => {
        if (identity.via === "none" || identity.via === "admin-token") return
        table.add({
          identity,
          connection,
          ...(identity.via === "token" && credential !== undefined ? { sha256: TokenFile.hash(credential.token) } : {}),
          ...(identity.via === "jwt" && credential !== undefined ? { jwt: credential.token } : {})
        })
      },
      tracked: () => table.size,
      sweep: sweepNow(true)
    } satisfies Authenticator
  })

/** The authenticator of `AUTH=none`: everyone is an admin named by their address; nothing is tracked. */
export const none: Authenticator = {
  mode: "none",
  stopRole: "viewer",
  authenticate: (_, address) => Effect.succeed(anonymous(address)),
  check: (_, address) => Effect.succeed(anonymous(address)),
  track: () => undefined,
  tracked: () => 0,
  sweep: Effect.void
}
