/**
 * The messages between `StopChannel` and its thread (stopChannelWorker.ts), and the order of
 * the counters they share.
 */
import type * as BrokerSecurity from "../../../links/mqtt/BrokerSecurity.js"
import type * as SharedHeaderIds from "../../../links/vda5050/SharedHeaderIds.js"
import type { StopReport } from "../../../protocol/FleetRpcs.js"

/** Indices of the thread's counters in the shared `Float64Array` (`StopChannel.makeStatus`). */
export const Stat = {
  requests: 0,
  published: 1,
  forwarded: 2,
  badRequests: 3,
  publishFailed: 4,
  connections: 5,
  refusedHost: 6,
  refusedOrigin: 7,
  refusedAddress: 8,
  throttled: 9,
  coalesced: 10,
  refusedAuth: 11
} as const

/** How many counters. */
export const statCount = 12

/** Why a stop failed, as the client gets it: an error's `_tag` and fields. */
export interface StopError {
  readonly _tag: string
}

/** The headers of an upgrade that may carry a credential. */
export interface CredentialHeaders {
  readonly authorization?: string | undefined
  readonly "sec-websocket-protocol"?: string | undefined
  readonly cookie?: string | undefined
}

/** A PEM certificate and its key, as text. */
export interface Pem {
  readonly cert: string
  readonly key: string
}

/** The thread's settings. */
export interface StopChannelWorkerData {
  readonly host: string
  readonly port: number
  readonly brokerUrl: string
  readonly brokerSecurity: BrokerSecurity.BrokerSecurity | undefined
  readonly clientId: string
  /** `interfaceName/majorVersion`. */
  readonly prefix: string
  /** The `SharedHeaderIds` table's buffer and capacity. */
  readonly table: SharedArrayBuffer
  readonly capacity: number
  /** The counters, {@link Stat}. */
  readonly stats: SharedArrayBuffer
  readonly priority: number | undefined
  readonly realtimePriority: number | undefined
  /** Lower case. */
  readonly allowedHosts: ReadonlyArray<string>
  readonly allowedOrigins: ReadonlyArray<string>
  readonly maxPerAddress: number
  readonly coalesceMs: number
  readonly tls: Pem | undefined
  /** Ask the main thread to admit each connection. */
  readonly auth: boolean
}

/** The thread's messages; `key`s pair a question with its answer. */
export interface StopChannelWorkerProtocol {
  readonly data: StopChannelWorkerData
  readonly in:
    | ({ readonly type: "slot" } & SharedHeaderIds.SlotAssigned)
    /** The answer to `stopped` (neither field) or `forward`. */
    | { readonly type: "result"; readonly key: number; readonly error?: StopError; readonly report?: StopReport }
    | ({ readonly type: "tls" } & Pem)
    | {
      readonly type: "admitted"
      readonly key: number
      readonly user?: string
      readonly refusal?: { readonly code: number; readonly reason: string }
    }
    | { readonly type: "close"; readonly key: number; readonly code: number; readonly reason: string }
  readonly out:
    | { readonly type: "ready"; readonly realtime: boolean | string; readonly port: number }
    | { readonly type: "failed"; readonly error: string }
    /** A failed broker connect, never a secret. */
    | ({ readonly type: "broker" } & BrokerSecurity.Refusal)
    | {
      readonly type: "stopped"
      readonly key: number
      readonly robots: ReadonlyArray<string>
      /** The `cancelOrder` actionIds published, by robot. */
      readonly published: Readonly<Record<string, ReadonlyArray<string>>>
      readonly who: string
      readonly all: boolean
    }
    /** A stop for the main thread: `robot`, or every robot but `skip`. */
    | {
      readonly type: "forward"
      readonly key: number
      readonly robot: string | undefined
      readonly skip: ReadonlyArray<string>
      readonly who: string
    }
    | { readonly type: "coalesced"; readonly robot: string | undefined; readonly count: number; readonly who: string }
    | { readonly type: "admit"; readonly key: number; readonly headers: CredentialHeaders; readonly address: string }
    | { readonly type: "opened"; readonly key: number }
    | { readonly type: "closed"; readonly key: number }
}
