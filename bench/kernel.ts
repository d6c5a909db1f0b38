/**
 * The actor kernel beside the BEAM, measured in the same run.
 *
 *   npm run -s bench:kernel      (tsx --expose-gc bench/kernel.ts) → one JSON object on stdout
 *
 * Fleetvisor figures: memory per idle actor and spawn time (100,000 idle
 * actors under one DynamicSupervisor, and spawn through `system.spawn`), tell
 * throughput to one actor (`unsafeTell` and the Effect `tell`, counted when
 * handled), sequential `ask` throughput, restart latency (from `system.crash`
 * to the new incarnation's `init`) and the time of a snapshot of the
 * 100,000-actor tree. Every figure is the median of `repetitions` runs, each in
 * a fresh system, beside the best run, its target (set against the BEAM) and
 * whether the median meets it. The whole run takes 15–60 s and stops itself.
 *
 * The anchor is `../shared/anchors/beam/bench.erl`, compiled and run with
 * `erl` `repetitions` times; Debian's `erlang-base` is installed first if `erl`
 * is missing. Ratios are fleetvisor / BEAM. Progress goes to stderr.
 */
import * as Effect from "effect/Effect"
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { ActorRef, Reply } from "../src/actors/ActorRef.js"
import * as ActorSystem from "../src/actors/ActorSystem.js"
import * as Actor from "../src/actors/Actor.js"
import * as ChildSpec from "../src/supervisors/ChildSpec.js"
import * as DynamicSupervisor from "../src/supervisors/DynamicSupervisor.js"

const repetitions = 5
/** On a slow or busy machine the run stops after this many repetitions once `budgetMillis` has passed. */
const minimumRepetitions = 3
const budgetMillis = 90_000
const actors = 100_000
const tells = 2_000_000
const effectTells = 1_000_000
const asks = 200_000
const crashes = 2_000
const snapshotsPerTree = 3

const targets = {
  bytesPerIdleActor: { max: 2_700 },
  spawnMicros: { max: 5 },
  tellPerSecond: { min: 3_500_000 },
  askPerSecond: { min: 350_000 },
  restartMicros: { max: 50 },
  snapshotMillis: { max: 100 }
} satisfies Record<string, Target>

const here = path.dirname(fileURLToPath(import.meta.url))
/** The project's `shared/` beside the checkout, or wherever `FLEETVISOR_SHARED` points. */
const anchorDir = [process.env.FLEETVISOR_SHARED, path.resolve(here, "../../shared"), "/work/shared"]
  .filter((dir): dir is string => dir !== undefined && dir !== "")
  .map((dir) => path.join(dir, "anchors/beam"))
  .find((dir) => fs.existsSync(path.join(dir, "bench.erl"))) ?? path.resolve(here, "../../shared/anchors/beam")

const gc: () => void = (globalThis as any).gc ?? (() => {
  throw new Error("run with --expose-gc (npm run bench:kernel)")
})
const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const round = (value: number, digits = 2) => Number(value.toFixed(digits))
const log = (line: string) => process.stderr.write(`${line}\n`)
const heapUsed = () => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}
const tick = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** A fresh system for one measurement; crashes are not logged (the restart phase makes thousands). */
const inSystem = <A, E>(f: (system: ActorSystem.ActorSystem) => Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(ActorSystem.make({ logFailures: false }), f)))

const Idle = Actor.make<never, undefined>({ name: "idle", receive: (state) => state })

// -----------------------------------------------------------------------------
// Spawn, memory, snapshot: 100,000 idle children of one DynamicSupervisor
// -----------------------------------------------------------------------------

interface TreeRun {
  readonly spawnMicros: number
  readonly bytesPerIdleActor: number
  readonly snapshotMillis: ReadonlyArray<number>
}

const treeRun = (): Promise<TreeRun> =>
  inSystem((system) =>
    Effect.gen(function*() {
      const supervisor = yield* system.spawn(DynamicSupervisor.make(), { name: "sessions" })
      const before = heapUsed()
      const started = performance.now()
      for (let i = 0; i < actors; i++) {
        yield* DynamicSupervisor.startChild(supervisor, ChildSpec.make(`session:${i}`, Idle))
      }
      const spawnMicros = ((performance.now() - started) * 1000) / actors
      const bytesPerIdleActor = (heapUsed() - before) / actors
      const snapshotMillis: Array<number> = []
      for (let i = 0; i < snapshotsPerTree; i++) {
        const t0 = performance.now()
        const tree = yield* system.snapshot
        snapshotMillis.push(performance.now() - t0)
        if (tree[0].children.length !== actors) throw new Error(`snapshot saw ${tree[0].children.length} children`)
      }
      return { spawnMicros, bytesPerIdleActor, snapshotMillis }
    })
  )

const rawSpawnRun = (): Promise<number> =>
  inSystem((system) =>
    Effect.gen(function*() {
      const started = performance.now()
      for (let i = 0; i < actors; i++) yield* system.spawn(Idle)
      return ((performance.now() - started) * 1000) / actors
    })
  )

