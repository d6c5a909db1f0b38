import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as SampleColumns from "../../src/links/SampleColumns.js"
import * as WorkerThread from "../../src/node/WorkerThread.js"
import type { ColumnWriterProtocol } from "./fixtures/columnWriter.js"

const writer = WorkerThread.entry(import.meta.url, "./fixtures/columnWriter")

describe("SampleColumns", () => {
  it("a slot never written reads as sequence 0 and NaN fields", () => {
    const columns = SampleColumns.make(4)
    const into = new Float64Array(SampleColumns.fieldCount)
    expect(SampleColumns.read(columns, 2, into)).toBe(0)
    expect(columns.values[2 * SampleColumns.fieldCount + SampleColumns.Field.x]).toBeNaN()
  })

  it("a committed sample is read whole, and its sequence number says it changed", () => {
    const columns = SampleColumns.make(4)
    const into = new Float64Array(SampleColumns.fieldCount)
    const offset = SampleColumns.begin(columns, 1)
    columns.values[offset + SampleColumns.Field.x] = 1.5
    columns.values[offset + SampleColumns.Field.theta] = 0.25
    expect(SampleColumns.read(columns, 1, into)).toBe(-1)
    SampleColumns.commit(columns, 1)
    const seen = SampleColumns.read(columns, 1, into)
    expect(seen).toBe(2)
    expect([into[SampleColumns.Field.x], into[SampleColumns.Field.theta]]).toEqual([1.5, 0.25])
    expect(SampleColumns.version(columns, 1)).toBe(seen)
    SampleColumns.commit(columns, 1 + 0 * SampleColumns.begin(columns, 1))
    expect(SampleColumns.version(columns, 1)).not.toBe(seen)
  })

  it("readChanged copies a slot only when a sample was written since the caller's last copy", () => {
    const columns = SampleColumns.make(2)
    const seen = new Int32Array(2)
    const into = new Float64Array(SampleColumns.fieldCount)
    expect(SampleColumns.readChanged(columns, 0, seen, into)).toBe(false)
    columns.values[SampleColumns.begin(columns, 0) + SampleColumns.Field.x] = 7
    expect(SampleColumns.readChanged(columns, 0, seen, into)).toBe(false)
    SampleColumns.commit(columns, 0)
    expect(SampleColumns.readChanged(columns, 0, seen, into)).toBe(true)
    expect(into[SampleColumns.Field.x]).toBe(7)
    expect(seen[0]).toBe(2)
    expect(SampleColumns.readChanged(columns, 0, seen, into)).toBe(false)
  })

  /** Runs the writer thread over `slots`; `race` runs on this thread between its go and its stop. */
  const raceWriter = (columns: SampleColumns.SampleColumns, slots: ReadonlyArray<number>, race: () => void) =>
    Effect.gen(function*() {
      const control = new Int32Array(new SharedArrayBuffer(8))
      const ready = yield* Deferred.make<void>()
      const done = yield* Deferred.make<Extract<ColumnWriterProtocol["out"], { _tag: "Done" }>>()
      yield* WorkerThread.run<ColumnWriterProtocol>(
        writer,
        { shared: columns.shared, slots, control: control.buffer as SharedArrayBuffer, maxSamples: 50_000_000 },
        {
          onMessage: (message) =>
            message._tag === "Ready" ? Deferred.unsafeDone(ready, Effect.void) : Deferred.unsafeDone(done, Effect.succeed(message)),
          onFailure: (reason) => Deferred.unsafeDone(done, Effect.die(reason))
        }
      )
      yield* Deferred.await(ready)
      Atomics.store(control, 0, 1)
      Atomics.notify(control, 0)
      race()
      Atomics.store(control, 1, 1)
      return yield* Deferred.await(done)
    })

  it.effect("readers racing a writer thread never see a torn sample", () =>
    Effect.gen(function*() {
      const columns = SampleColumns.make(8)
      const slots = [0, 3, 7]
      const into = new Float64Array(SampleColumns.fieldCount)
      const seen = new Set<number>()
      let torn = 0
      let backwards = 0
      const result = yield* raceWriter(columns, slots, () => {
        const last = new Map<number, number>()
        // Until the reader saw 5,000 different samples (a few ms on a quiet machine), or 5 s on a loaded one.
        const until = performance.now() + 5_000
        while (seen.size < 5_000 && performance.now() < until) {
          for (const slot of slots) {
            if (SampleColumns.read(columns, slot, into) <= 0) continue
            const k = into[0]
            for (let i = 1; i < SampleColumns.fieldCount; i++) if (into[i] !== k) torn++
            if (k < (last.get(slot) ?? 0)) backwards++
            last.set(slot, k)
            seen.add(k)
          }
        }
      })
      // The race happened: the reader saw many different samples while the writer wrote them.
      expect(seen.size).toBeGreaterThan(100)
      expect(result.samples).toBeGreaterThan(seen.size / 2)
      expect(torn).toBe(0)
      expect(backwards).toBe(0)
      for (const slot of slots) {
        expect(SampleColumns.read(columns, slot, into)).toBe(2 * result.samples)
        expect(into[SampleColumns.Field.battery]).toBe(result.samples)
      }
    }).pipe(Effect.scoped), 60_000)

  it.effect("a wanted sample is posted once, then the writer goes back to columns only", () =>
    Effect.gen(function*() {
      const columns = SampleColumns.make(2)
      SampleColumns.want(columns, 1)
      const result = yield* raceWriter(columns, [0, 1], () => {
        const until = performance.now() + 20
        while (performance.now() < until);
      })
      expect(result.samples).toBeGreaterThan(1)
      expect(result.eventsPosted).toBe(1)
      expect(columns.wants[1]).toBe(0)
    }).pipe(Effect.scoped), 30_000)
})

describe("SampleColumns.Directory", () => {
  it("gives each robot one slot for good, and none once the store is full", () => {
    const directory = SampleColumns.makeDirectory(2)
    expect(directory.assign("KIT/0001")).toBe(0)
    expect(directory.assign("arm-1")).toBe(1)
    expect(directory.assign("KIT/0001")).toBe(0)
    expect(directory.assign("KIT/0002")).toBeUndefined()
    expect(directory.refused()).toBe(1)
    expect(directory.slotOf("arm-1")).toBe(1)
    expect([...directory.entries()]).toEqual([["KIT/0001", 0], ["arm-1", 1]])
  })
})
