/**
 * Rendezvous (highest-random-weight) hashing: a key is placed on the node that gives it the
 * highest weight, where the weight of a (key, node) pair is a stable 32-bit hash of both. Every
 * node that knows the same set of nodes computes the same owner, with nothing shared; removing a
 * node moves only the keys it had, and adding one takes about `1/n` of the keys from the others.
 *
 * The hash is FNV-1a over the key, a NUL and the node id (UTF-16 code units), finished with
 * MurmurHash3's 32-bit avalanche mix; it is the same on every platform and in every release.
 *
 * @since 0.1.0
 */

/** FNV-1a over a string's UTF-16 code units, continuing from `hash`. */
const fnv1a = (text: string, hash: number): number => {
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash
}

/** MurmurHash3's finalizer: every input bit changes about half the output bits. */
const fmix32 = (hash: number): number => {
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b)
  hash ^= hash >>> 13
  hash = Math.imul(hash, 0xc2b2ae35)
  hash ^= hash >>> 16
  return hash >>> 0
}

/** The weight of `node` for `key`: an unsigned 32-bit integer, stable across runs and platforms. */
export const weight = (key: string, node: string): number => fmix32(fnv1a(node, fnv1a("\u0000", fnv1a(key, 0x811c9dc5))))

/** Whether `a` beats `b` for a key: the higher weight, and on a tie the smaller node id. */
const beats = (wa: number, a: string, wb: number, b: string) => wa > wb || (wa === wb && a < b)

/** The node that owns `key` among `nodes`, or `undefined` when there are none. */
export const ownerOf = (key: string, nodes: Iterable<string>): string | undefined => {
  let best: string | undefined
  let bestWeight = -1
  for (const node of nodes) {
    const w = weight(key, node)
    if (best === undefined || beats(w, node, bestWeight, best)) {
      best = node
      bestWeight = w
    }
  }
  return best
}

/** `nodes` in the order `key` prefers them: its owner first, then whom it would move to next. */
export const rank = (key: string, nodes: Iterable<string>): Array<string> =>
  Array.from(nodes, (node) => ({ node, w: weight(key, node) }))
    .sort((a, b) => (beats(a.w, a.node, b.w, b.node) ? -1 : beats(b.w, b.node, a.w, a.node) ? 1 : 0))
    .map((entry) => entry.node)