// -----------------------------------------------------------------------------
// Tell and ask to one actor
// -----------------------------------------------------------------------------

interface Cast {
  readonly _tag: "Cast"
  readonly i: number
}

/** Counts casts; calls `done` when it has handled `goal` of them. */
const counter = (goal: number, done: () => void) =>
  Actor.make<Cast, number>({
    name: "counter",
    init: () => 0,
    receive: (count) => {
      if (++count === goal) done()
      return count
    }
  })

const tellRun = (viaEffect: boolean): Promise<number> => {
  const n = viaEffect ? effectTells : tells
  return inSystem((system) =>
    Effect.gen(function*() {
      let done!: () => void
      const handled = new Promise<void>((resolve) => (done = resolve))
      const ref = yield* system.spawn(counter(n, () => done()), { mailbox: { capacity: n } })
      const started = performance.now()
      if (viaEffect) {
        for (let i = 0; i < n; i++) yield* ref.tell({ _tag: "Cast", i })
      } else {
        for (let i = 0; i < n; i++) {
          if (!ref.unsafeTell({ _tag: "Cast", i })) throw new Error("tell refused")
        }
      }
      yield* Effect.promise(() => handled)
      return n / ((performance.now() - started) / 1000)
    })
  )
}

interface Call {
  readonly i: number
  readonly reply: Reply<number>
}

const Echo = Actor.make<Call, undefined>({
  name: "echo",
  receive: (state, call) => {
    call.reply.succeed(call.i)
    return state
  }
})

const askRun = (): Promise<number> =>
  inSystem((system) =>
    Effect.gen(function*() {
      const ref = yield* system.spawn(Echo)
      const started = performance.now()
      for (let i = 0; i < asks; i++) {
        const answer = yield* ref.ask<number>((reply) => ({ i, reply }))
        if (answer !== i) throw new Error("wrong reply")
      }
      return asks / ((performance.now() - started) / 1000)
    })
  )

// -----------------------------------------------------------------------------
// Restart latency
// -----------------------------------------------------------------------------

const restartRun = (): Promise<ReadonlyArray<number>> =>
  inSystem((system) =>
    Effect.gen(function*() {
      let current: ActorRef<never> | undefined
      let onInit: (() => void) | undefined
      let initAt = 0
      const Phoenix = Actor.make<never, undefined>({
        name: "phoenix",
        init: (ctx) => {
          initAt = performance.now()
          current = ctx.self
          onInit?.()
          return undefined
        },
        receive: (state) => state
      })
      const supervisor = yield* system.spawn(
        DynamicSupervisor.make({ maxRestarts: crashes * 10, period: "1 second" }),
        { name: "restarter" }
      )
      yield* DynamicSupervisor.startChild(supervisor, ChildSpec.make("phoenix", Phoenix))
      const micros: Array<number> = []
      for (let i = 0; i < crashes; i++) {
        const victim = current!
        const restarted = new Promise<void>((resolve) => (onInit = resolve))
        const crashedAt = performance.now()
        yield* system.crash(victim)
        yield* Effect.promise(() => restarted)
        if (current === victim) throw new Error("not restarted")
        micros.push((initAt - crashedAt) * 1000)
        if ((i & 255) === 255) yield* tick
      }
      return micros
    })
  )

// -----------------------------------------------------------------------------
// BEAM anchor
// -----------------------------------------------------------------------------

interface BeamRun {
  readonly spawnMicros: number
  readonly bytesPerIdleActor: number
  readonly tellPerSecond: number
  readonly askPerSecond: number
}

const hasErl = () => spawnSync("erl", ["-version"], { stdio: "ignore" }).status === 0

const ensureErlang = (): string | undefined => {
  if (hasErl()) return undefined
  log("erl missing: installing erlang-base")
  const sudo = process.getuid?.() === 0 ? [] : ["sudo"]
  const run = (args: Array<string>) =>
    execFileSync(sudo.length > 0 ? "sudo" : args[0], sudo.length > 0 ? args : args.slice(1), {
      stdio: ["ignore", "ignore", "inherit"],
      timeout: 120_000,
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
    })
  run(["apt-get", "update"])
  run(["apt-get", "install", "-y", "erlang-base"])
  return "erlang-base installed"
}

const compileBeam = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-beam-"))
  execFileSync("erlc", ["-o", dir, path.join(anchorDir, "bench.erl")], { stdio: ["ignore", "ignore", "inherit"] })
  return dir
}

const number = (output: string, pattern: RegExp): number => {
  const match = pattern.exec(output)
  if (match === null) throw new Error(`unexpected BEAM output: ${output}`)
  return Number(match[1])
}

const beamRun = (dir: string): BeamRun => {
  const output = execFileSync("erl", ["-noshell", "-pa", dir, "+P", "2000000", "-s", "bench", "main"], {
    encoding: "utf8",
    timeout: 60_000
  })
  return {
    spawnMicros: number(output, /([\d.]+) us each/),
    bytesPerIdleActor: number(output, /([\d.]+) bytes each/),
    tellPerSecond: number(output, /cast: ([\d.]+) msgs\/s/),
    askPerSecond: number(output, /call \(sequential\): ([\d.]+) calls\/s/)
  }
}

