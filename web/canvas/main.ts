/**
 * The canvas page: the shared board on a <canvas> (wheel or buttons to zoom, drag to pan, click
 * to paint), the palette, the cooldown, and the connection state. The board has a visible
 * frame; the pixel under the pointer shows in the selected colour where a click would paint; it
 * opens at a zoom where one pixel is a few screen pixels (`Fit` shows the whole board); a first
 * visit shows how to paint; the cooldown is a neutral countdown, not an error. The board comes from
 * `CanvasJoin`: a snapshot, then one `Updates` per tick; when the socket drops, the client
 * reconnects and the page joins again from a fresh snapshot. A gap in the sequence numbers (a
 * frame skipped because this tab fell behind) also makes it join again.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Stream from "effect/Stream"
import { FleetvisorClient } from "../../src/client/FleetvisorClient.js"
import { type CanvasEvent, unpackPixels } from "../../src/protocol/CanvasRpcs.js"
import { clientLayer, keepSubscribed, showConnection } from "../shared/client.js"

/** The page fell behind: an `Updates` did not follow the board it has. */
class SequenceGap extends Data.TaggedError("SequenceGap")<{ readonly have: number; readonly got: number }> {}

const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T
const view = element<HTMLCanvasElement>("board")
const status = element<HTMLSpanElement>("status")
const paletteBar = element<HTMLDivElement>("palette")
const cooldownText = element<HTMLSpanElement>("cooldown-text")
const cooldownBar = element<HTMLSpanElement>("cooldown-bar").firstElementChild as HTMLSpanElement
const currentSwatch = element<HTMLElement>("current-swatch")
const hint = element<HTMLDivElement>("hint")
const position = element<HTMLSpanElement>("position")
const message = element<HTMLSpanElement>("message")
const context = view.getContext("2d")!

// The board: one palette index per pixel, mirrored as RGBA in an offscreen canvas.
let width = 0
let height = 0
let seq = -1
let pixels = new Uint8Array(0)
let colors = new Uint32Array(0)
let palette: ReadonlyArray<string> = []
let image: ImageData | undefined
let image32 = new Uint32Array(0)
const offscreen = document.createElement("canvas")
const offscreenContext = offscreen.getContext("2d")!

// The view: screen = board * scale + offset, in CSS pixels.
let scale = 1
let offsetX = 0
let offsetY = 0
let fitted = false
let hover: { x: number; y: number } | undefined
let selected = 3
let cooldownUntil = 0
/** How long the current cooldown lasts in all, for its bar. */
let cooldownLength = 0
let serverOffsetMs = 0
let drawQueued = false

const rgba = (css: string): number => {
  const n = parseInt(css.slice(1), 16)
  // ImageData is RGBA in memory, so a little-endian u32 is ABGR.
  return (0xff << 24 | (n & 0xff) << 16 | (n & 0xff00) | (n >> 16 & 0xff)) >>> 0
}

const requestDraw = () => {
  if (drawQueued) return
  drawQueued = true
  requestAnimationFrame(draw)
}

function draw() {
  drawQueued = false
  const ratio = window.devicePixelRatio || 1
  const w = view.clientWidth
  const h = view.clientHeight
  if (view.width !== Math.round(w * ratio) || view.height !== Math.round(h * ratio)) {
    view.width = Math.round(w * ratio)
    view.height = Math.round(h * ratio)
  }
  context.setTransform(ratio, 0, 0, ratio, 0, 0)
  context.fillStyle = "#d6d6d6"
  context.fillRect(0, 0, w, h)
  if (image === undefined) return
  context.imageSmoothingEnabled = false
  context.setTransform(ratio * scale, 0, 0, ratio * scale, ratio * offsetX, ratio * offsetY)
  context.drawImage(offscreen, 0, 0)
  // The board's frame, in screen pixels: a shadow and a dark edge, so a white board shows where it ends.
  context.setTransform(ratio, 0, 0, ratio, 0, 0)
  context.strokeStyle = "#555"
  context.lineWidth = 1
  context.strokeRect(offsetX - 0.5, offsetY - 0.5, width * scale + 1, height * scale + 1)
  context.strokeStyle = "#0002"
  context.lineWidth = 4
  context.strokeRect(offsetX - 3, offsetY - 3, width * scale + 6, height * scale + 6)
  if (hover !== undefined && drag?.moved !== true) drawCursor(hover.x, hover.y)
}

/**
 * The pixel a click would paint, in the selected colour, framed in a contrasting colour; at
 * least 10 screen pixels wide so it shows at any zoom (then centred on the pixel).
 */
const drawCursor = (x: number, y: number) => {
  const size = Math.max(scale, 10)
  const left = offsetX + (x + 0.5) * scale - size / 2
  const top = offsetY + (y + 0.5) * scale - size / 2
  const colour = palette[selected] ?? "#000000"
  const n = parseInt(colour.slice(1), 16)
  const light = ((n >> 16) & 0xff) * 0.3 + ((n >> 8) & 0xff) * 0.59 + (n & 0xff) * 0.11 > 150
  context.fillStyle = colour
  context.fillRect(left, top, size, size)
  context.lineWidth = 2
  context.strokeStyle = light ? "#222" : "#fff"
  context.strokeRect(left - 1, top - 1, size + 2, size + 2)
  context.lineWidth = 1
  context.strokeStyle = light ? "#fff" : "#222"
  context.strokeRect(left - 2.5, top - 2.5, size + 5, size + 5)
}

