/**
 * The stop channel (`fleet/stop`): emergency stops that do not wait for the main thread. A
 * WebSocket endpoint on a port of its own, served by a worker thread with its own MQTT
 * connection (internal/stopChannelWorker.ts; its header has the protocol). A stop for a live AGV is
 * published there, with the next headerId of the AGV's shared counter (`SharedHeaderIds`), so
 * neither a long task nor a garbage collection of the main event loop delays it; the thread
 * may run under SCHED_FIFO, as the control loop's does.
 *
 * The actor owns the thread (started in `init`, terminated when it stops: a thread that fails
 * or exits fails the actor, and its supervisor restarts it), hands it each AGV slot as the
 * table gives one out, and runs what the thread hands back on the main thread: stops it cannot
 * make itself (arms, unknown robots, a broker connection that is down) and the record of the
 * stops it made (audit log and fleet events, through the hooks the fleet gives).
 *
 * With `tls` the port serves WSS; each certificate a reload installs is posted to the thread,
 * which puts it in place for new handshakes (open connections stay).
 *
 * With `access` (the node's identities, `AUTH` set) every connection is checked once, when it
 * opens: the thread hands the upgrade's credential headers to the main thread, which answers
 * who it is or refuses it (the thread then completes the handshake and closes with 4401 or
 * 4403, which a browser can read). An admitted connection never waits on the main thread again;
 * its stops are audited under its user, and it is closed with 4401 when its credential is
 * revoked or expires.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Actor from "../../actors/Actor.js"
import * as LogSampler from "../../actors/LogSampler.js"
import type * as BrokerSecurity from "../../links/mqtt/BrokerSecurity.js"
import type * as SharedHeaderIds from "../../links/vda5050/SharedHeaderIds.js"
import * as WorkerThread from "../../node/WorkerThread.js"
import type { StopReport } from "../../protocol/FleetRpcs.js"
import {
  type CredentialHeaders,
  type Pem,
  Stat,
  statCount,
  type StopChannelWorkerProtocol,
  type StopError as ThreadStopError
} from "./internal/stopChannelProtocol.js"

/** Why a stop failed, as the client gets it: an error's `_tag` and fields. */
export type StopError = ThreadStopError

/** What the fleet does for the channel on the main thread. */
export interface StopChannelHooks {
  /**
   * The stop channel stopped these AGVs, publishing for each the `cancelOrder` actionIds in
   * `published`: latch them durably, record them (`all`: as part of a stop of every robot, which
   * is recorded once when the main thread has stopped the rest), tell their links. The channel
   * answers its client once this completes.
   */
  readonly stopped: (
    robots: ReadonlyArray<string>,
    who: string,
    published: Readonly<Record<string, ReadonlyArray<string>>>,
    all: boolean
  ) => Effect.Effect<void>
  /** A stop the thread hands over: `robot`, or every robot but those in `skip`; resolves with what it reached. */
  readonly stop: (
    robot: string | undefined,
    skip: ReadonlyArray<string>,
    who: string
  ) => Effect.Effect<StopReport, StopError>
  /** `count` more stops of `robot` (every robot when undefined) came within the coalescing window and were answered by the first. */
  readonly coalesced: (robot: string | undefined, count: number, who: string) => void
}

/** A PEM certificate and its key. */
export interface StopChannelCertificate {
  readonly cert: Buffer | string
  readonly key: Buffer | string
}

/** The certificate the channel serves WSS with: the one in use, and each one a reload installs. */
export interface StopChannelTls {
  readonly current: () => StopChannelCertificate
  /** Calls `onChange` with each new certificate; returns how to stop. */
  readonly subscribe: (onChange: (certificate: StopChannelCertificate) => void) => () => void
}

/** The headers of an upgrade that may carry a credential (`Authorization`, `Sec-WebSocket-Protocol`, `Cookie`). */
export interface StopChannelCredentialHeaders extends CredentialHeaders {}

/** A connection the access check let in: the user its stops are audited under, and what `track` needs. */
export interface StopChannelAdmission {
  readonly user: string
  readonly ticket: unknown
}

/** Who may stop through the channel; the node's identities (the service wires them in). */
export interface StopChannelAccess {
  /** Checks an upgrade's credential; a refusal carries the close code (4401, 4403) and its reason. */
  readonly admit: (
    headers: StopChannelCredentialHeaders,
    address: string
  ) => Effect.Effect<StopChannelAdmission, { readonly code: number; readonly reason: string }>
  /** Watches an admitted connection while it is open: `close` ends it once its credential is revoked or expires. */
  readonly track: (
    admission: StopChannelAdmission,
    connection: { readonly close: (code: number, reason: string) => void; readonly alive: () => boolean }
  ) => void
}

