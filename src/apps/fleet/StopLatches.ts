/**
 * The fleet's emergency-stop latches: the table the robot links consult ({@link Latches}),
 * owned by the fleet service above the `fleet` subtree, so that no restart of a link, of
 * `fleet/state` or of `fleet` itself forgets a stop, and written through to SQLite
 * (`StopLatchStore`), so that `kill -9` of the process does not either.
 *
 * - Setting and clearing a latch is synchronous and in memory: the stop goes out first and
 *   never waits for storage. {@link StopLatches.persist} then writes the robots' latches as
 *   they are at that moment, and the fleet answers the stop (or the Reset) once it returns.
 *   A kill between the stop leaving and the row being committed is the one gap.
 * - An AGV's latch is also a flag in the shared headerId table when the stop channel runs:
 *   its thread sets the flag as it publishes a stop, so the main thread refuses that AGV's
 *   next order even before it hears of the stop.
 * - At start the table is read back from the store; robots latched then stay latched until an
 *   operator resets them, whatever the links find when they (re)connect.
 * - With a {@link Mirror} (several nodes), every latch set or cleared here is told to it, and
 *   latches set or cleared on other nodes come back through {@link StopLatches.remote}: the
 *   latch is cluster-wide, and each node keeps its own copy on disk.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type { RobotKind } from "../../links/LinkEvent.js"
import type { Latch, Latches } from "../../links/StopLatch.js"
import type * as SharedHeaderIds from "../../links/vda5050/SharedHeaderIds.js"
import type { LatchRow, StopLatchStore } from "../../store/StopLatchStore.js"
import type { StoreUnavailable } from "../../store/StoreUnavailable.js"
import * as LogSampler from "../../actors/LogSampler.js"

/** The fleet's latch table; see the module documentation. */
export interface StopLatches extends Latches {
  /** Every latch now. */
  readonly all: () => ReadonlyArray<Latch>
  /**
   * Writes the latches of `robots` as they are now (a row for a latched robot, none for
   * another). Succeeds with whether they are on disk: false without a store, or when the
   * store could not take the write (logged).
   */
  readonly persist: (robots: Iterable<string>) => Effect.Effect<boolean>
  /**
   * A latch set (`row`) or cleared (`undefined`) on another node: applied here, written to disk
   * in the background, not told to the mirror. Answers whether it changed anything here.
   */
  readonly remote: (robot: string, row: LatchRow | undefined) => boolean
}

/** Where a node's latches are told to the other nodes (Redis, with several nodes); it never waits for them. */
export interface Mirror {
  readonly latched: (row: LatchRow) => void
  readonly cleared: (robot: string) => void
}

/** This node's latches, as the cluster-wide latches see them. */
export interface Local {
  /** Every latch here (written again to the cluster's copy when it may have lost them). */
  readonly all: () => ReadonlyArray<LatchRow>
  /** A latch set (`row`) or cleared (`undefined`) on another node. */
  readonly remote: (robot: string, row: LatchRow | undefined) => void
}

/** The cluster-wide latches: a {@link Mirror} that also tells this node the others' latches once it is attached. */
export interface Exchange extends Mirror {
  /**
   * Tells `local` the other nodes' latches from now on; resolves once it has read them all (or
   * after a second without an answer: the stop never waits for Redis).
   */
  readonly attach: (local: Local) => Effect.Effect<void>
}

/** The node's cluster-wide latches as a service; absent on a single node. */
export const Exchange: Context.Tag<Exchange, Exchange> = Context.GenericTag<Exchange>("fleetvisor/apps/fleet/StopLatches/Exchange")

/** What the table is built on; without a store it lives in memory only. */
export interface StopLatchesOptions {
  readonly store?: StopLatchStore["Type"] | undefined
  /** The stop channel's shared table, whose latch flags mirror the AGVs' latches. */
  readonly shared?: SharedHeaderIds.SharedHeaderIds | undefined
  /** Where the latches set and cleared here are told, with several nodes. */
  readonly mirror?: Mirror | undefined
}

