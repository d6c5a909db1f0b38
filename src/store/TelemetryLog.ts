/**
 * The robot telemetry log, written off the event loop.
 *
 * `append` costs the event loop a few array writes: rows go into a ring of
 * columns in shared memory (internal/telemetryBatch.ts), and a short message
 * hands each batch to a worker thread when it is full or 10 ms after its first
 * row. No row is copied or transferred, and a batch allocates only that
 * message. The worker owns its own connection to the same file and commits
 * batches in short transactions through the write gate, so the canvas and the
 * audit log, which write on the event loop, are never starved and never
 * blocked on a lock.
 *
 * The queue is bounded: rows appended but not yet committed count against
 * `maxQueuedRows`, and beyond it new rows are dropped and counted. Telemetry is
 * a stream of samples; losing some under overload is the price of never
 * blocking the robots' control loop. `flush` waits for everything appended so
 * far; closing the scope flushes (up to `closeTimeout`) and stops the worker.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { Pending } from "../node/Pending.js"
import * as WorkerThread from "../node/WorkerThread.js"
import { Database } from "./Database.js"
import { TelemetryRing } from "./internal/telemetryBatch.js"
import type { TelemetryWorkerProtocol } from "./internal/telemetryWorker.js"
import { StoreHealth } from "./StoreHealth.js"
import { fromSqliteError, StoreUnavailable, unavailableCodes } from "./StoreUnavailable.js"

/** One telemetry sample of one robot. */
export interface TelemetryRow {
  readonly robot: string
  /** When it was sampled, epoch ms. */
  readonly at: number
  /** What it is: `"pose"`, `"joints"`, `"battery"`, … */
  readonly kind: string
  /** The pose on the map, kept in columns because every mobile robot sends it. */
  readonly x?: number | undefined
  readonly y?: number | undefined
  readonly theta?: number | undefined
  /** Anything else (joint angles, battery, errors): any JSON value. */
  readonly payload?: unknown
}

/** Tuning of the log; every field has a default below. */
export interface TelemetryOptions {
  /** Rows appended but not committed beyond which new rows are dropped; also the ring's size (40 bytes a row, shared with the worker). */
  readonly maxQueuedRows?: number | undefined
  /** Rows per batch posted to the worker. */
  readonly batchRows?: number | undefined
  /** Rows per worker transaction at most: how long the worker holds the write lock. */
  readonly maxTransactionRows?: number | undefined
  /** Rows older than this are deleted. */
  readonly retention?: Duration.DurationInput | undefined
  /** How often the worker deletes them. */
  readonly retentionInterval?: Duration.DurationInput | undefined
  /** How long closing waits for the last rows to commit. */
  readonly closeTimeout?: Duration.DurationInput | undefined
}

/**
 * Defaults, and why:
 * - `maxQueuedRows` 100,000: a quarter second of the bench's flood; a worker
 *   that far behind is not catching up. The ring holds that many rows: 4 MB of
 *   shared memory, plus the queued payloads' JSON.
 * - `batchRows` 1,000: one message (about 1 µs of the event loop) per
 *   thousand rows; the worker commits one or two per transaction.
 * - `maxTransactionRows` 2,000: a transaction of about 5 ms, the longest an
 *   event-loop writer waits at the gate.
 * - `retention` 72 hours: a weekend's incident is still there on Monday.
 * - `retentionInterval` 1 minute: the table overshoots retention by a minute.
 * - `closeTimeout` 5 seconds: systemd's stop timeout is longer; a disk that
 *   takes more than that will not take the rows at all.
 */
export const defaults = {
  maxQueuedRows: 100_000,
  batchRows: 1_000,
  maxTransactionRows: 2_000,
  retention: "72 hours",
  retentionInterval: "1 minute",
  closeTimeout: "5 seconds"
} as const

/**
 * How long appended rows wait on the event loop for more before they are
 * posted (unless the batch fills first): 10 ms turns a hundred robots at
 * 100 Hz into ~100 messages a second instead of one per sample, and is
 * nothing next to a database's latency.
 */
const postDelayMillis = 10

/** Counters since the log started. `appended = committed + dropped + queued`. */
export interface TelemetryStats {
  readonly appended: number
  readonly committed: number
  /** Refused by the bounded queue, or lost with the worker. */
  readonly dropped: number
  /** Appended, not yet committed. */
  readonly queued: number
  /** Rows made and committed by samplers on the worker ({@link TelemetryLog} `sample`). */
  readonly sampled: number
  /** Samplers' turns whose rows SQLite refused or could not take (taken again at the next turn). */
  readonly sampleFailures: number
}

/**
 * A module the log's worker loads to make rows itself, `hz` times a second, from memory the
 * event loop shares with it (a fleet's sample columns, say): rows that never cross the event
 * loop. The module exports `sampler(config): TelemetrySampler`; `config` is structured-cloned,
 * so a SharedArrayBuffer in it is shared.
 */
export interface SamplerModule {
  readonly module: WorkerThread.Entry
  readonly config: unknown
  readonly hz: number
}

