/**
 * The canvas's configuration: the board's shape and palette, the per-user cooldown, the
 * broadcast tick and the slow-client policy, read from the environment with defaults.
 * Each setting is declared once below (`Setting`: variable, `Config`, default, help); `--help`
 * and docs/service.md list them from there.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Layer from "effect/Layer"
import * as Setting from "../../node/Setting.js"
import type { CanvasOptions } from "../../store/CanvasStore.js"

/** The 16 colours of r/place (2017). */
export const placePalette: ReadonlyArray<string> = [
  "#ffffff", "#e4e4e4", "#888888", "#222222", "#ffa7d1", "#e50000", "#e59500", "#a06a42",
  "#e5d900", "#94e044", "#02be01", "#00d3dd", "#0083c7", "#0000ea", "#cf6ee4", "#820080"
]

/** What a client too slow for the updates gets. */
export type SlowClientPolicy = "disconnect" | "dropping"

/** The canvas's settings. */
export interface CanvasSettings {
  readonly width: number
  readonly height: number
  /** CSS colours; a pixel's colour is an index into it. */
  readonly palette: ReadonlyArray<string>
  /** Minimum time between two pixels of one user; zero turns the cooldown off. */
  readonly cooldown: Duration.Duration
  /** The broadcast period: pixels placed within one tick are committed together and sent as one frame. */
  readonly tick: Duration.Duration
  /**
   * Bytes a WebSocket may hold unsent beyond one snapshot before the slow-client policy applies.
   * 1 MiB is about 30 s of a busy board's updates, and bounds the memory of 1,000 stalled clients
   * to about 2 GiB with the snapshot.
   */
  readonly clientBacklog: number
  /**
   * `disconnect` (default): the session is stopped and the page reconnects from a fresh
   * snapshot, so nobody keeps a wrong board. `dropping`: frames are skipped; the page notices
   * the gap in `seq` and joins again.
   */
  readonly slowClient: SlowClientPolicy
  /** Update events an SSE client may hold unsent; over it, its stream ends and EventSource reconnects. */
  readonly sseBuffer: number
}

/** The canvas's settings as a service. */
export class CanvasConfig extends Context.Tag("fleetvisor/apps/canvas/CanvasConfig")<CanvasConfig, CanvasSettings>() {}

const cssColor = /^#[0-9a-fA-F]{6}$/

const between = (min: number, max: number) => (name: string) =>
  Config.integer(name).pipe(
    Config.validate({ message: `must be between ${min} and ${max}`, validation: (n) => n >= min && n <= max })
  )

/** The canvas's settings, each declared once; `--help` and docs/service.md list them in this order. */
const declared = Setting.group("Canvas", {
  enabled: Setting.make("CANVAS", {
    config: Config.boolean,
    default: "on",
    help: "`off` runs the node without the canvas (its RPCs answer Unavailable, pages hide it)."
  }),
  width: Setting.make("CANVAS_WIDTH", {
    config: between(1, 65_536),
    default: "1000",
    help: "Board width in pixels (1–65536). Fixed once the database holds a board."
  }),
  height: Setting.make("CANVAS_HEIGHT", {
    config: between(1, 65_536),
    default: "1000",
    help: "Board height in pixels (1–65536)."
  }),
  palette: Setting.make("CANVAS_PALETTE", {
    config: (name) =>
      // A list's refusal is not prefixed with its name by `Config`: it carries it.
      Config.array(Config.string(), name).pipe(
        Config.mapOrFail((colours) =>
          colours.length >= 2 && colours.length <= 256 && colours.every((c) => cssColor.test(c))
            ? Either.right(colours)
            : Either.left(ConfigError.InvalidData([name], "must list 2 to 256 colours as #rrggbb, separated by commas"))
        )
      ),
    default: placePalette.join(","),
    shown: "16 r/place colours",
    help: "Comma-separated `#rrggbb` colours, 2 to 256; may grow, never shrink."
  }),
  // A bare `0` turns the cooldown off, as the help says; anything else is a duration ("5 seconds").
  cooldown: Setting.make("CANVAS_COOLDOWN", {
    config: (name) =>
      Config.string(name).pipe(
        Config.mapOrFail((text) =>
          text.trim() === "0" ? Either.right(Duration.zero) : Option.match(Duration.decodeUnknown(text.trim()), {
            onNone: () =>
              Either.left(ConfigError.InvalidData([], `Expected a duration ("5 seconds", "500 millis") or 0 but received "${text}"`)),
            onSome: Either.right
          })
        )
      ),
    default: "5 seconds",
    help: "Least time between two pixels of one user (a client address); 0 turns it off."
  }),
  tick: Setting.make("CANVAS_TICK", {
    config: (name) =>
      Config.duration(name).pipe(
        Config.validate({
          message: "must be between 1 millisecond and 10 seconds",
          validation: (d) => Duration.between(d, { minimum: Duration.millis(1), maximum: Duration.seconds(10) })
        })
      ),
    default: "33 millis",
    help: "Broadcast period: the pixels of one tick are committed and sent as one frame."
  }),
  clientBacklog: Setting.make("CANVAS_CLIENT_BACKLOG", {
    config: (name) =>
      Config.integer(name).pipe(
        Config.validate({ message: "must be at least 1024 bytes", validation: (n) => n >= 1024 })
      ),
    default: "1048576",
    help: "Bytes a socket may hold unsent beyond one snapshot before the slow-client policy applies."
  }),
  slowClient: Setting.make("CANVAS_SLOW_CLIENT", {
    config: Config.literal("disconnect", "dropping"),
    default: "disconnect",
    help: "`disconnect` (reconnect to a fresh snapshot) or `dropping` (skip frames)."
  }),
  sseBuffer: Setting.make("CANVAS_SSE_BUFFER", {
    config: (name) =>
      Config.integer(name).pipe(Config.validate({ message: "must be at least 1", validation: (n) => n >= 1 })),
    default: "256",
    help: "Update events an SSE client may hold unsent before its stream ends."
  })
})

/** Every variable of the canvas, `CANVAS` first, in the order of `--help`. */
export const settings: ReadonlyArray<Setting.Setting<unknown>> = Object.values(declared)

/** `CANVAS`: whether the node runs the canvas at all. */
export const enabled: Config.Config<boolean> = declared.enabled.config

/** The settings from the environment (`CANVAS_*`), validated. */
export const config: Config.Config<CanvasSettings> = Config.all({
  width: declared.width.config,
  height: declared.height.config,
  palette: declared.palette.config,
  cooldown: declared.cooldown.config,
  tick: declared.tick.config,
  clientBacklog: declared.clientBacklog.config,
  slowClient: declared.slowClient.config,
  sseBuffer: declared.sseBuffer.config
})

/** The defaults: the r/place board. */
export const defaults: CanvasSettings = Setting.defaultsOf(config)

/** The settings read from the environment; fails with a `ConfigError` naming the bad variable. */
export const layer: Layer.Layer<CanvasConfig, ConfigError.ConfigError> = Layer.effect(CanvasConfig, config)

/** Fixed settings: the defaults overridden by `settings` (tests, embedding). */
export const layerWith = (settings: Partial<CanvasSettings>): Layer.Layer<CanvasConfig> =>
  Layer.succeed(CanvasConfig, { ...defaults, ...settings })

/** The `CanvasStore` options that match these settings, for `CanvasStore.layer`. */
export const storeOptions = (settings: CanvasSettings): CanvasOptions => ({
  width: settings.width,
  height: settings.height,
  palette: settings.palette.length
})
