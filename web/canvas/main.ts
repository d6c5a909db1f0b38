/**
 * The canvas page: the shared board on a <canvas> (wheel or buttons to zoom, drag to pan, click
 * to paint), the palette, the cooldown, and the connection state. The board comes from
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
const cooldownText = element<HTMLSpanElement>("cooldown")
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
  if (hover !== undefined) {
    context.lineWidth = 2 / scale
    context.strokeStyle = palette[selected] === "#222222" ? "#ffffff" : "#222222"
    context.strokeRect(hover.x, hover.y, 1, 1)
  }
}

const fit = () => {
  const w = view.clientWidth
  const h = view.clientHeight
  scale = Math.max(0.05, Math.min(w / width, h / height) * 0.95)
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
    }
    return swatch
  }))
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
    if (!fitted) fit()
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

const showMessage = (text: string) => {
  message.textContent = text
  message.hidden = text === ""
}

const tickCooldown = () => {
  const left = cooldownUntil - (Date.now() + serverOffsetMs)
  cooldownText.textContent = left > 0 ? `Next pixel in ${(left / 1000).toFixed(1)} s` : "Ready to paint"
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
      cooldownUntil = DateTime.toEpochMillis(exit.value.cooldownUntil)
      return showMessage("")
    }
    const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
    switch (error?._tag) {
      case "Cooldown":
        cooldownUntil = Date.now() + serverOffsetMs + error.retryAfterMs
        return showMessage("Wait for the cooldown")
      case "OutOfBounds":
        return showMessage("That pixel is outside the board")
      case "InvalidColor":
        return showMessage("That colour is not in the palette")
      case "Unavailable":
        return showMessage(`The canvas is unavailable: ${error.reason}`)
      default:
        return showMessage("Not connected; try again in a moment")
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
  position.textContent = hover === undefined ? "" : `(${hover.x}, ${hover.y})`
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