/** What a sampler module's `sampler(config)` makes, on the worker thread. */
export interface TelemetrySampler {
  /** Takes what the event loop told it (`tell` of {@link SamplerHandle}), in order. */
  readonly onInput: (input: unknown) => void
  /** Calls `row` with each row to record now: robot, time (epoch ms), kind, x, y, theta (NaN: none) and a JSON payload. */
  readonly sample: (
    row: (robot: string, at: number, kind: string, x: number, y: number, theta: number, payload: string | undefined) => void
  ) => void
}

/** The event loop's side of a running sampler. */
export interface SamplerHandle {
  /** Posts `input` to the sampler's `onInput`. */
  readonly tell: (input: unknown) => void
}

/** The telemetry log. */
export class TelemetryLog extends Context.Tag("fleetvisor/store/TelemetryLog")<TelemetryLog, {
  /** Queues `row` for the worker, or drops it if the queue is full. Never waits. */
  readonly append: (row: TelemetryRow) => Effect.Effect<void>
  /** `append` now, from synchronous code on a hot path (a PubSub sink's `deliver`). */
  readonly unsafeAppend: (row: TelemetryRow) => void
  /** `append` for each row. */
  readonly appendAll: (rows: Iterable<TelemetryRow>) => Effect.Effect<void>
  /** Completes when every row appended before it is committed. */
  readonly flush: Effect.Effect<void, StoreUnavailable>
  /** Deletes the rows past retention now; returns how many. */
  readonly prune: Effect.Effect<number, StoreUnavailable>
  readonly stats: Effect.Effect<TelemetryStats>
  /** Runs `sampler` on the worker until the scope closes. */
  readonly sample: (sampler: SamplerModule) => Effect.Effect<SamplerHandle, never, Scope.Scope>
}>() {}

/** The worker's messages, and its end (an error, or an exit, with the reason). */
type WorkerEvent = TelemetryWorkerProtocol["out"] | { readonly type: "gone"; readonly reason: string }

/** The writer's thread. */
const telemetryWorker = WorkerThread.entry(import.meta.url, "./internal/telemetryWorker")

/** How the worker reports a failure: classified, or as an I/O error if SQLite gave no known code. */
const unavailable = (error: { readonly code: string; readonly message: string }) =>
  Option.getOrElse(fromSqliteError(error), () => new StoreUnavailable({ reason: "io-error", code: error.code, detail: error.message }))

