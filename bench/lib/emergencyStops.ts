/**
 * Emergency stops of loaded AGVs for the ingest benchmarks, sent by raw JSON clients taking
 * turns between the gateway's `FleetEmergencyStop` RPC and the stop channel (`FLEET_STOP_PORT`),
 * and timed from the request to the `instantActions` arriving where the AGV would read it, to
 * the reply, and (the channel only: its reply says when its thread wrote the stop) to the
 * command leaving the link. Times are epoch ms (`performance.timeOrigin + performance.now()`),
 * so an arrival seen by another process on the machine compares with a request sent here.
 *
 * The stops go to the robots given in turn: the channel answers a stop of the same robot within
 * a second of its last with that stop's answer, without sending it again (and so without a new
 * `instantActions`), so a robot must not be stopped more often than that. A latched AGV that does
 * not confirm its stop gets it again every 500 ms from its link: such a resend arriving between a
 * request and its own stop is taken for it (the replayer's AGVs confirm; `agvLoad.ts`'s do not).
 */
import * as mqtt from "mqtt"
import { performance } from "node:perf_hooks"
import { WebSocket } from "ws"
import { summary } from "./percentiles.js"

/** The two ways a client stops a robot: an RPC on the gateway, or the stop channel's own socket. */
export type StopPath = "gateway" | "channel"

/** Where the stops' `instantActions` are seen arriving. */
export interface StopArrivals {
  /** The first arrival for `robot` after `since` (epoch ms), or `undefined` when none comes within `timeoutMs`. */
  readonly after: (robot: string, since: number, timeoutMs: number) => Promise<number | undefined>
  readonly close: () => Promise<void>
}

/** The samples of stops measured so far, per path. */
export type StopSamples = Record<StopPath, {
  readonly toAgv: Array<number>
  readonly reply: Array<number>
  readonly left: Array<number>
  timedOut: number
}>

/** Epoch ms to a fraction of a millisecond, on a clock every process of the machine shares. */
export const now = () => performance.timeOrigin + performance.now()

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const stopTimeoutMs = 2_000

/** No samples yet. */
export const stopSamples = (): StopSamples => ({
  gateway: { toAgv: [], reply: [], left: [], timedOut: 0 },
  channel: { toAgv: [], reply: [], left: [], timedOut: 0 }
})

/** Samples summed up per path: to the AGV, to the reply, to the link (the channel), and how many timed out. */
export const stopFigures = (samples: StopSamples) => {
  const report = (s: StopSamples[StopPath]) => ({
    toAgv: summary(s.toAgv),
    reply: summary(s.reply),
    ...(s.left.length === 0 ? {} : { leftLink: summary(s.left) }),
    timedOut: s.timedOut
  })
  return { gateway: report(samples.gateway), channel: report(samples.channel) }
}

/**
 * Arrivals at a plain mqtt.js subscriber of every AGV's `instantActions` under `prefix` (QoS 1,
 * as an AGV subscribes), by robot (`<manufacturer>/<serialNumber>`).
 */
export const subscriberArrivals = async (
  brokerUrl: string,
  prefix: string
): Promise<StopArrivals & { /** How many `instantActions` it received so far, stops or not. */ readonly received: () => number }> => {
  const client = await mqtt.connectAsync(brokerUrl, { clientId: "bench-estop-probe" })
  await client.subscribeAsync(`${prefix}/+/+/instantActions`, { qos: 1 })
  const seen = new Map<string, Array<number>>()
  let waiters: Array<{ readonly robot: string; readonly since: number; readonly resolve: (at: number) => void }> = []
  let received = 0
  client.on("message", (topic) => {
    const at = now()
    received++
    const robot = topic.slice(prefix.length + 1, -"/instantActions".length)
    const times = seen.get(robot) ?? []
    times.push(at)
    if (times.length > 64) times.shift()
    seen.set(robot, times)
    waiters = waiters.filter((waiter) => waiter.robot === robot && at > waiter.since ? (waiter.resolve(at), false) : true)
  })
  return {
    after: (robot, since, timeoutMs) =>
      new Promise((resolve) => {
        const found = seen.get(robot)?.find((at) => at > since)
        if (found !== undefined) return resolve(found)
        const waiter = { robot, since, resolve: (at: number) => (clearTimeout(timer), resolve(at)) }
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== waiter)
          resolve(undefined)
        }, timeoutMs)
        waiters.push(waiter)
      }),
    received: () => received,
    close: () => client.endAsync()
  }
}

