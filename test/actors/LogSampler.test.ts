import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as LogSampler from "../../src/actors/LogSampler.js"

const capture = () => {
  const lines: Array<string> = []
  const layer = Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ annotations, message }) => {
      const text = (Array.isArray(message) ? message : [message]).map(String).join(" ")
      lines.push(HashMap.size(annotations) === 0 ? text : `${text} ${JSON.stringify(Object.fromEntries(annotations))}`)
    })
  )
  return { lines, layer }
}

describe("LogSampler", () => {
  it("cuts an outsider's string to an excerpt that says how long it was", () => {
    expect(LogSampler.excerpt("short")).toBe("short")
    const cut = LogSampler.excerpt("x".repeat(60_011))
    expect(cut).toBe(`${"x".repeat(200)}… (60,011 characters)`)
    expect(LogSampler.thousands(1_234_567)).toBe("1,234,567")
  })

  it.live("logs one line per key per window, then one summary with the count; other keys are sampled apart", () =>
    Effect.gen(function*() {
      const { layer, lines } = capture()
      const sampler = LogSampler.make({ windowMillis: 1_000 })
      yield* Effect.gen(function*() {
        yield* sampler.warning("refused:rate", "AGVs refused (rate)", () => "AGV fake/0 refused").pipe(
          Effect.annotateLogs({ robot: "fake/0" })
        )
        // Counted without an Effect to run: the hot path's form.
        for (let i = 1; i < 1_235; i++) {
          expect(sampler.sample(LogLevel.Warning, "refused:rate", "AGVs refused (rate)", () => `AGV fake/${i} refused`)).toBeUndefined()
        }
        yield* sampler.warning("refused:cap", "AGVs refused (cap)", "AGV fake/x refused: cap")
        yield* sampler.warning("refused:cap", "AGVs refused (cap)", "again")
        expect(lines).toEqual(['AGV fake/0 refused {"robot":"fake/0"}', "AGV fake/x refused: cap"])
        expect(sampler.suppressed()).toBe(1_235)
        yield* Effect.sleep("1300 millis")
        // The summaries carry no annotation of one of the many.
        expect(lines.slice(2).sort()).toEqual([
          "AGVs refused (cap) … and 1 more in the last 1 s",
          "AGVs refused (rate) … and 1,234 more in the last 1 s"
        ])
        // A new window logs in full again.
        yield* sampler.warning("refused:rate", "AGVs refused (rate)", "AGV fake/again refused")
        expect(lines.at(-1)).toBe("AGV fake/again refused")
      }).pipe(Effect.provide(layer))
    }))
})