/** Screen pixels per board pixel at first: enough to see, and aim at, one pixel. */
const openingScale = 4

/** Shows the whole board, or (`opening`) its centre at a zoom where one pixel is visible. */
const fit = (opening = false) => {
  const w = view.clientWidth
  const h = view.clientHeight
  const whole = Math.max(0.05, Math.min(w / width, h / height) * 0.95)
  scale = opening ? Math.max(whole, openingScale) : whole
  offsetX = (w - width * scale) / 2
  offsetY = (h - height * scale) / 2
  fitted = true
}

const zoomAt = (factor: number, sx: number, sy: number) => {
  const next = Math.min(64, Math.max(0.05, scale * factor))
  offsetX = sx - (sx - offsetX) * (next / scale)
  offsetY = sy - (sy - offsetY) * (next / scale)
  scale = next
  requestDraw()
}

const boardAt = (clientX: number, clientY: number) => {
  const rect = view.getBoundingClientRect()
  const x = Math.floor((clientX - rect.left - offsetX) / scale)
  const y = Math.floor((clientY - rect.top - offsetY) / scale)
  return x >= 0 && y >= 0 && x < width && y < height ? { x, y } : undefined
}

const renderPalette = () => {
  paletteBar.replaceChildren(...palette.map((color, index) => {
    const swatch = document.createElement("button")
    swatch.className = index === selected ? "swatch selected" : "swatch"
    swatch.style.background = color
    swatch.title = color
    swatch.dataset.index = String(index)
    swatch.onclick = () => {
      selected = index
      renderPalette()
      requestDraw()
    }
    return swatch
  }))
  currentSwatch.style.background = palette[selected] ?? ""
  currentSwatch.title = palette[selected] ?? ""
}

const setPixel = (x: number, y: number, color: number) => {
  const i = y * width + x
  pixels[i] = color
  image32[i] = colors[color] ?? 0
}

const apply = (event: CanvasEvent): Effect.Effect<void, SequenceGap> => {
  if (event._tag === "Snapshot") {
    const paletteChanged = palette.join() !== event.palette.join()
    width = event.width
    height = event.height
    palette = event.palette
    colors = Uint32Array.from(palette, rgba)
    pixels = new Uint8Array(event.pixels)
    seq = event.seq
    offscreen.width = width
    offscreen.height = height
    image = new ImageData(width, height)
    image32 = new Uint32Array(image.data.buffer)
    for (let i = 0; i < pixels.length; i++) image32[i] = colors[pixels[i]] ?? 0
    offscreenContext.putImageData(image, 0, 0)
    if (selected >= palette.length) selected = 0
    if (paletteChanged) renderPalette()
    if (!fitted) fit(true)
    document.body.dataset.seq = String(seq)
    requestDraw()
    return Effect.void
  }
  const placed = unpackPixels(event.pixels)
  if (event.seq <= seq) return Effect.void
  if (event.seq !== seq + placed.length) return Effect.fail(new SequenceGap({ have: seq, got: event.seq }))
  let minX = width, minY = height, maxX = -1, maxY = -1
  for (const { color, x, y } of placed) {
    if (x >= width || y >= height) continue
    setPixel(x, y, color)
    minX = Math.min(minX, x)
    minY = Math.min(minY, y)
    maxX = Math.max(maxX, x)
    maxY = Math.max(maxY, y)
  }
  seq = event.seq
  document.body.dataset.seq = String(seq)
  if (image !== undefined && maxX >= 0) {
    offscreenContext.putImageData(image, 0, 0, minX, minY, maxX - minX + 1, maxY - minY + 1)
  }
  requestDraw()
  return Effect.void
}

/** Shows a message: `error` for a refusal, `info` for something to know (red is for errors only). */
const showMessage = (text: string, tone: "info" | "error" = "error") => {
  message.textContent = text
  message.dataset.tone = tone
  message.hidden = text === ""
}

/** Starts the countdown to `until` (the server's clock). */
const startCooldown = (until: number) => {
  cooldownUntil = until
  cooldownLength = Math.max(1, until - (Date.now() + serverOffsetMs))
  tickCooldown()
}

const tickCooldown = () => {
  const left = cooldownUntil - (Date.now() + serverOffsetMs)
  cooldownText.textContent = left > 0 ? `Next pixel in ${(left / 1000).toFixed(1)} s` : "Ready to paint"
  cooldownBar.style.width = left > 0 ? `${Math.min(100, (1 - left / cooldownLength) * 100)}%` : "0"
  document.body.dataset.cooldown = left > 0 ? "waiting" : "ready"
}
setInterval(tickCooldown, 100)

const runtime = ManagedRuntime.make(clientLayer().pipe(Layer.orDie))