const openSocket = async (url: string, protocol: string) => {
  const socket = new WebSocket(url, protocol, { perMessageDeflate: false })
  await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject))
  return socket
}

/**
 * Opens a gateway session (`wsUrl`, JSON) and a stop-channel session (`stopUrl`) for stopping
 * `robots` in turn, whose `instantActions` show up at `arrivals`.
 */
export const emergencyStops = async (wsUrl: string, stopUrl: string, robots: ReadonlyArray<string>, arrivals: StopArrivals) => {
  const sockets: Record<StopPath, WebSocket> = {
    gateway: await openSocket(wsUrl, "fleetvisor.v1.json"),
    channel: await openSocket(stopUrl, "fleetvisor.stop.v1")
  }
  const replies = new Map<string, (reply: { at: number; writtenAt?: number }) => void>()
  const onReply = (requestId: unknown, writtenAt?: number) => {
    const at = now()
    const resolve = replies.get(String(requestId))
    replies.delete(String(requestId))
    resolve?.({ at, ...(writtenAt === undefined ? {} : { writtenAt }) })
  }
  sockets.gateway.on("message", (data: Buffer) => {
    const frame = JSON.parse(data.toString())
    if (frame._tag === "Exit") onReply(frame.requestId)
  })
  sockets.channel.on("message", (data: Buffer) => {
    const reply = JSON.parse(data.toString())
    onReply(reply.id, reply.writtenAt)
  })
  let id = 0
  let next = 0
  const one = async (via: StopPath, robot: string) => {
    const requestId = String(++id)
    const sent = now()
    const replied = new Promise<{ at: number; writtenAt?: number } | undefined>((resolve) => {
      const timer = setTimeout(() => {
        replies.delete(requestId)
        resolve(undefined)
      }, stopTimeoutMs)
      replies.set(requestId, (reply) => (clearTimeout(timer), resolve(reply)))
    })
    sockets[via].send(JSON.stringify(
      via === "gateway"
        ? { _tag: "Request", id: requestId, tag: "FleetEmergencyStop", payload: { robot }, headers: [] }
        : { id: requestId, robot }
    ))
    const [reply, arrived] = await Promise.all([replied, arrivals.after(robot, sent, stopTimeoutMs)])
    if (reply === undefined || arrived === undefined) return undefined
    return { toAgvMs: arrived - sent, replyMs: reply.at - sent, leftMs: reply.writtenAt === undefined ? undefined : reply.writtenAt - sent }
  }
  return {
    /**
     * Stops a robot every `everyMs / 2` for `forMs`, taking turns between the two paths and going
     * through the robots (an odd number of them has each stopped by both), adding to `into`.
     */
    measure: async (forMs: number, everyMs: number, into: StopSamples = stopSamples()): Promise<StopSamples> => {
      const until = performance.now() + forMs
      for (let turn = 0; performance.now() < until; turn++) {
        const via: StopPath = turn % 2 === 0 ? "gateway" : "channel"
        const result = await one(via, robots[next++ % robots.length])
        if (result === undefined) into[via].timedOut++
        else {
          into[via].toAgv.push(result.toAgvMs)
          into[via].reply.push(result.replyMs)
          if (result.leftMs !== undefined) into[via].left.push(result.leftMs)
        }
        await sleep(everyMs / 2)
      }
      return into
    },
    close: async () => {
      sockets.gateway.close()
      sockets.channel.close()
      await arrivals.close()
    }
  }
}
