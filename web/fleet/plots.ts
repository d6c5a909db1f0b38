/**
 * Plots of the selected robot's last minutes, read from the telemetry log through
 * `GET /api/telemetry?robot=<id>&since=<ms>` (docs/dashboard.md) every few seconds: an AGV's
 * battery and speed, an arm's tool speed and joint angles. A series that does not change is
 * said in words ("no motion: J2 at 12.0°") instead of drawn as a flat line that looks like data.
 *
 * @since 0.1.0
 */

/** A series to plot: its name, unit, and points (epoch ms, value). */
interface Series {
  readonly name: string
  readonly unit: string
  readonly points: ReadonlyArray<readonly [number, number]>
  /** The least range of the y axis, so that noise is not blown up into motion. */
  readonly minRange: number
  /** What to call a series that does not change. */
  readonly still: string
}

interface Sample {
  readonly at: number
  readonly kind: string
  readonly x?: number
  readonly y?: number
  readonly payload?: any
}

/** How far back the plots reach, ms. */
export const windowMs = 10 * 60_000
/** How often they are read again, ms. */
const refreshMs = 5_000
/** Below this change a series counts as still. */
const stillEpsilon = 0.05

/** Speed from successive positions: distance over time, skipping gaps under 20 ms. */
const speeds = (points: ReadonlyArray<readonly [number, number, number]>, per: number): Array<readonly [number, number]> => {
  const out: Array<readonly [number, number]> = []
  for (let i = 1; i < points.length; i++) {
    const [t0, x0, y0] = points[i - 1]
    const [t1, x1, y1] = points[i]
    if (t1 - t0 >= 20) out.push([t1, (Math.hypot(x1 - x0, y1 - y0) / (t1 - t0)) * 1000 * per])
  }
  return out
}

/** The series of a robot's samples. */
export const seriesOf = (samples: ReadonlyArray<Sample>): Array<Series> => {
  const arm = samples.filter((s) => s.kind === "arm" && s.payload?.joints !== undefined)
  if (arm.length > 0) {
    const joints = ["J1", "J2", "J3", "J4", "J5", "J6"].filter((j) => arm.some((s) => typeof s.payload.joints[j] === "number"))
    const tool = arm.map((s) => [s.at, s.payload.position?.X ?? 0, s.payload.position?.Y ?? 0] as const)
    return [
      { name: "tool speed (x, y)", unit: "mm/s", points: speeds(tool, 1), minRange: 10, still: "no motion" },
      ...joints.map((j) => ({
        name: j,
        unit: "°",
        points: arm.map((s) => [s.at, Number(s.payload.joints[j] ?? 0)] as const),
        minRange: 2,
        still: "no motion"
      }))
    ]
  }
  const states = samples.filter((s) => s.kind === "agv-state" && typeof s.payload?.battery === "number")
  const poses = samples.filter((s) => s.kind === "pose" && s.x !== undefined && s.y !== undefined)
  const reported = poses.filter((s) => typeof s.payload?.vx === "number" || typeof s.payload?.vy === "number")
  const speed = reported.length > poses.length / 2
    ? reported.map((s) => [s.at, Math.hypot(s.payload.vx ?? 0, s.payload.vy ?? 0)] as const)
    : speeds(poses.map((s) => [s.at, s.x!, s.y!] as const), 1)
  return [
    { name: "battery", unit: "%", points: states.map((s) => [s.at, s.payload.battery] as const), minRange: 5, still: "steady" },
    { name: "speed", unit: "m/s", points: speed, minRange: 0.2, still: "not moving" }
  ]
}

