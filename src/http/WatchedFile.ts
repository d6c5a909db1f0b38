/**
 * A file read again whenever it changes: the token file, a JWT key.
 *
 * Changes are seen two ways: `fs.watch` on the file's directory (so a file replaced by an
 * atomic rename, as `fleetvisor token` and most editors write, is still followed: a watch on the
 * file itself would keep watching the old inode), and a `stat` every `pollMs` as a fallback
 * for file systems that send no events (NFS, some container mounts). A change is read once
 * however many events announce it.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as path from "node:path"

/** What a file looked like when last read: changes when it is rewritten, replaced or removed. */
const signature = (file: string): string => {
  try {
    const stat = fs.statSync(file)
    return `${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`
  } catch {
    return "missing"
  }
}

/**
 * Calls `onChange` (at most once at a time) whenever `file` changed, until the scope closes.
 * `onChange` reads the file itself and keeps what it had when that fails.
 */
export const watch = (
  file: string,
  onChange: () => Promise<void> | void,
  options: { readonly pollMs?: number | undefined } = {}
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      let seen = signature(file)
      let running = false
      let again = false
      const check = () => {
        if (running) {
          again = true
          return
        }
        const now = signature(file)
        if (now === seen) return
        seen = now
        running = true
        Promise.resolve()
          .then(onChange)
          .catch(() => undefined)
          .finally(() => {
            running = false
            if (again) {
              again = false
              check()
            }
          })
      }
      // Events come in bursts (a rename is several); the check a moment later reads the result once.
      let pending: ReturnType<typeof setTimeout> | undefined
      const soon = () => {
        if (pending === undefined) {
          pending = setTimeout(() => {
            pending = undefined
            check()
          }, 20)
        }
      }
      let watcher: fs.FSWatcher | undefined
      try {
        const name = path.basename(file)
        watcher = fs.watch(path.dirname(file), { persistent: false }, (_, changed) => {
          if (changed === null || changed === name || changed.startsWith(`${name}.`)) soon()
        })
        watcher.on("error", () => watcher?.close())
      } catch {
        watcher = undefined
      }
      const poll = setInterval(check, options.pollMs ?? 1000)
      poll.unref()
      return () => {
        watcher?.close()
        clearInterval(poll)
        clearTimeout(pending)
      }
    }),
    (stop) => Effect.sync(stop)
  ).pipe(Effect.asVoid)
