/**
 * The client's address behind reverse proxies (Express's `trust proxy`, Phoenix's RemoteIp).
 *
 * A peer listed in `TRUSTED_PROXIES` may say who its client is: its `X-Forwarded-For` (or, when
 * that is absent, RFC 7239 `Forwarded: for=`) is read from the right, trusted hops are skipped,
 * and the first untrusted hop is the client. Hops further left were written by the client and
 * are never read. Any other peer's headers are ignored, and a header that cannot be read where
 * it matters gives the peer's own address. Nothing here throws.
 *
 * Only for attribution (per-address limits, cooldowns, logs): access control (the admin
 * endpoints' loopback check) reads the socket's address and never this.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import type * as http from "node:http"
import * as net from "node:net"

/** The peers whose forwarding headers are believed. */
export interface TrustedProxies {
  /** The entries as configured, e.g. `["loopback", "10.0.0.0/8"]`. */
  readonly entries: ReadonlyArray<string>
  /** Whether a peer at `address` is one of them (IPv4-mapped IPv6 matches its IPv4 entries). */
  readonly has: (address: string) => boolean
}

const familyOf = (address: string): "ipv4" | "ipv6" | undefined => {
  const family = net.isIP(address)
  return family === 4 ? "ipv4" : family === 6 ? "ipv6" : undefined
}

const make = (entries: ReadonlyArray<string>, list: net.BlockList): TrustedProxies => ({
  entries,
  has: entries.length === 0 ? () => false : (address) => {
    const family = familyOf(address)
    return family !== undefined && list.check(address, family)
  }
})

/** Trusts no one: the socket's address is the client's. */
export const none: TrustedProxies = make([], new net.BlockList())

/** Adds one entry (`loopback`, an address, or a CIDR) to `list`; false if it is none of these. */
const addEntry = (list: net.BlockList, entry: string): boolean => {
  if (entry.toLowerCase() === "loopback") {
    list.addSubnet("127.0.0.0", 8, "ipv4")
    list.addAddress("::1", "ipv6")
    return true
  }
  const [address = "", prefix, ...rest] = entry.split("/")
  const family = familyOf(address)
  if (family === undefined || rest.length > 0 || address.includes("%")) return false
  if (prefix === undefined) {
    list.addAddress(address, family)
    return true
  }
  const bits = Number(prefix)
  if (!/^\d{1,3}$/.test(prefix) || bits > (family === "ipv4" ? 32 : 128)) return false
  list.addSubnet(address, bits, family)
  return true
}

/**
 * Reads a comma-separated list of addresses, CIDRs (`10.0.0.0/8`, `fd00::/8`) and `loopback`
 * (127.0.0.0/8 and ::1). Empty: trust no one. Fails with the first entry that is none of these.
 */
export const parse = (list: string): Either.Either<TrustedProxies, string> => {
  const entries = list.split(",").map((entry) => entry.trim()).filter((entry) => entry !== "")
  const blockList = new net.BlockList()
  for (const entry of entries) if (!addEntry(blockList, entry)) return Either.left(entry)
  return Either.right(make(entries, blockList))
}

/**
 * One hop of a forwarding header as an address: `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1`
 * or `[2001:db8::1]:4711`; IPv6 in its canonical form, IPv4-mapped IPv6 as IPv4. `undefined` for
 * anything else (`unknown`, `_hidden`, a host name, garbage).
 */
const hopAddress = (hop: string | undefined): string | undefined => {
  if (hop === undefined) return undefined
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(hop)
  const withPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(hop)
  const address = bracketed?.[1] ?? withPort?.[1] ?? hop
  const family = familyOf(address)
  if (family === undefined || (bracketed !== null && family !== "ipv6")) return undefined
  try {
    const canonical = new net.SocketAddress({ address, family }).address
    return /^::ffff:\d{1,3}(\.\d{1,3}){3}$/.test(canonical) ? canonical.slice(7) : canonical
  } catch {
    return undefined
  }
}

/** Splits on `separator` outside of quoted strings (RFC 7230 `quoted-string`, with `\` escapes). */
const splitUnquoted = (text: string, separator: string): Array<string> => {
  const parts: Array<string> = []
  let start = 0
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const char = text[i]
    if (quoted && char === "\\") i++
    else if (char === "\"") quoted = !quoted
    else if (!quoted && char === separator) {
      parts.push(text.slice(start, i))
      start = i + 1
    }
  }
  parts.push(text.slice(start))
  return parts
}

/** The `for` of one `Forwarded` element, unquoted; `undefined` when it has none or is not well formed. */
const forwardedFor = (element: string): string | undefined => {
  for (const pair of splitUnquoted(element, ";")) {
    const match = /^\s*for\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s"]+))\s*$/i.exec(pair)
    if (match !== null) return match[1]?.replace(/\\(.)/g, "$1") ?? match[2]
  }
  return undefined
}

const headerText = (value: string | ReadonlyArray<string> | undefined): string | undefined => {
  const text = typeof value === "string" ? value : value?.join(",")
  return text === undefined || text.trim() === "" ? undefined : text
}

/** The hops a request was forwarded through, the nearest last: `X-Forwarded-For`, else `Forwarded`. */
const hops = (headers: http.IncomingHttpHeaders): ReadonlyArray<string | undefined> => {
  const xForwardedFor = headerText(headers["x-forwarded-for"])
  if (xForwardedFor !== undefined) return xForwardedFor.split(",").map((hop) => hop.trim())
  const forwarded = headerText(headers["forwarded"])
  return forwarded === undefined ? [] : splitUnquoted(forwarded, ",").map(forwardedFor)
}

/**
 * The client's address, given the socket's (`peer`) and the request's headers: `peer` unless it
 * is a trusted proxy, then the first untrusted hop from the right of its forwarding header (the
 * leftmost one if all are trusted). A hop on that walk that is not an address gives `peer`.
 */
export const resolve = (
  proxies: TrustedProxies,
  peer: string | undefined,
  headers: http.IncomingHttpHeaders
): string => {
  if (peer === undefined) return ""
  if (!proxies.has(peer)) return peer
  const forwarded = hops(headers)
  let client = peer
  for (let i = forwarded.length - 1; i >= 0; i--) {
    const hop = hopAddress(forwarded[i])
    if (hop === undefined) return peer
    client = hop
    if (!proxies.has(hop)) return hop
  }
  return client
}

/** The client's address of a request (see `resolve`). */
export const ofRequest = (request: http.IncomingMessage, proxies: TrustedProxies): string =>
  resolve(proxies, request.socket.remoteAddress, request.headers)