const drawSeries = (chart: HTMLCanvasElement, series: Series, since: number, until: number) => {
  const width = chart.clientWidth || 300
  const height = 64
  const ratio = window.devicePixelRatio || 1
  chart.width = Math.round(width * ratio)
  chart.height = Math.round(height * ratio)
  const context = chart.getContext("2d")!
  context.setTransform(ratio, 0, 0, ratio, 0, 0)
  context.clearRect(0, 0, width, height)
  context.font = "11px system-ui, sans-serif"
  const values = series.points.map(([, v]) => v)
  const last = values.at(-1)
  context.fillStyle = "#444"
  context.fillText(`${series.name}${last === undefined ? "" : `  ${last.toFixed(1)} ${series.unit}`}`, 4, 12)
  if (values.length === 0) {
    chart.dataset.state = "empty"
    context.fillStyle = "#888"
    context.fillText("no samples in the log yet", 4, 36)
    return
  }
  const min = Math.min(...values)
  const max = Math.max(...values)
  if (max - min < stillEpsilon) {
    chart.dataset.state = "still"
    context.fillStyle = "#777"
    const seconds = Math.round((until - series.points[0][0]) / 1000)
    const lasting = seconds < 120 ? `${seconds} s` : `${Math.round(seconds / 60)} min`
    context.fillText(`${series.still}: ${min.toFixed(1)} ${series.unit} for ${lasting}`, 4, 38)
    return
  }
  chart.dataset.state = "plotted"
  const range = Math.max(series.minRange, max - min)
  const low = (min + max) / 2 - range / 2 - range * 0.1
  const high = (min + max) / 2 + range / 2 + range * 0.1
  const x = (t: number) => ((t - since) / (until - since)) * width
  const y = (v: number) => 16 + (1 - (v - low) / (high - low)) * (height - 20)
  context.fillStyle = "#999"
  context.fillText(`${high.toFixed(1)}`, width - 40, 12)
  context.fillText(`${low.toFixed(1)}`, width - 40, height - 2)
  context.strokeStyle = "#1a5fd0"
  context.lineWidth = 1.5
  context.beginPath()
  series.points.forEach(([t, v], i) => (i === 0 ? context.moveTo(x(t), y(v)) : context.lineTo(x(t), y(v))))
  context.stroke()
}

/** The plots in `container`, with a status line in `note`. */
export const make = (container: HTMLElement, note: HTMLElement) => {
  let robot: string | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  let generation = 0

  const render = (samples: ReadonlyArray<Sample>, since: number, until: number) => {
    const all = seriesOf(samples)
    while (container.children.length < all.length) container.append(document.createElement("canvas"))
    while (container.children.length > all.length) container.lastChild!.remove()
    all.forEach((series, i) => {
      const chart = container.children[i] as HTMLCanvasElement
      chart.dataset.series = series.name
      chart.dataset.points = String(series.points.length)
      drawSeries(chart, series, since, until)
    })
  }

  const load = async (id: string, mine: number) => {
    const since = Date.now() - windowMs
    try {
      const response = await fetch(`/api/telemetry?robot=${encodeURIComponent(id)}&since=${since}&points=600`)
      const body = await response.json() as { samples?: ReadonlyArray<Sample>; until?: number; error?: string; truncated?: boolean }
      if (mine !== generation) return
      if (!response.ok) {
        note.textContent = `Telemetry not available: ${body.error ?? response.statusText}`
        note.dataset.tone = "error"
      } else {
        const samples = body.samples ?? []
        // The x axis spans what the log holds (up to the window), so a young log is not squeezed to the right.
        render(samples, Math.max(since, (samples[0]?.at ?? since) - 1_000), body.until ?? Date.now())
        note.textContent = `Last ${windowMs / 60_000} minutes from the telemetry log: ${samples.length} samples${
          body.truncated === true ? " (the newest only)" : ""
        }`
        note.dataset.tone = "ok"
        note.dataset.samples = String(samples.length)
      }
    } catch (error) {
      if (mine !== generation) return
      note.textContent = `Telemetry not available: ${String(error)}`
      note.dataset.tone = "error"
    }
    if (mine === generation) timer = setTimeout(() => void load(id, mine), refreshMs)
  }

  return {
    /** Plots `id` from now on (reading at once), or nothing. */
    show: (id: string | undefined) => {
      if (id === robot) return
      robot = id
      generation++
      clearTimeout(timer)
      container.replaceChildren()
      note.textContent = id === undefined ? "" : "Reading the telemetry log…"
      delete note.dataset.samples
      if (id !== undefined) void load(id, generation)
    }
  }
}
