import { describe, expect, it } from "vitest"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as ConfigProviderPathPatch from "effect/ConfigProviderPathPatch"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as HashSet from "effect/HashSet"
import * as Option from "effect/Option"
import * as ServiceConfig from "../../src/http/ServiceConfig.js"
import * as Main from "../../src/main.js"
import * as Setting from "../../src/node/Setting.js"

const read = <A>(config: Config.Config<A>, env: Record<string, string>) =>
  Effect.runSync(Effect.either(Effect.withConfigProvider(config, ConfigProvider.fromMap(new Map(Object.entries(env))))))

const declared = Setting.group("Example", {
  rate: Setting.make("EXAMPLE_RATE", {
    config: (name) => Config.integer(name).pipe(Config.validate({ message: "must be 1 or more", validation: (n) => n >= 1 })),
    default: "50",
    help: "Things a second; see [Limits](#limits)."
  }),
  url: Setting.optional("EXAMPLE_BROKER_URL", { config: Config.string, unset: "(none)", help: "The broker." })
})

describe("Setting", () => {
  it("derives the flag, reads the default through the setting's own Config, and keeps its validation", () => {
    expect(declared.rate).toMatchObject({ env: "EXAMPLE_RATE", flag: "--example-rate", default: "`50`", group: "Example" })
    expect(read(declared.rate.config, {})).toEqual(Either.right(50))
    expect(read(declared.rate.config, { EXAMPLE_RATE: "7" })).toEqual(Either.right(7))
    expect(Either.isLeft(read(declared.rate.config, { EXAMPLE_RATE: "0" }))).toBe(true)
    expect(read(declared.url.config, {})).toEqual(Either.right(Option.none()))
    expect(declared.url.default).toBe("(none)")
  })

  it("refuses a declaration whose default fails its own validation", () => {
    expect(() =>
      Setting.make("EXAMPLE_BAD", {
        config: (name) => Config.integer(name).pipe(Config.validate({ message: "must be 1 or more", validation: (n) => n >= 1 })),
        default: "0",
        help: "."
      })
    ).toThrow(/default of EXAMPLE_BAD \("0"\) is invalid/)
  })

  it("--help: a heading per group, columns as wide as the longest flag and variable, links reduced to their label", () => {
    const help = Setting.usage([...Object.values(declared), ...ServiceConfig.settings.slice(0, 1)])
    expect(help.split("\n")).toEqual([
      "Usage: fleetvisor [--flag value]…   (each flag also reads from its environment variable)",
      "",
      "Example:",
      "  --example-rate        EXAMPLE_RATE        default 50",
      "      Things a second; see Limits.",
      "  --example-broker-url  EXAMPLE_BROKER_URL  default (none)",
      "      The broker.",
      "",
      "Gateway:",
      "  --port                PORT                default 8080",
      "      TCP port of HTTP and WebSocket; 0 picks a free one (the log says which)."
    ])
  })

  it("the docs' table: one row per setting, links rewritten for the page", () => {
    expect(Setting.markdownTable(Object.values(declared), (target) => `docs/service.md${target}`).split("\n")).toEqual([
      "| variable | flag | default | meaning |",
      "|---|---|---|---|",
      "| `EXAMPLE_RATE` | `--example-rate` | `50` | Things a second; see [Limits](docs/service.md#limits). |",
      "| `EXAMPLE_BROKER_URL` | `--example-broker-url` | (none) | The broker. |"
    ])
  })

  it("parses flags into variables; an unknown flag or one without a value is a usage error", () => {
    expect(Setting.parseFlags(["--example-rate", "9", "--example-broker-url=mqtt://b"], Object.values(declared))).toEqual(
      new Map([["EXAMPLE_RATE", "9"], ["EXAMPLE_BROKER_URL", "mqtt://b"]])
    )
    expect(Setting.parseFlags(["-h"], Object.values(declared))).toBe("help")
    expect(() => Setting.parseFlags(["--example-rat", "1"], Object.values(declared))).toThrow(Setting.UsageError)
    expect(() => Setting.parseFlags(["--example-rate"], Object.values(declared))).toThrow(/--example-rate needs a value/)
  })

  it("the node declares every variable its configuration reads, once", () => {
    const names = Main.allSettings.map((setting) => setting.env)
    expect(new Set(names).size).toBe(names.length)
    const reads = new Set<string>()
    const recording = ConfigProvider.fromFlat(ConfigProvider.makeFlat({
      load: (path) => {
        reads.add(path.join("_"))
        return Effect.fail(ConfigError.MissingData([...path], "unset"))
      },
      enumerateChildren: () => Effect.succeed(HashSet.empty()),
      patch: ConfigProviderPathPatch.empty
    }))
    Effect.runSync(Effect.either(Effect.withConfigProvider(Main.config, recording)))
    expect([...reads].sort()).toEqual([...names].sort())
  })
})
