/**
 * The file of bearer tokens for `AUTH=tokens`: who each token is, and with which roles.
 *
 * Tokens are 32 random bytes (`fvt_` and base64url); the file keeps only their SHA-256, so a
 * copy of the file lets no one in. It is JSON, written whole to a temporary file and renamed
 * over the old one (readers never see half a file), mode 0600:
 *
 * ```json
 * { "version": 1, "tokens": [
 *   { "id": "k3J9…", "user": "alice", "roles": ["operator"], "sha256": "9f86…",
 *     "createdAt": "2026-12-06T17:30:00.000Z", "expiresAt": "2027-03-06T17:30:00.000Z" } ] }
 * ```
 *
 * `fleetvisor token add --user alice --role operator` writes it; removing an entry (`token
 * revoke`) revokes the token: the service reads the file again when it changes and closes the
 * sessions that used it.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Role } from "./Role.js"

/** One token of the file (its hash, never the token). */
export const TokenEntry = Schema.Struct({
  /** A short public name of the token, for `token list` and `token revoke`. */
  id: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_-]{1,64}$/)),
  user: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128)),
  roles: Schema.Array(Role).pipe(Schema.minItems(1)),
  /** SHA-256 of the token, lowercase hex. */
  sha256: Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/)),
  createdAt: Schema.String,
  /** When the token stops working (ISO 8601); absent: never. */
  expiresAt: Schema.optional(Schema.String)
})

/** One token of the file. */
export type TokenEntry = typeof TokenEntry.Type

/** The whole file. */
export const TokenFileContents = Schema.Struct({
  version: Schema.Literal(1),
  tokens: Schema.Array(TokenEntry)
})

/** The whole file. */
export type TokenFileContents = typeof TokenFileContents.Type

/** An empty file: no one may connect. */
export const empty: TokenFileContents = { version: 1, tokens: [] }

/** The token file could not be read or written, or is not a token file. */
export class TokenFileError extends Data.TaggedError("TokenFileError")<{
  readonly path: string
  readonly reason: string
}> {
  override get message(): string {
    return `token file ${this.path}: ${this.reason}`
  }
}

/** The SHA-256 of a token, lowercase hex, as the file keeps it. */
export const hash = (token: string): string => crypto.createHash("sha256").update(token, "utf8").digest("hex")

/** A new token: `fvt_` and 32 random bytes, base64url. */
export const generate = (): string => `fvt_${crypto.randomBytes(32).toString("base64url")}`

const decode = Schema.decodeUnknownEither(Schema.parseJson(TokenFileContents))

/** Reads a token file's text. */
export const parse = (text: string, file: string): Either.Either<TokenFileContents, TokenFileError> =>
  Either.mapLeft(decode(text), (error) =>
    new TokenFileError({ path: file, reason: ParseResult.TreeFormatter.formatErrorSync(error) }))

/** Reads the token file; a missing file is an empty one. */
export const read = (file: string): Effect.Effect<TokenFileContents, TokenFileError> =>
  Effect.flatMap(
    Effect.try({
      try: () => fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined,
      catch: (error) => new TokenFileError({ path: file, reason: String((error as Error).message ?? error) })
    }),
    (text) => text === undefined ? Effect.succeed(empty) : parse(text, file)
  )

/**
 * Writes the whole file: to a temporary file beside it, then renamed over it (mode 0600). The
 * new file keeps the owner of the one it replaces when the writer may give it (root): `sudo
 * fleetvisor token revoke` leaves a file the service's own user can still read.
 */
export const write = (file: string, contents: TokenFileContents): Effect.Effect<void, TokenFileError> =>
  Effect.try({
    try: () => {
      fs.mkdirSync(path.dirname(file), { recursive: true })
      const temporary = `${file}.${process.pid}.tmp`
      fs.writeFileSync(temporary, `${JSON.stringify(contents, null, 2)}\n`, { mode: 0o600 })
      try {
        const previous = fs.statSync(file)
        if (process.getuid?.() === 0) fs.chownSync(temporary, previous.uid, previous.gid)
      } catch {
        // No file before it, or not ours to give away: the writer keeps it.
      }
      fs.renameSync(temporary, file)
    },
    catch: (error) => new TokenFileError({ path: file, reason: String((error as Error).message ?? error) })
  })

/** The entry of a token that is valid at `now` (ms), if any. */
export const lookup = (contents: TokenFileContents, token: string, now: number): TokenEntry | undefined => {
  const sha256 = hash(token)
  const entry = contents.tokens.find((entry) => entry.sha256 === sha256)
  return entry === undefined || expired(entry, now) ? undefined : entry
}

/** Whether an entry's token has expired at `now` (ms). */
export const expired = (entry: TokenEntry, now: number): boolean =>
  entry.expiresAt !== undefined && !(Date.parse(entry.expiresAt) > now)

/** What `add` is told. */
export interface NewToken {
  readonly user: string
  readonly roles: ReadonlyArray<Role>
  /** When it stops working; absent: never. */
  readonly expiresAt?: Date | undefined
}

/** Adds a new token for a user; returns the token (shown once, never stored) and its entry. */
export const add = (
  file: string,
  token: NewToken
): Effect.Effect<{ readonly token: string; readonly entry: TokenEntry }, TokenFileError> =>
  Effect.gen(function*() {
    const contents = yield* read(file)
    const secret = generate()
    const entry: TokenEntry = yield* Schema.decodeUnknown(TokenEntry)({
      id: crypto.randomBytes(6).toString("base64url"),
      user: token.user,
      roles: token.roles,
      sha256: hash(secret),
      createdAt: new Date().toISOString(),
      ...(token.expiresAt === undefined ? {} : { expiresAt: token.expiresAt.toISOString() })
    }).pipe(Effect.mapError((error) => new TokenFileError({ path: file, reason: ParseResult.TreeFormatter.formatErrorSync(error) })))
    yield* write(file, { version: 1, tokens: [...contents.tokens, entry] })
    return { token: secret, entry }
  })

/** Removes the tokens whose id or user is `idOrUser`; returns the entries removed. */
export const revoke = (file: string, idOrUser: string): Effect.Effect<ReadonlyArray<TokenEntry>, TokenFileError> =>
  Effect.gen(function*() {
    const contents = yield* read(file)
    const removed = contents.tokens.filter((entry) => entry.id === idOrUser || entry.user === idOrUser)
    if (removed.length > 0) {
      yield* write(file, { version: 1, tokens: contents.tokens.filter((entry) => !removed.includes(entry)) })
    }
    return removed
  })