/** The telemetry log of the `Database`: starts its worker, and stops it when the scope closes. */
export const layer = (
  options: TelemetryOptions = {}
): Layer.Layer<TelemetryLog, StoreUnavailable, Database | StoreHealth | SqlClient.SqlClient> =>
  Layer.scoped(
    TelemetryLog,
    Effect.gen(function*() {
      const database = yield* Database
      const health = yield* StoreHealth
      const sql = yield* SqlClient.SqlClient
      const config = { ...defaults, ...options }

      const events = yield* Queue.unbounded<WorkerEvent>()
      const ring = new TelemetryRing(config.maxQueuedRows)
      const worker = yield* WorkerThread.run<TelemetryWorkerProtocol>(
        telemetryWorker,
        {
          filename: database.filename,
          gate: database.gate.buffer,
          ring: ring.columns,
          busyTimeoutMillis: Duration.toMillis(database.busyTimeout),
          maxTransactionRows: config.maxTransactionRows,
          retentionMillis: Duration.toMillis(config.retention),
          retentionIntervalMillis: Duration.toMillis(config.retentionInterval),
          pruneChunkRows: 5_000,
          retryMillis: 1_000,
          checkpointIntervalMillis: 1_000,
          unavailableCodes
        },
        {
          onMessage: (event) => Queue.unsafeOffer(events, event),
          onFailure: (reason) => Queue.unsafeOffer(events, { type: "gone", reason })
        }
      ).pipe(Effect.orDie)
      const first = yield* Queue.take(events)
      if (first.type !== "ready") {
        return yield* first.type === "failed"
          ? unavailable(first)
          : new StoreUnavailable({
            reason: "worker-exited",
            code: first.type === "gone" ? first.reason : first.type,
            detail: "the telemetry worker did not start"
          })
      }

      // The worker checkpoints the WAL; a checkpoint on the event loop would stall it for an fsync.
      yield* Effect.acquireRelease(
        Effect.orDie(sql.unsafe("PRAGMA wal_autocheckpoint = 0")),
        () => Effect.ignore(sql.unsafe("PRAGMA wal_autocheckpoint = 1000"))
      )

      const counts = { appended: 0, committed: 0, dropped: 0, queued: 0, sampled: 0, sampleFailures: 0 }
      let samplers = 0
      let scheduledPost: NodeJS.Timeout | undefined
      let postedSeq = 0
      let committedSeq = 0
      let closing = false
      let stopped: StoreUnavailable | undefined
      const flushes: Array<{ readonly seq: number; readonly done: Deferred.Deferred<void, StoreUnavailable> }> = []
      const prunes = new Pending<Deferred.Deferred<number, StoreUnavailable>>()
      const exited = yield* Deferred.make<void>()

      const post = () => {
        clearTimeout(scheduledPost)
        scheduledPost = undefined
        if (ring.length > 0) worker.post(ring.take(++postedSeq))
      }

      const add = (row: TelemetryRow) => {
        if (stopped !== undefined || counts.queued >= config.maxQueuedRows) {
          counts.appended++
          counts.dropped++
          return
        }
        // Throws, counting nothing, if the payload is not JSON.
        ring.add(row)
        counts.appended++
        counts.queued++
        if (ring.length >= config.batchRows) post()
        else scheduledPost ??= setTimeout(post, postDelayMillis)
      }

      const settle = (seq: number, rows: number) => {
        committedSeq = seq
        counts.queued -= rows
        const done = flushes.filter((flush) => flush.seq <= seq)
        flushes.splice(0, done.length)
        return Effect.forEach(done, (flush) => Deferred.succeed(flush.done, undefined), { discard: true })
      }

      /** The worker is gone: what it had not committed is lost, and every waiter hears why. */
      const stop = (error: StoreUnavailable) =>
        Effect.suspend(() => {
          stopped = error
          counts.dropped += counts.queued
          counts.queued = 0
          const waiting = [...flushes.splice(0).map((flush) => Deferred.fail(flush.done, error)), ...prunes.takeAll().map((done) => Deferred.fail(done, error))]
          return Effect.all(waiting, { discard: true })
        }).pipe(Effect.zipRight(database.gate.releaseWorker))

      const handle = (event: WorkerEvent): Effect.Effect<void> => {
        switch (event.type) {
          case "committed":
            counts.committed += event.rows
            return Effect.zipRight(settle(event.seq, event.rows), health.recordSuccess)
          case "rejected":
            counts.dropped += event.rows
            return Effect.zipRight(
              settle(event.seq, event.rows),
              Effect.logError(`telemetry rows rejected by SQLite: ${event.code}: ${event.message}`)
            )
          case "failed":
            return health.recordFailure(unavailable(event))
          case "sampled":
            counts.sampled += event.committed
            counts.sampleFailures += event.dropped
            return event.committed > 0 ? health.recordSuccess : Effect.void
          case "samplerFailed":
            return Effect.logError(`telemetry sampler ${event.id} did not start: ${event.error}`)
          case "pruned":
          case "pruneFailed": {
            const done = prunes.take(event.id)
            if (done === undefined) return Effect.void
            return event.type === "pruned"
              ? Deferred.succeed(done, event.deleted)
              : Option.match(fromSqliteError(event), {
                onNone: () => Deferred.die(done, new Error(`telemetry retention failed: ${event.code}: ${event.message}`)),
                onSome: (error) => Deferred.fail(done, error)
              })
          }
          case "gone": {
            const error = new StoreUnavailable({
              reason: "worker-exited",
              code: event.reason,
              detail: "the telemetry worker stopped"
            })
            return Effect.zipRight(
              closing
                ? stop(error)
                : Effect.zipRight(
                  Effect.logError(`telemetry worker stopped: ${event.reason}`),
                  Effect.zipRight(stop(error), health.recordFailure(error))
                ),
              Deferred.succeed(exited, undefined)
            )
          }
          case "ready":
            return Effect.void
        }
      }

      yield* Queue.take(events).pipe(Effect.flatMap(handle), Effect.forever, Effect.forkScoped)

      const flush = Effect.gen(function*() {
        if (stopped !== undefined) return yield* stopped
        post()
        if (committedSeq >= postedSeq) return
        const done = yield* Deferred.make<void, StoreUnavailable>()
        flushes.push({ seq: postedSeq, done })
        yield* Deferred.await(done)
      })

      const prune = Effect.gen(function*() {
        if (stopped !== undefined) return yield* stopped
        const done = yield* Deferred.make<number, StoreUnavailable>()
        worker.post({ type: "prune", id: prunes.add(done) })
        return yield* Deferred.await(done)
      })

      // Runs before the event fiber is interrupted: flush, then let the worker close its connection.
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          yield* flush.pipe(Effect.timeout(config.closeTimeout), Effect.ignore)
          if (stopped !== undefined) return
          closing = true
          worker.post({ type: "close" })
          yield* Deferred.await(exited).pipe(Effect.timeout("1 second"), Effect.ignore)
        })
      )

      return {
        append: (row) => Effect.sync(() => add(row)),
        unsafeAppend: add,
        appendAll: (rows) =>
          Effect.sync(() => {
            for (const row of rows) add(row)
          }),
        flush,
        prune,
        stats: Effect.sync(() => ({ ...counts })),
        sample: (sampler) =>
          Effect.gen(function*() {
            const module = yield* WorkerThread.bundle(sampler.module).pipe(Effect.orDie)
            const id = ++samplers
            yield* Effect.acquireRelease(
              Effect.sync(() => worker.post({ type: "sampler", id, module: module.href, config: sampler.config, hz: sampler.hz })),
              () => Effect.sync(() => stopped === undefined && !closing && worker.post({ type: "samplerStop", id }))
            )
            return { tell: (input: unknown) => void (stopped === undefined && worker.post({ type: "samplerInput", id, input })) }
          })
      }
    })
  )