const place = (x: number, y: number) =>
  Effect.gen(function*() {
    const client = yield* FleetvisorClient
    const color = selected
    const exit = yield* Effect.exit(client.rpc.CanvasPlace({ x, y, color }))
    // The pixel itself arrives with the tick's `Updates`, in order with everyone else's.
    if (Exit.isSuccess(exit)) {
      startCooldown(DateTime.toEpochMillis(exit.value.cooldownUntil))
      dismissHint()
      return showMessage("")
    }
    const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
    switch (error?._tag) {
      case "Cooldown":
        // Not an error: the countdown says when the next pixel may go.
        startCooldown(Date.now() + serverOffsetMs + error.retryAfterMs)
        return showMessage("")
      case "OutOfBounds":
        return showMessage("That pixel is outside the board")
      case "InvalidColor":
        return showMessage("That colour is not in the palette")
      case "Unavailable":
        return showMessage(`The canvas is unavailable: ${error.reason}`)
      default:
        return showMessage("No answer from the server (the connection is down); try again when it reads Live")
    }
  })

// The board: join, and join again after a drop, a gap or a refusal of the server.
const board = Effect.gen(function*() {
  const client = yield* FleetvisorClient
  yield* client.resubscribe(client.rpc.CanvasJoin()).pipe(
    Stream.runForEach(apply),
    Effect.tapError((error) => Effect.sync(() => console.info("canvas: joining again after", error))),
    keepSubscribed
  )
})

const connection = Effect.gen(function*() {
  const client = yield* FleetvisorClient
  yield* client.state.pipe(Stream.runForEach((state) =>
    Effect.gen(function*() {
      showConnection(status, state)
      // The server clock, so the cooldown counts down right on a skewed machine (optional RPC).
      if (state._tag === "Open") {
        const started = Date.now()
        yield* client.rpc.ServerTime().pipe(
          Effect.tap(({ now }) =>
            Effect.sync(() => (serverOffsetMs = DateTime.toEpochMillis(now) - (started + Date.now()) / 2))
          ),
          Effect.ignore,
          Effect.forkDaemon
        )
      }
    })
  ))
})

// Pointer: drag pans, a click (little movement) paints, the wheel zooms around the cursor.
let drag: { x: number; y: number; startX: number; startY: number; moved: boolean } | undefined
view.addEventListener("pointerdown", (event) => {
  view.setPointerCapture(event.pointerId)
  drag = { x: event.clientX, y: event.clientY, startX: event.clientX, startY: event.clientY, moved: false }
})
view.addEventListener("pointermove", (event) => {
  hover = boardAt(event.clientX, event.clientY)
  position.textContent = hover === undefined ? "" : `(${hover.x}, ${hover.y}) · a click paints it ${palette[selected] ?? ""}`
  if (drag !== undefined) {
    if (Math.abs(event.clientX - drag.startX) + Math.abs(event.clientY - drag.startY) > 4) drag.moved = true
    if (drag.moved) {
      offsetX += event.clientX - drag.x
      offsetY += event.clientY - drag.y
    }
    drag.x = event.clientX
    drag.y = event.clientY
  }
  requestDraw()
})
view.addEventListener("pointerup", (event) => {
  const clicked = drag !== undefined && !drag.moved
  drag = undefined
  if (!clicked) return
  const at = boardAt(event.clientX, event.clientY)
  if (at !== undefined) runtime.runFork(place(at.x, at.y))
})
view.addEventListener("wheel", (event) => {
  event.preventDefault()
  const rect = view.getBoundingClientRect()
  zoomAt(Math.exp(-event.deltaY * 0.0015), event.clientX - rect.left, event.clientY - rect.top)
}, { passive: false })
element<HTMLButtonElement>("zoom-in").onclick = () => zoomAt(1.5, view.clientWidth / 2, view.clientHeight / 2)
element<HTMLButtonElement>("zoom-out").onclick = () => zoomAt(1 / 1.5, view.clientWidth / 2, view.clientHeight / 2)
element<HTMLButtonElement>("zoom-fit").onclick = () => {
  fit()
  requestDraw()
}
view.addEventListener("pointerleave", () => {
  hover = undefined
  position.textContent = ""
  requestDraw()
})

/** The first-visit hint: shown until the first pixel is placed (remembered in `localStorage`). */
const hintKey = "fleetvisor.canvas.hinted"
const dismissHint = () => {
  hint.hidden = true
  try {
    localStorage.setItem(hintKey, "1")
  } catch {
    // Storage may be off; the hint then shows on each visit.
  }
}
try {
  hint.hidden = localStorage.getItem(hintKey) === "1"
} catch {
  hint.hidden = false
}
window.addEventListener("resize", requestDraw)

/** For devtools and browser tests: the board as this page has it. */
;(window as unknown as { fleetvisorCanvas: unknown }).fleetvisorCanvas = {
  colorAt: (x: number, y: number) => pixels[y * width + x],
  boardAt,
  get seq() {
    return seq
  }
}

runtime.runFork(connection)
runtime.runFork(board)
requestDraw()
