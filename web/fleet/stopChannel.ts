/**
 * The dashboard's way to the stop channel (`FLEET_STOP_PORT`): where `/fleet/stop-channel`
 * says it listens, on the page's host, kept open and reopened after a second when it closes.
 * A stop goes there when the socket is open and answers within a second; otherwise the caller
 * sends it as the `FleetEmergencyStop` RPC. Pages served over https use the RPC only (the
 * channel has no TLS of its own).
 *
 * @since 0.1.0
 */

/** The channel's answer: done, or refused with a typed error. */
export type StopAnswer = { readonly ok: true } | { readonly ok: false; readonly error: { readonly _tag: string } }

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
      const answer = JSON.parse(String(event.data)) as StopAnswer & { readonly id: number }
      waiting.get(answer.id)?.(answer)
      waiting.delete(answer.id)
    }
    ws.onopen = () => void (socket = ws)
    ws.onclose = () => {
      if (socket === ws) socket = undefined
      setTimeout(() => open(url), reopenAfterMs)
    }
  }

  if (location.protocol === "http:") {
    fetch("/fleet/stop-channel")
      .then((response) => (response.ok ? response.json() as Promise<{ readonly port: number }> : undefined))
      .then((found) => found !== undefined && open(`ws://${location.hostname}:${found.port}/`))
      .catch(() => {})
  }

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
