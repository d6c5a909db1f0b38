/**
 * `fleetvisor token`: issues, lists and revokes the bearer tokens of `AUTH=tokens`.
 *
 * ```text
 * $ fleetvisor token add --user alice --role operator --expires 90d
 * fvt_Jq0…                      (stdout: the token, shown once; stderr says who it is for)
 * $ fleetvisor token list
 * $ fleetvisor token revoke alice        (by token id or by user: every token of the user)
 * ```
 *
 * The file is the service's `AUTH_TOKENS_FILE` (`--file`, else that variable, else
 * `$DATA_DIR/tokens.json`, else `./data/tokens.json`). A running service reads it again when it
 * changes: a revoked token's sessions are closed within seconds.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as path from "node:path"
import * as Role from "../http/Role.js"
import * as TokenFile from "../http/TokenFile.js"
import { CliError } from "./CliError.js"

/** The token file when `--file` is not given. */
export const defaultFile = (env: NodeJS.ProcessEnv = process.env): string =>
  env.AUTH_TOKENS_FILE !== undefined && env.AUTH_TOKENS_FILE !== ""
    ? env.AUTH_TOKENS_FILE
    : path.join(env.DATA_DIR !== undefined && env.DATA_DIR !== "" ? env.DATA_DIR : "./data", "tokens.json")

const units: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** Reads a lifetime such as `90d`, `12h`, `30m` or `2w` into milliseconds. */
export const parseLifetime = (text: string): number | undefined => {
  const match = /^(\d{1,6})\s*([mhdw])$/.exec(text.trim())
  return match === null ? undefined : Number(match[1]) * units[match[2]]
}

const file = Options.text("file").pipe(
  Options.withDescription("The token file (default: $AUTH_TOKENS_FILE, else $DATA_DIR/tokens.json)"),
  Options.optional
)

const fileOf = (given: Option.Option<string>) => Option.getOrElse(given, () => defaultFile())

const fail = (error: TokenFile.TokenFileError) => new CliError({ message: error.message })

const add = Command.make("add", {
  file,
  user: Options.text("user").pipe(Options.withDescription("Who the token is for, as the audit log will name them")),
  role: Options.choice("role", Role.all).pipe(
    Options.withDescription("viewer (watch), operator (also take leases and command), admin (also the admin endpoints)")
  ),
  expires: Options.text("expires").pipe(
    Options.withDescription("How long it works, e.g. 90d, 12h, 2w (default: until revoked)"),
    Options.optional
  )
}, ({ expires, file, role, user }) =>
  Effect.gen(function*() {
    let expiresAt: Date | undefined
    if (Option.isSome(expires)) {
      const ms = parseLifetime(expires.value)
      if (ms === undefined) return yield* new CliError({ message: `--expires ${expires.value}: write it as 90d, 12h, 30m or 2w` })
      expiresAt = new Date(Date.now() + ms)
    }
    const target = fileOf(file)
    const { entry, token } = yield* Effect.mapError(TokenFile.add(target, { user, roles: [role], expiresAt }), fail)
    yield* Console.log(token)
    yield* Console.error(
      `token ${entry.id} for ${entry.user} (${entry.roles.join(", ")})` +
        `${entry.expiresAt === undefined ? "" : `, until ${entry.expiresAt}`}, added to ${target}; it is shown once`
    )
  })).pipe(Command.withDescription("Issue a token for a user; prints it once"))

const list = Command.make("list", {
  file,
  json: Options.boolean("json").pipe(Options.withDescription("Print the entries as JSON"))
}, ({ file, json }) =>
  Effect.gen(function*() {
    const contents = yield* Effect.mapError(TokenFile.read(fileOf(file)), fail)
    if (json) return yield* Console.log(JSON.stringify(contents.tokens, null, 2))
    const now = Date.now()
    const rows = contents.tokens.map((entry) => [
      entry.id,
      entry.user,
      entry.roles.join(","),
      entry.createdAt.slice(0, 19),
      entry.expiresAt === undefined ? "never" : `${entry.expiresAt.slice(0, 19)}${TokenFile.expired(entry, now) ? " (expired)" : ""}`
    ])
    const header = ["ID", "USER", "ROLES", "CREATED", "EXPIRES"]
    const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i].length)))
    for (const row of [header, ...rows]) yield* Console.log(row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd())
  })).pipe(Command.withDescription("List the tokens (never the secrets: the file holds only their hashes)"))

const revoke = Command.make("revoke", {
  file,
  target: Args.text({ name: "id-or-user" }).pipe(Args.withDescription("A token id, or a user (every token of theirs)"))
}, ({ file, target }) =>
  Effect.gen(function*() {
    const removed = yield* Effect.mapError(TokenFile.revoke(fileOf(file), target), fail)
    if (removed.length === 0) return yield* new CliError({ message: `no token has the id or user ${target}` })
    for (const entry of removed) yield* Console.log(`revoked ${entry.id} (${entry.user})`)
  })).pipe(Command.withDescription("Revoke tokens; a running service closes their sessions within seconds"))

/** `fleetvisor token …`. */
export const command = Command.make("token").pipe(
  Command.withDescription("Issue, list and revoke the bearer tokens of AUTH=tokens"),
  Command.withSubcommands([add, list, revoke])
)
