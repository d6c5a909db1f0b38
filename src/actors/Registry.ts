/**
 * A Registry maps keys to live actors, as Elixir's `Registry` does.
 *
 * - With **unique** keys a key names at most one actor: `session:42` is that
 *   session. Registering a taken key fails with `AlreadyRegistered`.
 * - With **duplicate** keys a key gathers many actors: `topic:canvas` lists its
 *   listeners, and `dispatch` reaches them all.
 *
 * An entry disappears when its actor exits, because the registry monitors it:
 * no actor has to remember to unregister, and a crash cannot leave a stale
 * name behind. Lookups are O(1).
 *
 * ```ts
 * const sessions = yield* Registry.make<string, SessionMsg>({ keys: "unique" })
 * const ref = yield* system.spawn(Session, { via: Registry.via(sessions, "session:42") })
 * yield* Registry.lookup(sessions, "session:42") // [{ ref, value: undefined }]
 * yield* system.crash(ref)
 * yield* Registry.lookup(sessions, "session:42") // []
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import type { Via } from "./Actor.js"
import { AlreadyRegistered } from "./ActorError.js"
import type { ActorRef } from "./ActorRef.js"
import { type ActorCell, Watch } from "./internal/cell.js"

/** @internal */
export const TypeId: unique symbol = Symbol.for("fleetvisor/Registry")

/** Whether a key names one actor or gathers many. */
export type Keys = "unique" | "duplicate"

/** One registration: the actor and the value it registered with. */
export interface Entry<M, V> {
  readonly ref: ActorRef<M>
  readonly value: V
}

/** A registry of keys `K` to actors accepting `M`, each entry carrying a value `V`. */
export interface Registry<K, M = unknown, V = unknown> {
  readonly [TypeId]: typeof TypeId
  readonly keys: Keys
  /** @internal The entry of each unique key; the entries of each duplicate key, oldest first. */
  readonly entries: Map<K, EntryImpl<K, M, V> | Array<EntryImpl<K, M, V>>>
}

/**
 * An entry is the watch that removes it when its actor exits; the actor's watches are where
 * `keysOf` finds an actor's keys.
 *
 * @internal
 */
class EntryImpl<K, M, V> extends Watch implements Entry<M, V> {
  constructor(
    readonly registry: Registry<K, M, V>,
    readonly key: K,
    readonly ref: ActorRef<M>,
    readonly value: V
  ) {
    super()
  }
  exited(): void {
    remove(this.registry, this)
  }
}

/** Creates a registry. */
export const make = <K, M = unknown, V = unknown>(options: { readonly keys: Keys }): Effect.Effect<Registry<K, M, V>> =>
  Effect.sync(() => unsafeMake<K, M, V>(options))

/** Creates a registry now. */
export const unsafeMake = <K, M = unknown, V = unknown>(options: { readonly keys: Keys }): Registry<K, M, V> => ({
  [TypeId]: TypeId,
  keys: options.keys,
  entries: new Map()
})

const noEntries: ReadonlyArray<never> = []

/** The entries under `key`, oldest first. */
const entriesOf = <K, M, V>(self: Registry<K, M, V>, key: K): ReadonlyArray<EntryImpl<K, M, V>> => {
  const found = self.entries.get(key)
  return found === undefined ? noEntries : Array.isArray(found) ? found : [found]
}

/** Registers `ref` under `key` now; returns the refusal for a taken unique key or a stopped actor. */
export const unsafeRegister = <K, M, V>(
  self: Registry<K, M, V>,
  key: K,
  ref: ActorRef<M>,
  value?: V
): AlreadyRegistered | undefined => {
  const found = self.entries.get(key)
  if (found !== undefined && self.keys === "unique") {
    return new AlreadyRegistered({ key, holder: String((found as EntryImpl<K, M, V>).ref) })
  }
  const cell = ref as unknown as ActorCell
  if (!cell.isAlive()) return undefined
  const entry = new EntryImpl(self, key, ref, value as V)
  if (self.keys === "unique") self.entries.set(key, entry)
  else if (found === undefined) self.entries.set(key, [entry])
  else (found as Array<EntryImpl<K, M, V>>).push(entry)
  cell.addWatch(entry)
  return undefined
}

const remove = <K, M, V>(self: Registry<K, M, V>, entry: EntryImpl<K, M, V>): void => {
  const found = self.entries.get(entry.key)
  if (found === entry) {
    self.entries.delete(entry.key)
  } else if (Array.isArray(found)) {
    const i = found.indexOf(entry)
    if (i >= 0) found.splice(i, 1)
    if (found.length === 0) self.entries.delete(entry.key)
  }
}

