/**
 * The canvas's configuration: the board's shape and palette, the per-user cooldown, the
 * broadcast tick and the slow-client policy, read from the environment with defaults.
 *
 * | variable                | default           | meaning                                                    |
 * |-------------------------|-------------------|------------------------------------------------------------|
 * | `CANVAS_WIDTH`          | 1000              | pixels per row (fixed once the board exists)               |
 * | `CANVAS_HEIGHT`         | 1000              | rows (fixed once the board exists)                         |
 * | `CANVAS_PALETTE`        | r/place 2017's 16 | comma-separated `#rrggbb` colours; may grow, never shrink   |
 * | `CANVAS_COOLDOWN`       | 5 seconds         | how long a user waits between two pixels                   |
 * | `CANVAS_TICK`           | 33 millis (30 Hz) | how often placed pixels are committed and broadcast        |
 * | `CANVAS_CLIENT_BACKLOG` | 1048576 (1 MiB)   | bytes a socket may hold unsent beyond the snapshot         |
 * | `CANVAS_SLOW_CLIENT`    | disconnect        | `disconnect` or `dropping`: what a client over it gets     |
 * | `CANVAS_SSE_BUFFER`     | 256               | update events an SSE client may hold unsent                |
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

/** The defaults: the r/place board. */
export const defaults: CanvasSettings = {
  width: 1000,
  height: 1000,
  palette: placePalette,
  cooldown: Duration.seconds(5),
  tick: Duration.millis(33),
  clientBacklog: 1024 * 1024,
  slowClient: "disconnect",
  sseBuffer: 256
}

const cssColor = /^#[0-9a-fA-F]{6}$/

/** The settings from the environment (`CANVAS_*`), validated. */
export const config: Config.Config<CanvasSettings> = Config.all({
  width: Config.integer("CANVAS_WIDTH").pipe(
    Config.withDefault(defaults.width),
    Config.validate({ message: "CANVAS_WIDTH must be between 1 and 65536", validation: (n) => n >= 1 && n <= 65_536 })
  ),
  height: Config.integer("CANVAS_HEIGHT").pipe(
    Config.withDefault(defaults.height),
    Config.validate({ message: "CANVAS_HEIGHT must be between 1 and 65536", validation: (n) => n >= 1 && n <= 65_536 })
  ),
  palette: Config.array(Config.string(), "CANVAS_PALETTE").pipe(
    Config.withDefault(defaults.palette),
    Config.validate({
      message: "CANVAS_PALETTE must list 2 to 256 colours as #rrggbb, separated by commas",
      validation: (colours) => colours.length >= 2 && colours.length <= 256 && colours.every((c) => cssColor.test(c))
    })
  ),
  // A bare `0` turns the cooldown off, as the docs say; anything else is a duration ("5 seconds").
  cooldown: Config.string("CANVAS_COOLDOWN").pipe(
    Config.mapOrFail((text) =>
      text.trim() === "0" ? Either.right(Duration.zero) : Option.match(Duration.decodeUnknown(text.trim()), {
        onNone: () =>
          Either.left(ConfigError.InvalidData([], `Expected a duration ("5 seconds", "500 millis") or 0 but received "${text}"`)),
        onSome: Either.right
      })
    ),
    Config.withDefault(defaults.cooldown)
  ),
  tick: Config.duration("CANVAS_TICK").pipe(
    Config.withDefault(defaults.tick),
    Config.validate({
      message: "CANVAS_TICK must be between 1 millisecond and 10 seconds",
      validation: (d) => Duration.between(d, { minimum: Duration.millis(1), maximum: Duration.seconds(10) })
    })
  ),
  clientBacklog: Config.integer("CANVAS_CLIENT_BACKLOG").pipe(
    Config.withDefault(defaults.clientBacklog),
    Config.validate({ message: "CANVAS_CLIENT_BACKLOG must be at least 1024 bytes", validation: (n) => n >= 1024 })
  ),
  slowClient: Config.literal("disconnect", "dropping")("CANVAS_SLOW_CLIENT").pipe(
    Config.withDefault(defaults.slowClient)
  ),
  sseBuffer: Config.integer("CANVAS_SSE_BUFFER").pipe(
    Config.withDefault(defaults.sseBuffer),
    Config.validate({ message: "CANVAS_SSE_BUFFER must be at least 1", validation: (n) => n >= 1 })
  )
})

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
