/**
 * The attacker of `RequestFlood.test.ts`, in a process of its own as a client on the network
 * would be (its CPU is not the server's): four attacks on one `/ws` at once, for `attackMs`.
 *
 *   node --import tsx test/chaos/support/RequestFlooder.ts <ws url> <attackMs>
 *
 * It prints `ready` once loaded, starts when it reads a line on stdin, and prints one JSON line
 * of what each attack saw (`Report`) when all are over.
 *
 * - `batches`: MessagePack frames of 1,000 `Ping`s at 40 frames a second, reconnecting whenever
 *   the server closes the session (the attack of issue 13: 185,000 requests in 5 s).
 * - `subscribes`: 2,000 `FleetSubscribe` in frames of 100 (the default burst) at the same pace.
 * - `patient`: one session asking for 200 `FleetSubscribe` within the rate limit (8 every 200 ms),
 *   then a `Ping`: it must still be served.
 * - `bursts`: frames of 50 `Ping`s (within the burst) at 40 a second: 2,000 requests a second.
 */
import { performance } from "node:perf_hooks"
import { createInterface } from "node:readline"
import { pathToFileURL } from "node:url"
import { WebSocket } from "ws"
import * as Rejection from "../../../src/protocol/Rejection.js"
import * as Subprotocol from "../../../src/protocol/Subprotocol.js"
import * as WireCodec from "../../../src/protocol/WireCodec.js"

export const framesPerSecond = 40
export const pingsPerFrame = 1_000
export const subscribesTotal = 2_000
export const subscribesPerFrame = 100
export const patientSubscribes = 200
export const burstPings = 50

/** What one attack saw. */
export interface Attack {
  sessions: number
  /** Sessions the attacker itself cut when the attack ended (not closed by the server). */
  cut: number
  frames: number
  requests: number
  /** `Exit`s received: answers (success or error) and refusals. */
  answered: number
  overloaded: number
  /** Streams that sent a chunk. */
  streams: number
  /** Close codes of the sessions the server closed. */
  closes: Record<string, number>
}

/** The patient subscriber's: also whether its session was still served at the end. */
export interface Patient extends Attack {
  readonly open: boolean
}

export interface Report {
  readonly batches: Attack
  readonly subscribes: Attack
  readonly patient: Patient
  readonly bursts: Attack
}

const newAttack = (): Attack => ({ sessions: 0, cut: 0, frames: 0, requests: 0, answered: 0, overloaded: 0, streams: 0, closes: {} })

const request = (id: number, tag: string, payload: unknown) => ({ _tag: "Request", id: String(id), tag, payload, headers: [] })

/** One MessagePack frame of `count` requests, ids from `from`. */
export const frameOf = (from: number, count: number, tag: string, payload: unknown): Buffer =>
  Buffer.concat(Array.from({ length: count }, (_, i) => WireCodec.msgpack.encode(request(from + i, tag, payload)) as Uint8Array))

const count = (attack: Attack, streams: Set<string>) => (data: Buffer) => {
  for (const message of WireCodec.msgpack.decode(data) as ReadonlyArray<any>) {
    if (message._tag === "Chunk") streams.add(message.requestId)
    if (message._tag !== "Exit") continue
    attack.answered++
    if (message.exit._tag === "Failure" && Rejection.isOverloaded(message.exit.cause?.defect)) attack.overloaded++
  }
}

/**
 * Sends `frames(k)` at `framesPerSecond` (one clock for all its sessions) until `until`,
 * reconnecting whenever the server closes the session. Once the frames run out it waits, until
 * `until`, for what the server does with the last session.
 */
