/**
 * The speed guard's phases over samples (see SpeedGuard.ts), shared by the in-process loop and
 * the loop's worker thread. Plain JavaScript for the worker's sake: see ControlLoopWorker.mjs.
 *
 * As a worker phases module (`phases(config, io)`), its inputs are batches of conflated samples
 * `{ robots, values }` (`values`: kind (0 arm, 1 agv), x, y, z, t per robot), and its outputs
 * the alarms it posts.
 */

/** Speeds are measured over at least this many seconds, so that bursts of samples do not read as jumps. */
const minInterval = 0.05

/** The guard: `offer` conflates the latest sample per robot, the four phases consume them, `emit` gets each new alarm. */
export const makeGuard = (limits, emit) => {
  const { armLimit, agvLimit } = limits
  let incoming = new Map()
  let current = new Map()
  const previous = new Map()
  const speeds = new Map()
  const flagged = new Set()
  const alarms = []
  return {
    offer: (robot, sample) => void incoming.set(robot, sample),
    phases: [
      {
        name: "read inputs",
        run: () => {
          const taken = incoming
          incoming = current
          incoming.clear()
          current = taken
        }
      },
      {
        name: "process",
        run: () => {
          for (const [robot, sample] of current) {
            const before = previous.get(robot)
            if (before !== undefined && sample.t - before.t < minInterval) continue
            previous.set(robot, sample)
            if (before === undefined) continue
            const distance = Math.hypot(sample.x - before.x, sample.y - before.y, sample.z - before.z)
            speeds.set(robot, { kind: sample.kind, speed: distance / (sample.t - before.t) })
          }
        }
      },
      {
        name: "control",
        run: () => {
          for (const robot of current.keys()) {
            const measured = speeds.get(robot)
            if (measured === undefined) continue
            const limit = measured.kind === "arm" ? armLimit : agvLimit
            if (measured.speed > limit && !flagged.has(robot)) {
              flagged.add(robot)
              alarms.push({
                _tag: "Alarm",
                robot,
                kind: measured.kind,
                code: "OVERSPEED",
                level: "fatal",
                message: `${measured.speed.toFixed(1)} ${measured.kind === "arm" ? "mm/s" : "m/s"} over the limit of ${limit}`,
                at: Date.now()
              })
            } else if (measured.speed < 0.9 * limit) {
              flagged.delete(robot)
            }
          }
        }
      },
      {
        name: "actuator outputs",
        run: () => {
          for (const alarm of alarms.splice(0)) emit(alarm)
        }
      }
    ]
  }
}

/** Packs conflated samples into a batch for the worker; `values.buffer` can be transferred. */
export const encodeBatch = (samples) => {
  const robots = []
  const values = new Float64Array(samples.size * 5)
  let i = 0
  for (const [robot, s] of samples) {
    robots.push(robot)
    values[i++] = s.kind === "arm" ? 0 : 1
    values[i++] = s.x
    values[i++] = s.y
    values[i++] = s.z
    values[i++] = s.t
  }
  return { robots, values }
}

/** The worker phases module: the guard fed by batches, its alarms posted back. */
export const phases = (config, io) => {
  const guard = makeGuard(config, io.post)
  io.onInput(({ robots, values }) => {
    for (let r = 0, i = 0; r < robots.length; r++, i += 5) {
      guard.offer(robots[r], { kind: values[i] === 0 ? "arm" : "agv", x: values[i + 1], y: values[i + 2], z: values[i + 3], t: values[i + 4] })
    }
  })
  return guard.phases
}