/** Options of the channel. */
export interface StopChannelOptions {
  readonly host: string
  /** 0 picks a free port; {@link StopChannelStatus.port} says which. */
  readonly port: number
  readonly brokerUrl: string
  /** The broker's user name and secret files; the thread reads the files itself, at each (re)connect. */
  readonly brokerSecurity?: BrokerSecurity.BrokerSecurity | undefined
  /** `interfaceName/majorVersion`, e.g. `uagv/v2`. */
  readonly prefix: string
  readonly table: SharedHeaderIds.SharedHeaderIds
  readonly hooks: StopChannelHooks
  /** Where the channel says its port and counters. */
  readonly status: StopChannelStatus
  /** SCHED_FIFO priority of the thread (as `ControlLoop.makeWorker`'s); none: normal scheduling. */
  readonly realtimePriority?: number | undefined
  /** Host names besides loopback names and `host` that clients may reach the port by (`ALLOWED_HOSTS`); others get 421. */
  readonly allowedHosts?: ReadonlyArray<string> | undefined
  /** Origins besides the page's own host whose pages may connect (`ALLOWED_ORIGINS`; `*` any); others get 403. */
  readonly allowedOrigins?: ReadonlyArray<string> | undefined
  /** Connections of one address at once; default 16: a few dashboards per operator station. */
  readonly maxPerAddress?: number | undefined
  /** Stops of one target within this are answered by the first; default 1,000 ms. */
  readonly coalesceMs?: number | undefined
  /** Serve WSS with this certificate (the node's `TLS_CERT_FILE`); absent: plain WS. */
  readonly tls?: StopChannelTls | undefined
  /** Check every connection's credential when it opens (`AUTH` set); absent: every client may stop. */
  readonly access?: StopChannelAccess | undefined
}

/** The channel's counters since the node started. */
export interface StopChannelStats {
  readonly requests: number
  /** AGV stops published by the channel's own thread. */
  readonly published: number
  /** Stops handed to the main thread. */
  readonly forwarded: number
  /** Requests refused as malformed (`BadRequest`). */
  readonly badRequests: number
  /** Publishes that failed (then handed to the main thread). */
  readonly publishFailed: number
  readonly connections: number
  /** Upgrades refused: a `Host` not allowed (421), a foreign `Origin` (403), an address at its limit (429). */
  readonly refusedHost: number
  readonly refusedOrigin: number
  readonly refusedAddress: number
  /** Connections closed (1008) for sending stops faster than 20 a second. */
  readonly throttled: number
  /** Stops answered by an identical one of the coalescing window. */
  readonly coalesced: number
  /** Connections closed at once (4401/4403) because their credential was missing, wrong, or its role too low. */
  readonly refusedAuth: number
}

/** The channel as the rest of the node sees it: its port once listening, and its counters. */
export interface StopChannelStatus {
  readonly port: () => number | undefined
  readonly stats: () => StopChannelStats
  /** @internal the worker's counters and the bound port. */
  readonly shared: { readonly counters: Float64Array; port: number | undefined }
}

/** A status to give the channel's options; it outlives restarts of the actor. */
export const makeStatus = (): StopChannelStatus => {
  const counters = new Float64Array(new SharedArrayBuffer(statCount * Float64Array.BYTES_PER_ELEMENT))
  const shared = { counters, port: undefined as number | undefined }
  return {
    port: () => shared.port,
    stats: () => ({
      requests: counters[Stat.requests],
      published: counters[Stat.published],
      forwarded: counters[Stat.forwarded],
      badRequests: counters[Stat.badRequests],
      publishFailed: counters[Stat.publishFailed],
      connections: counters[Stat.connections],
      refusedHost: counters[Stat.refusedHost],
      refusedOrigin: counters[Stat.refusedOrigin],
      refusedAddress: counters[Stat.refusedAddress],
      throttled: counters[Stat.throttled],
      coalesced: counters[Stat.coalesced],
      refusedAuth: counters[Stat.refusedAuth]
    }),
    shared
  }
}

/** The channel's thread failed; the actor fails with it. */
class StopChannelFailed extends Error {
  readonly _tag = "StopChannelFailed"
}

/** A certificate as the thread takes it (strings: no copy of a Buffer's whole pool). */
const pemOf = (certificate: StopChannelCertificate): Pem => ({
  cert: certificate.cert.toString(),
  key: certificate.key.toString()
})

/** The channel's thread. */
const stopChannelWorker = WorkerThread.entry(import.meta.url, "./internal/stopChannelWorker")

type WorkerEvent = StopChannelWorkerProtocol["out"]

