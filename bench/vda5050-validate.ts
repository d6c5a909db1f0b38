/**
 * What checking one VDA 5050 message costs, per message, in µs: JSON.parse alone (bytes to text
 * included, as MQTT delivers them); JSON.parse and the official schema (ajv, formats checked);
 * the message schema (`MessageCodec.decode`: JSON.parse and effect/Schema); and the whole check
 * of `Inbound` (topic, payload, identity) without and with the official schemas. For a
 * visualization as an AGV sends it and for the state example shipped with the schemas.
 *
 *   npm run bench:validate      → one JSON object on stdout
 *
 * Times are CPU time (the process's, user and system) per message, so that a busy machine
 * (waiting for a core) does not inflate them. The schemas and the example come from the shared fixtures (`FLEETVISOR_SHARED`, else
 * `../shared` beside the checkout, else /work/shared), as the tests find them. Each figure is
 * the median of `rounds` rounds of `roundSeconds`, after a warm-up; about 15 s in all.
 */
import * as Either from "effect/Either"
import * as fs from "node:fs"
import { fileURLToPath } from "node:url"
import * as Inbound from "../src/links/vda5050/Inbound.js"
import * as MessageCodec from "../src/links/vda5050/MessageCodec.js"
import * as OfficialSchemas from "../src/links/vda5050/OfficialSchemas.js"
import type { TopicName } from "../src/links/vda5050/Topic.js"

const rounds = 5
const roundSeconds = 0.15
const warmupSeconds = 0.1

const fixturesDir = ((): string => {
  const candidates = [
    process.env.FLEETVISOR_SHARED,
    fileURLToPath(new URL("../../shared/", import.meta.url)),
    "/work/shared/"
  ].filter((dir): dir is string => dir !== undefined && dir !== "")
  const found = candidates.map((dir) => `${dir.replace(/\/$/, "")}/fixtures/vda5050/`).find((dir) => fs.existsSync(dir))
  if (found === undefined) throw new Error(`VDA 5050 fixtures not found in ${candidates.join(", ")}; set FLEETVISOR_SHARED`)
  return found
})()

const loadStart = performance.now()
const schemas = Either.getOrThrowWith(OfficialSchemas.load(fixturesDir), (error) => new Error(error.message))
const loadMs = performance.now() - loadStart

const agv = { manufacturer: "ExampleRobotics", serialNumber: "AMR-0042" }
const prefix = "uagv/v2"
const encoder = new TextEncoder()
const textDecoder = new TextDecoder()

/** 64 visualizations of one AGV driving, as it would send them (every field filled in). */
const visualizations = Array.from({ length: 64 }, (_, i) =>
  encoder.encode(JSON.stringify({
    headerId: 1000 + i,
    timestamp: new Date(Date.UTC(2024, 4, 14, 9, 31, 7, i * 33)).toISOString(),
    version: "2.0.0",
    ...agv,
    agvPosition: {
      x: 23.418 + i * 0.028,
      y: 7.052 + i * 0.001,
      theta: 1.5708 - i * 0.002,
      mapId: "hall-3-floor-0",
      positionInitialized: true,
      localizationScore: 0.93,
      deviationRange: 0.04
    },
    velocity: { vx: 0.85, vy: 0, omega: 0.02 }
  })))

const stateExample = JSON.parse(fs.readFileSync(`${fixturesDir}state.example.json`, "utf8"))
const states = Array.from({ length: 64 }, (_, i) => encoder.encode(JSON.stringify({ ...stateExample, headerId: 4812 + i })))

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

let sink = 0

/**
 * µs of CPU time per call of `check` over `payloads`, in a round of `seconds`: CPU time, not wall
 * time, so that waiting for a core on a busy machine is not counted as the check's.
 */
const round = (payloads: ReadonlyArray<Uint8Array>, check: (payload: Uint8Array) => unknown, seconds: number): number => {
  const until = performance.now() + seconds * 1000
  const start = process.cpuUsage()
  let calls = 0
  while (performance.now() < until) {
    for (let i = 0; i < 1000; i++) if (check(payloads[i & 63]) !== undefined) sink++
    calls += 1000
  }
  const used = process.cpuUsage(start)
  return (used.user + used.system) / calls
}

const alone = Inbound.makeChecker(prefix)
const official = Inbound.makeChecker(prefix, { official: schemas.validate })

type Label =
  | "jsonParse"
  | "ajvAlone"
  | "effectSchemaAlone"
  | "jsonParseAjv"
  | "jsonParseEffectSchema"
  | "inbound"
  | "inboundOfficial"

type Case = readonly [Label, (payload: Uint8Array) => unknown]

const cases = (topic: TopicName, payloads: ReadonlyArray<Uint8Array>): ReadonlyArray<Case> => {
  const name = `${prefix}/${agv.manufacturer}/${agv.serialNumber}/${topic}`
  for (const payload of payloads) {
    if (schemas.validate(topic, JSON.parse(textDecoder.decode(payload))) !== undefined) throw new Error(`${topic} is not valid`)
    if (official(name, payload)?._tag !== "Valid" || alone(name, payload)?._tag !== "Valid") throw new Error(`${topic} is not Valid`)
  }
  const parsed = new Map(payloads.map((payload) => [payload, JSON.parse(textDecoder.decode(payload))]))
  return [
    ["jsonParse", (payload) => JSON.parse(textDecoder.decode(payload))],
    ["ajvAlone", (payload) => schemas.validate(topic, parsed.get(payload)) ?? 0],
    ["effectSchemaAlone", (payload) => MessageCodec.decodeValue(topic, parsed.get(payload))],
    ["jsonParseAjv", (payload) => schemas.validate(topic, JSON.parse(textDecoder.decode(payload))) ?? 0],
    ["jsonParseEffectSchema", (payload) => MessageCodec.decode(topic, payload)],
    ["inbound", (payload) => alone(name, payload)],
    ["inboundOfficial", (payload) => official(name, payload)]
  ]
}

/** Each case's median over the rounds; the cases take turns in each round, so that the machine's load falls on all alike. */
const measure = (payloads: ReadonlyArray<Uint8Array>, all: ReadonlyArray<Case>): Record<Label, number> => {
  for (const [, check] of all) round(payloads, check, warmupSeconds)
  const samples = all.map(() => [] as Array<number>)
  for (let r = 0; r < rounds; r++) all.forEach(([, check], i) => samples[i].push(round(payloads, check, roundSeconds)))
  return Object.fromEntries(all.map(([label], i) => [label, Number(median(samples[i]).toFixed(2))])) as Record<Label, number>
}

const visualization = { bytes: visualizations[0].byteLength, ...measure(visualizations, cases("visualization", visualizations)) }
const state = { bytes: states[0].byteLength, ...measure(states, cases("state", states)) }

process.stdout.write(`${JSON.stringify({
  bench: "vda5050-validate",
  unit: "µs of CPU time per message, median of rounds",
  node: process.version,
  schemas: schemas.versions,
  schemasLoadMs: Math.round(loadMs),
  visualization,
  state,
  inboundSpeedup: {
    visualization: Number((visualization.inbound / visualization.inboundOfficial).toFixed(1)),
    state: Number((state.inbound / state.inboundOfficial).toFixed(1))
  },
  sink: sink > 0
})}\n`)
