/**
 * The dashboard's way to the stop channel (`FLEET_STOP_PORT`): where `/fleet/stop-channel`
 * says it listens, on the page's host, kept open and reopened after a second when it closes.
 * A stop goes there when the socket is open and answers within a second; otherwise the caller
 * sends it as the `FleetEmergencyStop` RPC. A page served over https opens `wss://` (the service
 * serves the channel over TLS when it has `TLS_CERT_FILE`, or a proxy terminates TLS on that port).
 *
 * A stop's reply says, like the RPC's answer, which robots the stop reached over a live link
 * (`reached`) and which it could only latch (`latchedOnly`); a channel of an older service
 * sends neither, and the answer then has no `report`.
 *
 * @since 0.1.0
 */

/** What a stop did: the robots it reached over a live link, and those it could only latch. */
export interface StopReport {
  readonly reached: ReadonlyArray<string>
  readonly latchedOnly: ReadonlyArray<string>
}

/** The channel's answer: done (with its report when the service sends one), or refused with a typed error. */
export type StopAnswer =
  | { readonly ok: true; readonly report?: StopReport | undefined }
  | { readonly ok: false; readonly error: { readonly _tag: string } }

/** A reply frame as the channel sends it (see `src/apps/fleet/StopChannelWorker.mjs`). */
interface Reply {
  readonly id: number
  readonly ok: boolean
  readonly error?: { readonly _tag: string }
  readonly reached?: unknown
  readonly latchedOnly?: unknown
}

const isIdList = (value: unknown): value is ReadonlyArray<string> =>
  Array.isArray(value) && value.every((item) => typeof item === "string")

/** The answer of a reply frame: its report only when both lists are there and well formed. */
const answerOf = (reply: Reply): StopAnswer => {
  if (!reply.ok) return { ok: false, error: reply.error ?? { _tag: "StopFailed" } }
  const { latchedOnly, reached } = reply
  return isIdList(reached) && isIdList(latchedOnly) ? { ok: true, report: { reached, latchedOnly } } : { ok: true }
}

/** Stops over the channel; `undefined` when it cannot be used now. */
export interface StopChannel {
  readonly stop: (robot: string | undefined) => Promise<StopAnswer | undefined>
}

const answerTimeoutMs = 1_000
const reopenAfterMs = 1_000

/** Finds the channel and keeps a socket to it; a page without one gets a channel that always says `undefined`. */
export const connect = (): StopChannel => {
  let socket: WebSocket | undefined
  let nextId = 0
  const waiting = new Map<number, (answer: StopAnswer) => void>()

  const open = (url: string) => {
    const ws = new WebSocket(url, "fleetvisor.stop.v1")
    ws.onmessage = (event) => {
      let reply: Reply
      try {
        reply = JSON.parse(String(event.data)) as Reply
      } catch {
        return
      }
      waiting.get(reply.id)?.(answerOf(reply))
      waiting.delete(reply.id)
    }
    ws.onopen = () => void (socket = ws)
    ws.onclose = () => {
      if (socket === ws) socket = undefined
      setTimeout(() => open(url), reopenAfterMs)
    }
  }

  const scheme = location.protocol === "https:" ? "wss" : "ws"
  fetch("/fleet/stop-channel")
    .then((response) => (response.ok ? response.json() as Promise<{ readonly port: number }> : undefined))
    .then((found) => found !== undefined && open(`${scheme}://${location.hostname}:${found.port}/`))
    .catch(() => {})

  return {
    stop: (robot) => {
      const ws = socket
      if (ws === undefined || ws.readyState !== WebSocket.OPEN) return Promise.resolve(undefined)
      const id = nextId++
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiting.delete(id)
          resolve(undefined)
        }, answerTimeoutMs)
        waiting.set(id, (answer) => {
          clearTimeout(timer)
          resolve(answer)
        })
        ws.send(JSON.stringify(robot === undefined ? { id } : { id, robot }))
      })
    }
  }
}