/** The AGV identity of a fleet id `<manufacturer>/<serialNumber>`. */
const identityOf = (robot: string) => {
  const slash = robot.lastIndexOf("/")
  return { manufacturer: robot.slice(0, slash), serialNumber: robot.slice(slash + 1) }
}

const newLatch = (robot: string, kind: RobotKind, since: number, by: string): Latch => ({
  robot,
  kind,
  since,
  by,
  confirmed: kind === "arm",
  unconfirmedSince: Date.now(),
  cancelActions: new Set()
})

/** The table, with the latches the store holds. */
export const make = (options: StopLatchesOptions = {}): Effect.Effect<StopLatches, StoreUnavailable> =>
  Effect.gen(function*() {
    const { mirror, shared, store } = options
    const latches = new Map<string, Latch>()
    /** AGVs the stop channel's thread latched (its flag) before this thread heard from it. */
    const provisional = new Map<string, Latch>()
    for (const row of store === undefined ? [] : yield* store.load) {
      latches.set(row.robot, newLatch(row.robot, row.kind, row.since, row.by))
      if (row.kind === "agv") shared?.setLatched(identityOf(row.robot), true)
    }
    const writes = yield* Effect.makeSemaphore(1)

    const latch = (robot: string, kind: RobotKind, by: string): Latch => {
      let current = latches.get(robot)
      if (current === undefined) {
        const early = provisional.get(robot)
        provisional.delete(robot)
        current = newLatch(robot, kind, early?.since ?? Date.now(), by)
        for (const id of early?.cancelActions ?? []) current.cancelActions.add(id)
        latches.set(robot, current)
        if (kind === "agv") shared?.setLatched(identityOf(robot), true)
        mirror?.latched({ robot, kind, since: current.since, by: current.by })
      }
      return current
    }

    const clear = (robot: string) => {
      const current = latches.get(robot)
      latches.delete(robot)
      provisional.delete(robot)
      if (current?.kind === "agv" || (current === undefined && robot.includes("/"))) {
        shared?.setLatched(identityOf(robot), false)
      }
      return current !== undefined
    }

    const persist = (robots: Iterable<string>): Effect.Effect<boolean> => {
      if (store === undefined) return Effect.succeed(false)
      const list = [...robots]
      return writes.withPermits(1)(Effect.forEach(list, write, { discard: true })).pipe(
        Effect.as(true),
        Effect.catchAll((error) =>
          Effect.as(Effect.logError(`stop latches of ${LogSampler.excerpt(list.join(", "))} not written: ${error.message}`), false)
        )
      )
    }

    const write = (robot: string): Effect.Effect<void, StoreUnavailable> => {
      if (store === undefined) return Effect.void
      const current = latches.get(robot)
      return current === undefined
        ? store.remove(robot)
        : store.save({ robot, kind: current.kind, since: current.since, by: current.by })
    }

    return {
      get: (robot) => {
        const current = latches.get(robot)
        if (current !== undefined || shared === undefined || !robot.includes("/") || !shared.latched(robot)) return current
        // The stop channel's thread latched it; its record (who, which actions) reaches this thread a moment later.
        let early = provisional.get(robot)
        if (early === undefined) {
          early = newLatch(robot, "agv", Date.now(), "stop channel")
          provisional.set(robot, early)
        }
        return early
      },
      latch,
      adopt: (robot, kind, by) => {
        const known = latches.has(robot)
        const current = latch(robot, kind, by)
        if (!known) Effect.runFork(persist([robot]))
        return current
      },
      clear: (robot) => {
        if (clear(robot)) mirror?.cleared(robot)
      },
      remote: (robot, row) => {
        if (row === undefined) {
          if (!clear(robot)) return false
        } else {
          if (latches.has(robot)) return false
          const current = newLatch(robot, row.kind, row.since, row.by)
          for (const id of provisional.get(robot)?.cancelActions ?? []) current.cancelActions.add(id)
          provisional.delete(robot)
          latches.set(robot, current)
          if (row.kind === "agv") shared?.setLatched(identityOf(robot), true)
        }
        Effect.runFork(persist([robot]))
        return true
      },
      all: () => [...latches.values()],
      persist
    } satisfies StopLatches
  })
