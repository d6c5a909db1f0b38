/**
 * The dashboard's second copy of each emergency stop, to another node of the cluster (issue #16:
 * "the dashboard sends a stop to two nodes"). `/fleet/nodes` names this node and the other live
 * nodes that announce the URL browsers reach them at (`CLUSTER_PUBLIC_URL`); the page keeps a
 * connection to one of them open (read again every 5 s; it moves to another when that one leaves),
 * so that a stop does not wait for a handshake, and sends it the same `FleetEmergencyStop`, marked
 * `copyOf` this node. Stops are idempotent (the first latch is kept), so both arriving is
 * harmless; either alone stops the robot, also when this node or Redis is down.
 *
 * The copy carries the page's credentials as any connection to that URL does: the login cookie
 * goes along when the node's public URL is under the page's own host (a path per node on the
 * proxy); another host needs the page's origin in that node's `ALLOWED_ORIGINS`. A single node,
 * or a cluster whose nodes announce no public URL, has no peer: no copy is sent.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { FleetvisorClient } from "../../src/client/FleetvisorClient.js"
import type { StopReport } from "../../src/protocol/FleetRpcs.js"
import { clientLayer } from "../shared/client.js"

/** What `/fleet/nodes` answers. */
interface Nodes {
  readonly node: string | null
  readonly peers: ReadonlyArray<{ readonly id: string; readonly url: string }>
}

/** What became of a stop's copy: none sent (no peer), or sent to `node` and answered (or not). */
export type PeerAnswer =
  | { readonly sent: false }
  | { readonly sent: true; readonly node: string; readonly ok: true; readonly report: StopReport | undefined }
  | { readonly sent: true; readonly node: string; readonly ok: false; readonly error: string }

/** Sends copies of stops to another node. */
export interface PeerStop {
  readonly stop: (robot: string | undefined) => Promise<PeerAnswer>
  /** The node copies go to now. */
  readonly peer: () => string | undefined
}

const refreshEveryMs = 5_000
const answerTimeout = "2 seconds"

/** The `/ws` address under a node's public URL. */
export const wsUrlOf = (publicUrl: string): string => `${publicUrl.replace(/^http/, "ws").replace(/\/+$/, "")}/ws`

interface Peer {
  readonly id: string
  readonly url: string
  readonly runtime: ManagedRuntime.ManagedRuntime<FleetvisorClient, never>
}

/** Follows `/fleet/nodes` and keeps a connection to one peer warm. */
export const connect = (): PeerStop => {
  let self: string | null = null
  let current: Peer | undefined

  const use = (next: Nodes["peers"][number] | undefined) => {
    if (current !== undefined && next !== undefined && current.id === next.id && current.url === next.url) return
    void current?.runtime.dispose()
    current = undefined
    if (next === undefined) return
    const runtime = ManagedRuntime.make(clientLayer(wsUrlOf(next.url)))
    current = { id: next.id, url: next.url, runtime }
    // Opened now, so that a stop finds the connection ready.
    runtime.runFork(Effect.flatMap(FleetvisorClient, (client) => client.ready))
  }

  const refresh = () =>
    fetch("/fleet/nodes")
      .then((response) => (response.ok ? response.json() as Promise<Nodes> : undefined))
      .then((nodes) => {
        if (nodes === undefined) return
        self = nodes.node
        const peers = [...nodes.peers].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        use(peers.find((peer) => peer.id === current?.id) ?? peers[0])
      })
      .catch(() => {})
  void refresh()
  setInterval(refresh, refreshEveryMs)

  return {
    peer: () => current?.id,
    stop: async (robot) => {
      const peer = current
      if (peer === undefined) return { sent: false }
      const exit = await peer.runtime.runPromiseExit(
        Effect.flatMap(FleetvisorClient, (client) =>
          client.rpc.FleetEmergencyStop({
            ...(robot === undefined ? {} : { robot }),
            ...(self === null ? {} : { copyOf: self })
          })).pipe(Effect.timeoutFail({ duration: answerTimeout, onTimeout: () => ({ _tag: "NoAnswer" }) }))
      )
      return Exit.isSuccess(exit)
        ? { sent: true, node: peer.id, ok: true, report: exit.value }
        : {
          sent: true,
          node: peer.id,
          ok: false,
          error: Exit.isFailure(exit) && exit.cause._tag === "Fail" ? String((exit.cause.error as { _tag?: string })._tag) : "defect"
        }
    }
  }
}