/** The `fleet/stop` actor; see the module documentation. Its only mail is its thread's failure. */
export const make = (
  options: StopChannelOptions
): Actor.Behaviour<StopChannelFailed, WorkerThread.Thread<StopChannelWorkerProtocol["in"]>> => {
  // The thread's broker failures, one line per reason per window, across restarts of the actor.
  const sampler = LogSampler.make()
  return Actor.make<StopChannelFailed, WorkerThread.Thread<StopChannelWorkerProtocol["in"]>>({
    name: "stop_channel",
    init: (ctx) =>
      Effect.gen(function*() {
        const ready = yield* Deferred.make<{ realtime: boolean | string; port: number }, StopChannelFailed>()
        const fail = (error: string) => {
          Deferred.unsafeDone(ready, Effect.fail(new StopChannelFailed(error)))
          ctx.self.unsafeTellUrgent(new StopChannelFailed(error))
        }
        // Connections let in and not yet open (by their key), and the open ones the access check watches.
        const admitted = new Map<number, StopChannelAdmission>()
        const open = new Set<number>()
        const admit = (event: Extract<WorkerEvent, { type: "admit" }>) =>
          options.access!.admit(event.headers, event.address).pipe(
            Effect.match({
              onFailure: (refusal) => worker.post({ type: "admitted", key: event.key, refusal }),
              onSuccess: (admission) => {
                admitted.set(event.key, admission)
                // An upgrade that never opens (the client went away meanwhile) is forgotten.
                setTimeout(() => admitted.delete(event.key), 30_000).unref()
                worker.post({ type: "admitted", key: event.key, user: admission.user })
              }
            })
          )
        const opened = (key: number) => {
          const admission = admitted.get(key)
          admitted.delete(key)
          if (admission === undefined || options.access === undefined) return
          open.add(key)
          options.access.track(admission, {
            close: (code, reason) => worker.post({ type: "close", key, code, reason }),
            alive: () => open.has(key)
          })
        }
        const worker = yield* WorkerThread.run<StopChannelWorkerProtocol>(
          stopChannelWorker,
          {
            host: options.host,
            port: options.port,
            brokerUrl: options.brokerUrl,
            brokerSecurity: options.brokerSecurity,
            clientId: `fleetvisor-stop-${process.pid}-${Date.now().toString(36)}`,
            prefix: options.prefix,
            table: options.table.buffer,
            capacity: options.table.capacity,
            stats: options.status.shared.counters.buffer as SharedArrayBuffer,
            priority: -10,
            realtimePriority: options.realtimePriority,
            allowedHosts: (options.allowedHosts ?? []).map((name) => name.toLowerCase()),
            allowedOrigins: options.allowedOrigins ?? [],
            maxPerAddress: options.maxPerAddress ?? 16,
            coalesceMs: options.coalesceMs ?? 1_000,
            tls: options.tls === undefined ? undefined : pemOf(options.tls.current()),
            auth: options.access !== undefined
          },
          {
            onMessage: (event) => {
              switch (event.type) {
                case "ready":
                  return Deferred.unsafeDone(ready, Effect.succeed(event))
                case "failed":
                  return fail(event.error)
                case "broker":
                  return void Effect.runFork(sampler.warning(
                    `broker:${event.reason}`,
                    `stop channel broker connection failures (${event.reason})`,
                    `stop channel's MQTT connection: ${LogSampler.excerpt(event.text)}`
                  ))
                case "stopped":
                  return void Effect.runFork(
                    Effect.ensuring(
                      options.hooks.stopped(event.robots, event.who, event.published, event.all),
                      Effect.sync(() => worker.post({ type: "result", key: event.key }))
                    )
                  )
                case "coalesced":
                  return options.hooks.coalesced(event.robot, event.count, event.who)
                case "admit":
                  return void Effect.runFork(admit(event))
                case "opened":
                  return opened(event.key)
                case "closed":
                  return void open.delete(event.key)
                case "forward":
                  return void Effect.runFork(
                    options.hooks.stop(event.robot, event.skip, event.who).pipe(
                      Effect.match({
                        onFailure: (error) =>
                          worker.post({ type: "result", key: event.key, error: { ...error, _tag: error._tag } }),
                        onSuccess: (report) => worker.post({ type: "result", key: event.key, report })
                      })
                    )
                  )
              }
            },
            onFailure: fail
          }
        ).pipe(Effect.orDieWith((error) => new Error(`stop channel: ${error.message}`)))
        if (options.tls !== undefined) {
          const unsubscribe = options.tls.subscribe((certificate) =>
            worker.post({ type: "tls", ...pemOf(certificate) })
          )
          yield* Effect.addFinalizer(() => Effect.sync(unsubscribe))
        }
        const handOver = (slot: SharedHeaderIds.SlotAssigned) => worker.post({ type: "slot", ...slot })
        for (const slot of options.table.slots()) handOver(slot)
        options.table.onSlot = handOver
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            options.table.onSlot = undefined
            options.status.shared.port = undefined
          })
        )
        const { port, realtime } = yield* Deferred.await(ready).pipe(
          Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new StopChannelFailed("did not start in time") }),
          Effect.orDieWith((error) => new Error(`stop channel: ${error.message}`))
        )
        options.status.shared.port = port
        if (typeof realtime === "string") {
          yield* Effect.logWarning(
            `stop channel thread runs at normal priority: SCHED_FIFO ${options.realtimePriority} was refused (${realtime})`
          )
        }
        yield* Effect.logInfo(`stop channel listening on ${options.host}:${port}`)
        return worker
      }),
    receive: (_, failure) => Effect.dieMessage(`stop channel: ${failure.message}`)
  })
}