const flood = (url: string, until: number, frames: (k: number) => { readonly frame: Buffer; readonly requests: number } | undefined) =>
  new Promise<Attack>((resolve) => {
    const attack = newAttack()
    const start = performance.now()
    let k = 0
    const slot = () => Math.max(0, start + (k * 1000) / framesPerSecond - performance.now())
    const session = () => {
      if (performance.now() >= until || frames(k) === undefined) return resolve(attack)
      attack.sessions++
      const socket = new WebSocket(url, [Subprotocol.v1MsgPack.name])
      const streams = new Set<string>()
      let timer: ReturnType<typeof setTimeout> | undefined
      let deadline: ReturnType<typeof setTimeout> | undefined
      let cut = false
      const end = () => {
        cut = true
        socket.terminate()
      }
      const next = () => {
        if (socket.readyState !== WebSocket.OPEN) return
        const item = frames(k)
        if (performance.now() >= until) return end()
        if (item === undefined) {
          deadline = setTimeout(end, Math.max(0, until - performance.now()))
          return
        }
        socket.send(item.frame)
        k++
        attack.frames++
        attack.requests += item.requests
        timer = setTimeout(next, slot())
      }
      // Whatever the reconnects, frames keep to the one pace.
      socket.on("open", () => (timer = setTimeout(next, slot())))
      socket.on("message", count(attack, streams))
      socket.on("error", () => {})
      socket.on("close", (code) => {
        clearTimeout(timer)
        clearTimeout(deadline)
        attack.streams += streams.size
        if (cut) attack.cut++
        else attack.closes[code] = (attack.closes[code] ?? 0) + 1
        session()
      })
    }
    session()
  })

/** One session asking for `total` streams within the rate limit (8 every 200 ms), then a Ping. */
const patientSubscriber = (url: string, total: number) =>
  new Promise<Patient>((resolve) => {
    const attack = newAttack()
    attack.sessions = 1
    const socket = new WebSocket(url, [Subprotocol.v1MsgPack.name])
    const streams = new Set<string>()
    let finished = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const done = (open: boolean) => {
      attack.streams = streams.size
      socket.terminate()
      resolve({ ...attack, closes: { ...attack.closes }, open })
    }
    const pingId = 1_000_000
    const finish = () => {
      finished = true
      if (socket.readyState !== WebSocket.OPEN) return done(false)
      socket.on("message", (data: Buffer) => {
        for (const message of WireCodec.msgpack.decode(data) as ReadonlyArray<any>) {
          if (message._tag === "Exit" && message.requestId === String(pingId)) done(message.exit._tag === "Success")
        }
      })
      socket.send(WireCodec.msgpack.encode(request(pingId, "Ping", undefined)))
    }
    socket.on("open", () => {
      const send = () => {
        if (attack.requests >= total || socket.readyState !== WebSocket.OPEN) return finish()
        socket.send(frameOf(attack.requests + 1, 8, "FleetSubscribe", {}))
        attack.frames++
        attack.requests += 8
        timer = setTimeout(send, 200)
      }
      send()
    })
    socket.on("message", count(attack, streams))
    socket.on("error", () => {})
    socket.on("close", (code) => {
      clearTimeout(timer)
      if (finished) return
      attack.closes[code] = (attack.closes[code] ?? 0) + 1
      finish()
    })
  })

/** The four attacks at once, for `attackMs`. */
export const attack = async (url: string, attackMs: number): Promise<Report> => {
  const until = performance.now() + attackMs
  const pingFrame = frameOf(1, pingsPerFrame, "Ping", undefined)
  const subscribeFrames = Array.from(
    { length: subscribesTotal / subscribesPerFrame },
    (_, i) => frameOf(1 + i * subscribesPerFrame, subscribesPerFrame, "FleetSubscribe", {})
  )
  const burstFrame = frameOf(1, burstPings, "Ping", undefined)
  const [batches, subscribes, patient, bursts] = await Promise.all([
    flood(url, until, () => ({ frame: pingFrame, requests: pingsPerFrame })),
    flood(url, until, (k) => k < subscribeFrames.length ? { frame: subscribeFrames[k], requests: subscribesPerFrame } : undefined),
    patientSubscriber(url, patientSubscribes),
    flood(url, until, () => ({ frame: burstFrame, requests: burstPings }))
  ])
  return { batches, subscribes, patient, bursts }
}

const isMain = import.meta.url === pathToFileURL(process.argv[1] ?? "").href
if (isMain) {
  const [url, attackMs] = process.argv.slice(2)
  process.stdout.write("ready\n")
  const lines = createInterface({ input: process.stdin })
  lines.once("line", async () => {
    const report = await attack(url, Number(attackMs))
    process.stdout.write(JSON.stringify(report) + "\n")
    lines.close()
    process.exit(0)
  })
}