// -----------------------------------------------------------------------------

/** A bound a figure must stay within (none: reported only). */
interface Target {
  readonly max?: number
  readonly min?: number
}

interface Figure {
  readonly unit: string
  readonly fleetvisor: number
  readonly runs: ReadonlyArray<number>
  /** The best run: on a shared machine, the closest to what the code costs. */
  readonly best: number
  readonly beam: number | null
  /** fleetvisor / BEAM. */
  readonly ratio: number | null
  readonly target: Target
  readonly meets: boolean
}

const figure = (unit: string, runs: ReadonlyArray<number>, beam: number | null, target: Target, digits = 2): Figure => {
  const value = median(runs)
  return {
    unit,
    fleetvisor: round(value, digits),
    runs: runs.map((r) => round(r, digits)),
    best: round(target.min !== undefined ? Math.max(...runs) : Math.min(...runs), digits),
    beam: beam === null ? null : round(beam, digits),
    ratio: beam === null ? null : round(value / beam, 2),
    target,
    meets: (target.max === undefined || value <= target.max) && (target.min === undefined || value >= target.min)
  }
}

const main = async () => {
  const startedAt = performance.now()
  const installed = ensureErlang()
  const beamDir = compileBeam()
  const beamRuns: Array<BeamRun> = []
  const tree: Array<TreeRun> = []
  const rawSpawn: Array<number> = []
  const unsafeTell: Array<number> = []
  const effectTell: Array<number> = []
  const ask: Array<number> = []
  const restart: Array<ReadonlyArray<number>> = []
  try {
    for (let rep = 0; rep < repetitions; rep++) {
      log(`repetition ${rep + 1}/${repetitions}`)
      beamRuns.push(beamRun(beamDir))
      tree.push(await treeRun())
      rawSpawn.push(await rawSpawnRun())
      unsafeTell.push(await tellRun(false))
      effectTell.push(await tellRun(true))
      ask.push(await askRun())
      restart.push(await restartRun())
      heapUsed()
      if (rep + 1 >= minimumRepetitions && performance.now() - startedAt > budgetMillis) break
    }
  } finally {
    fs.rmSync(beamDir, { recursive: true, force: true })
  }
  const beam = (key: keyof BeamRun) => median(beamRuns.map((r) => r[key]))
  const restartMedians = restart.map(median)
  const restartP99 = restart.map((runs) => [...runs].sort((a, b) => a - b)[Math.floor(runs.length * 0.99)])
  const result = {
    benchmark: "kernel",
    node: process.version,
    cpus: os.cpus().length,
    repetitions: beamRuns.length,
    loadAverage: os.loadavg().map((l) => round(l)),
    ratio: "fleetvisor / BEAM (same run)",
    erlang: installed ?? "present",
    beam: {
      spawnMicros: beamRuns.map((r) => r.spawnMicros),
      bytesPerIdleActor: beamRuns.map((r) => r.bytesPerIdleActor),
      tellPerSecond: beamRuns.map((r) => r.tellPerSecond),
      askPerSecond: beamRuns.map((r) => r.askPerSecond)
    },
    figures: {
      bytesPerIdleActor: figure("bytes", tree.map((r) => r.bytesPerIdleActor), beam("bytesPerIdleActor"), targets.bytesPerIdleActor, 0),
      spawnMicros: figure("µs/actor (DynamicSupervisor.startChild)", tree.map((r) => r.spawnMicros), beam("spawnMicros"), targets.spawnMicros),
      rawSpawnMicros: figure("µs/actor (system.spawn)", rawSpawn, beam("spawnMicros"), targets.spawnMicros),
      unsafeTellPerSecond: figure("msgs/s (unsafeTell)", unsafeTell, beam("tellPerSecond"), targets.tellPerSecond, 0),
      effectTellPerSecond: figure("msgs/s (Effect tell)", effectTell, beam("tellPerSecond"), targets.tellPerSecond, 0),
      askPerSecond: figure("asks/s (sequential)", ask, beam("askPerSecond"), targets.askPerSecond, 0),
      restartMicros: figure("µs median (crash → new incarnation)", restartMedians, null, targets.restartMicros),
      restartP99Micros: figure("µs p99", restartP99, null, {}),
      snapshotMillis: figure("ms (100,000-actor tree)", tree.flatMap((r) => r.snapshotMillis), null, targets.snapshotMillis)
    },
    seconds: round((performance.now() - startedAt) / 1000, 1)
  }
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
}

const watchdog = setTimeout(() => {
  log("kernel bench: over 170 s, giving up")
  process.exit(2)
}, 170_000)
watchdog.unref()

main().then(
  () => process.exit(0),
  (error) => {
    log(String(error?.stack ?? error))
    process.exit(1)
  }
)
