/**
 * A setting of the service process, declared once: its environment variable, its `Config` (how
 * the value is read and validated), its default, its help text and its group. Everything else is
 * derived from that declaration: the flag (`MAX_CONNECTIONS` → `--max-connections`), the
 * `Config` with its default, the `--help` table and the docs' table (`npm run docs:settings`).
 *
 * ```ts
 * const declared = Setting.group("Gateway", {
 *   port: Setting.make("PORT", {
 *     config: (name) => Config.integer(name),
 *     default: "8080",
 *     help: "TCP port of HTTP and WebSocket."
 *   })
 * })
 * const config = Config.all({ port: declared.port.config })
 * ```
 *
 * Help texts are Markdown, their links relative to `docs/` (as in docs/service.md); `--help` shows
 * them with links reduced to their label.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import { parseArgs } from "node:util"

/** One setting: where it is read from, how, and what `--help` and the docs say of it. */
export interface Setting<A> {
  /** The environment variable, `MAX_CONNECTIONS`. */
  readonly env: string
  /** The command-line flag, the variable in kebab case: `--max-connections`. */
  readonly flag: string
  /** Reads and validates the variable, with its default when it is unset. */
  readonly config: Config.Config<A>
  /** The default as the docs show it (Markdown): `` `8080` ``, or what unset means, `(none)`. */
  readonly default: string
  /** What it does (Markdown). */
  readonly help: string
  /** The heading `--help` lists it under (`Gateway`, `Canvas`, `Fleet`). */
  readonly group: string
}

/** The flag of a variable: its name in kebab case (`MAX_CONNECTIONS` → `--max-connections`). */
export const flagOf = (env: string): string => `--${env.toLowerCase().replaceAll("_", "-")}`

/** Reads `config` from the one variable `env` set to `value`; a default that fails its own validation is a bug. */
const parseDefault = <A>(config: Config.Config<A>, env: string, value: string): A =>
  Effect.runSync(
    Effect.withConfigProvider(config, ConfigProvider.fromMap(new Map([[env, value]]))).pipe(
      Effect.orDieWith((error) => new Error(`the default of ${env} ("${value}") is invalid: ${error}`))
    )
  )

/**
 * A setting with a default, written as the variable would hold it (`"15 seconds"`) and read
 * through `config` itself, so the default passes the same validation as any value. `shown`
 * replaces it in `--help` and the docs when the raw value says less (`16 r/place colours`).
 */
export const make = <A>(env: string, options: {
  readonly config: (name: string) => Config.Config<A>
  readonly default: string
  readonly shown?: string
  readonly help: string
}): Setting<A> => {
  const read = options.config(env)
  return {
    env,
    flag: flagOf(env),
    config: Config.withDefault(read, parseDefault(read, env, options.default)),
    default: options.shown ?? `\`${options.default}\``,
    help: options.help,
    group: ""
  }
}

/** A setting without a default: `None` when the variable is unset; `unset` says what that means (`(none)`). */
export const optional = <A>(env: string, options: {
  readonly config: (name: string) => Config.Config<A>
  readonly unset: string
  readonly help: string
}): Setting<Option.Option<A>> => ({
  env,
  flag: flagOf(env),
  config: Config.option(options.config(env)),
  default: options.unset,
  help: options.help,
  group: ""
})

/** The settings of one part of the service, each marked with `title` (its heading in `--help`); the order is theirs. */
export const group = <const R extends Record<string, Setting<any>>>(title: string, settings: R): R => {
  const grouped: Record<string, Setting<unknown>> = {}
  for (const [key, setting] of Object.entries(settings)) grouped[key] = { ...setting, group: title }
  return grouped as R
}

/** Command-line arguments that are not settings. */
export class UsageError extends Error {
  override readonly name = "UsageError"
}

/**
 * Reads `--flag value` and `--flag=value` pairs into variable names (with `node:util`'s
 * `parseArgs`). `--help` (or `-h`) yields `"help"`.
 * Throws `UsageError` for an unknown flag or a flag without a value.
 */
export const parseFlags = (
  argv: ReadonlyArray<string>,
  known: ReadonlyArray<Setting<unknown>>
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

/** Markdown as a terminal shows it: a link is its label; backticks stay. */
const plain = (markdown: string): string => markdown.replace(/\[([^\]]+)\]\([^)]+\)/g, "$1")

/** `--help`: every setting under its group's heading, with its flag, variable and default. */
export const usage = (known: ReadonlyArray<Setting<unknown>>): string => {
  // Columns as wide as the longest flag and variable, two spaces apart: names never run together.
  const flagWidth = Math.max(0, ...known.map((s) => s.flag.length)) + 2
  const envWidth = Math.max(0, ...known.map((s) => s.env.length)) + 2
  const lines = ["Usage: fleetvisor [--flag value]…   (each flag also reads from its environment variable)"]
  let group: string | undefined
  for (const s of known) {
    if (s.group !== group) {
      group = s.group
      lines.push("", ...(group === "" ? [] : [`${group}:`]))
    }
    lines.push(
      `  ${s.flag.padEnd(flagWidth)}${s.env.padEnd(envWidth)}default ${plain(s.default).replaceAll("`", "")}`,
      `      ${plain(s.help)}`
    )
  }
  return lines.join("\n")
}

/**
 * The docs' table of `known`: variable, flag, default and meaning, one row each. `relink` rewrites
 * each link's target, for a page elsewhere than `docs/` (the README).
 */
export const markdownTable = (
  known: ReadonlyArray<Setting<unknown>>,
  relink: (target: string) => string = (target) => target
): string => {
  const links = (markdown: string) =>
    markdown.replace(/\]\(([^)]+)\)/g, (_, target: string) => `](${relink(target)})`).replaceAll("|", "\\|")
  return [
    "| variable | flag | default | meaning |",
    "|---|---|---|---|",
    ...known.map((s) => `| \`${s.env}\` | \`${s.flag}\` | ${links(s.default)} | ${links(s.help)} |`)
  ].join("\n")
}

/** What `config` reads with every variable unset: the defaults of its settings. */
export const defaultsOf = <A>(config: Config.Config<A>): A =>
  Effect.runSync(
    Effect.withConfigProvider(config, ConfigProvider.fromMap(new Map())).pipe(
      Effect.orDieWith((error) => new Error(`the defaults do not read: ${error}`))
    )
  )