/** Registers `ref` under `key`; a taken unique key fails with `AlreadyRegistered`. */
export const register: {
  <K, M, V>(key: K, ref: ActorRef<M>, value?: V): (self: Registry<K, M, V>) => Effect.Effect<void, AlreadyRegistered>
  <K, M, V>(self: Registry<K, M, V>, key: K, ref: ActorRef<M>, value?: V): Effect.Effect<void, AlreadyRegistered>
} = dual(
  (args) => args.length >= 3 && typeof args[0] === "object" && args[0] !== null && TypeId in args[0],
  <K, M, V>(self: Registry<K, M, V>, key: K, ref: ActorRef<M>, value?: V) =>
    Effect.suspend(() => {
      const refused = unsafeRegister(self, key, ref, value)
      return refused === undefined ? Effect.void : Effect.fail(refused)
    })
)

/** Removes `ref`'s entries under `key` (every entry of the key when `ref` is omitted). */
export const unregister = <K, M, V>(self: Registry<K, M, V>, key: K, ref?: ActorRef<M>): Effect.Effect<void> =>
  Effect.sync(() => {
    for (const entry of [...entriesOf(self, key)]) {
      if (ref === undefined || entry.ref === ref) {
        entry.target?.removeWatch(entry)
        remove(self, entry)
      }
    }
  })

/** The entries under `key` now (at most one for unique keys). */
export const unsafeLookup = <K, M, V>(self: Registry<K, M, V>, key: K): ReadonlyArray<Entry<M, V>> =>
  entriesOf(self, key)

/** The entries under `key`. */
export const lookup = <K, M, V>(self: Registry<K, M, V>, key: K): Effect.Effect<ReadonlyArray<Entry<M, V>>> =>
  Effect.sync(() => [...unsafeLookup(self, key)])

/** The actor under a unique key. */
export const whereis = <K, M, V>(self: Registry<K, M, V>, key: K): Effect.Effect<Option.Option<ActorRef<M>>> =>
  Effect.sync(() => Option.fromNullable(entriesOf(self, key)[0]?.ref))

/** The actor under a unique key now, if any (`whereis` without the Effect). */
export const unsafeWhereis = <K, M, V>(self: Registry<K, M, V>, key: K): ActorRef<M> | undefined =>
  entriesOf(self, key)[0]?.ref

/** The keys `ref` is registered under. */
export const keysOf = <K, M, V>(self: Registry<K, M, V>, ref: ActorRef<M>): Effect.Effect<ReadonlyArray<K>> =>
  Effect.sync(() => {
    const keys: Array<K> = []
    for (let watch = (ref as unknown as ActorCell).watchers; watch !== undefined; watch = watch.wnext) {
      if (watch instanceof EntryImpl && watch.registry === self) keys.push(watch.key as K)
    }
    return keys.reverse()
  })

/** Calls `f` with the entries under `key`, if any (Elixir's `Registry.dispatch`). */
export const dispatch = <K, M, V>(
  self: Registry<K, M, V>,
  key: K,
  f: (entries: ReadonlyArray<Entry<M, V>>) => void
): Effect.Effect<void> =>
  Effect.sync(() => {
    const list = entriesOf(self, key)
    if (list.length > 0) f([...list])
  })

/** Sends `message` to every actor under `key`; returns how many accepted it. */
export const send = <K, M, V>(self: Registry<K, M, V>, key: K, message: M): Effect.Effect<number> =>
  Effect.sync(() => {
    let accepted = 0
    for (const entry of entriesOf(self, key)) if (entry.ref.unsafeTell(message)) accepted++
    return accepted
  })

/** How many keys are registered. */
export const count = <K, M, V>(self: Registry<K, M, V>): number => self.entries.size

/** Every entry, for inspection and invariant checks. */
export const all = <K, M, V>(self: Registry<K, M, V>): ReadonlyArray<Entry<M, V> & { readonly key: K }> =>
  [...self.entries.values()].flat() as Array<EntryImpl<K, M, V>>

/**
 * Names an actor at spawn: it is registered under `key` before its `init` runs,
 * and the spawn fails with `AlreadyRegistered` if the key is taken.
 */
export const via = <K, M, V>(self: Registry<K, M, V>, key: K, value?: V): Via => ({
  name: String(key),
  register(ref) {
    return unsafeRegister(self, key, ref as ActorRef<M>, value)
  }
})
