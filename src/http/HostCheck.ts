/**
 * The `Host` check: the defence against DNS rebinding. A page of `http://evil.example:8080/`
 * whose name the attacker's DNS turns into `127.0.0.1` after it loaded is same-origin with
 * itself, so the browser lets it read what this server answers; but its requests still carry
 * `Host: evil.example:8080`. A server that answers only the names it goes by closes that door,
 * whatever `ADMIN_TOKEN` is. The listener answers any other name with 421 Misdirected Request.
 *
 * The rule (the stop channel's thread applies it too, `src/apps/fleet/internal/stopChannelWorker.ts`):
 *
 * 1. No `Host` header at all: allowed (an HTTP/1.0 client; every browser sends one).
 * 2. The name is the header without its port (`[::1]:8080` → `::1`, `Fleet.Example.:80` →
 *    `fleet.example`), in lower case and without a final dot. A header that is not `name`,
 *    `name:port`, `[v6]` or `[v6]:port` is refused.
 * 3. The name is allowed when it is
 *    - an IP address, IPv4 or IPv6, any one: a browser sends an address only when it connects
 *      to that address, which no DNS answer can change (this covers the listen address and the
 *      machine's addresses when `HOST` is `0.0.0.0` or `::`, behind NAT too);
 *    - `localhost`, or a name under it (`app.localhost`: browsers resolve those to loopback
 *      themselves, never through DNS);
 *    - the listen host (`HOST`), when it is a name rather than an address;
 *    - in `allowedHosts` (`ALLOWED_HOSTS`, plus the machine's own name, see {@link forService}):
 *      the same name, any name under an entry that starts with a dot (`.plant.example` allows
 *      `fleet.plant.example`, not `plant.example`), or any name at all for `*`.
 *
 * Any port is accepted: it is the name a rebinding attack forges, never the port.
 *
 * @since 0.1.0
 */
import type { IncomingMessage } from "node:http"
import { isIP } from "node:net"
import * as os from "node:os"

/** Where the server listens and which other names it answers to. */
export interface HostCheckOptions {
  /** The listen host (`HOST`): `127.0.0.1`, `0.0.0.0`, `::`, or a name. */
  readonly listenHost: string
  /** Further names (`ALLOWED_HOSTS`): `fleet.plant.example`, `.plant.example` (every name under it), or `*`. */
  readonly allowedHosts: ReadonlyArray<string>
}

const hostPattern = /^(\[[^\]]*\]|[^:[\]]*)(?::[0-9]*)?$/

/** The name of a `Host` header (see rule 2); `undefined` for a header that is not a host. */
export const nameOf = (host: string): string | undefined => {
  const value = host.trim().toLowerCase()
  // An IPv6 address without brackets is no valid Host, but it names no DNS name either.
  if (isIP(value) === 6) return value
  const match = hostPattern.exec(value)
  if (match === null) return undefined
  const name = match[1].startsWith("[") ? match[1].slice(1, -1) : match[1]
  return name.endsWith(".") ? name.slice(0, -1) : name
}

/** Whether `name` (already lower case, no final dot) matches an `allowedHosts` entry. */
const listed = (name: string, entries: ReadonlyArray<string>): boolean =>
  entries.some((entry) => {
    const e = entry.trim().toLowerCase().replace(/\.$/, "")
    return e === "*" || (e.startsWith(".") ? name.endsWith(e) && name.length > e.length : name === e)
  })

/**
 * Whether a request whose `Host` header is `host` (`undefined` when it has none) is addressed
 * to this server, by the rule above.
 */
export const allowedHost = (host: string | undefined, options: HostCheckOptions): boolean => {
  if (host === undefined) return true
  const name = nameOf(host)
  if (name === undefined || name === "") return false
  if (isIP(name) !== 0 || name === "localhost" || name.endsWith(".localhost")) return true
  const listen = nameOf(options.listenHost)
  if (listen !== undefined && listen === name) return true
  return listed(name, options.allowedHosts)
}

/**
 * The options of this service: the listen host, `ALLOWED_HOSTS`, and the machine's own name
 * (`os.hostname()`), so that `http://<machine>:8080/` works on a plant network without a
 * setting. A rebinding attacker cannot make a victim's browser resolve that name to a machine of
 * its own without controlling the victim's DNS already. Its fully qualified names (`cell-1.plant.example`)
 * go in `ALLOWED_HOSTS`.
 */
export const forService = (listenHost: string, allowedHosts: ReadonlyArray<string>): HostCheckOptions => ({
  listenHost,
  allowedHosts: [...allowedHosts, os.hostname()]
})

/** A valid `ALLOWED_HOSTS` entry: `*`, a name or address (`fleet.plant.example`, `10.0.0.5`), or `.suffix`; no port. */
export const validEntry = (entry: string): boolean =>
  entry === "*" || /^\.?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$/i.test(entry) ||
  (entry.startsWith("[") && entry.endsWith("]") && isIP(entry.slice(1, -1)) === 6)

/**
 * Whether a browser page of the request's `Origin` may open a WebSocket here: clients without
 * an `Origin` (not browsers: desktop apps, scripts) may; so may a listed origin (`*`: any) and a
 * page of the very host the request was sent to (the server's own pages).
 */
export const originAllowed = (request: IncomingMessage, allowed: ReadonlyArray<string>): boolean => {
  const origin = request.headers.origin
  if (origin === undefined || allowed.includes("*") || allowed.includes(origin)) return true
  try {
    return new URL(origin).host === request.headers.host
  } catch {
    return false
  }
}
