import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as http from "node:http"
import { describe, expect, it } from "vitest"
import * as ClientAddress from "../../src/http/ClientAddress.js"
import * as ServiceConfig from "../../src/http/ServiceConfig.js"
import * as Setting from "../../src/node/Setting.js"

const trusting = (list: string) => Either.getOrThrow(ClientAddress.parse(list))

const client = "203.0.113.7"
const proxy = "127.0.0.1"
const stranger = "192.0.2.1"
const xff = (value: string): http.IncomingHttpHeaders => ({ "x-forwarded-for": value })
const fwd = (value: string): http.IncomingHttpHeaders => ({ forwarded: value })

describe("ClientAddress.resolve", () => {
  // [case, TRUSTED_PROXIES, the socket's address, headers, the client's address]
  const cases: ReadonlyArray<readonly [string, string, string | undefined, http.IncomingHttpHeaders, string]> = [
    ["no proxy trusted, no header", "", stranger, {}, stranger],
    ["a socket that is gone", "loopback", undefined, {}, ""],
    ["trusted peer without a header", "loopback", proxy, {}, proxy],
    ["trusted peer, blank header", "loopback", proxy, xff(" "), proxy],
    // The headers of a peer that is not trusted are the client's own words.
    ["spoof: untrusted peer's X-Forwarded-For", "", stranger, xff(client), stranger],
    ["spoof: untrusted peer's Forwarded", "loopback", stranger, fwd(`for=${client}`), stranger],
    ["spoof: untrusted peer claims loopback", "loopback", stranger, xff("127.0.0.1"), stranger],
    ["one trusted proxy", "loopback", proxy, xff(client), client],
    ["spoof: the client's own header, appended to", "loopback", proxy, xff(`198.51.100.1, ${client}`), client],
    ["spoof: the client names a trusted address", "loopback", proxy, xff(`127.0.0.1, ${client}`), client],
    ["spoof: garbage left of the client is not read", "loopback", proxy, xff(`<x>, , ${client}`), client],
    ["a chain of trusted proxies", "loopback, 10.0.0.0/8", proxy, xff(`198.51.100.1, ${client}, 10.0.0.2, 10.1.2.3`), client],
    ["a hop outside the trusted CIDR is the client", "loopback, 10.0.0.0/16", proxy, xff(`${client}, 10.1.2.3`), "10.1.2.3"],
    ["every hop trusted: the farthest", "loopback, 10.0.0.0/8", proxy, xff("10.0.0.3, 10.0.0.2"), "10.0.0.3"],
    ["repeated headers", "loopback", proxy, { "x-forwarded-for": ["198.51.100.1", client] as unknown as string }, client],
    ["IPv6 peer, IPv6 client in canonical form", "::1", "::1", xff("2001:DB8:0:0::1"), "2001:db8::1"],
    ["IPv4-mapped peer matches loopback", "loopback", "::ffff:127.0.0.1", xff(client), client],
    ["IPv4-mapped entry matches an IPv4 peer", "::ffff:10.0.0.1", "10.0.0.1", xff(client), client],
    ["IPv4-mapped hop reads as IPv4", "loopback", proxy, xff(`::ffff:${client}`), client],
    ["IPv4-mapped hop is trusted like its IPv4", "loopback", proxy, xff(`${client}, ::ffff:127.0.0.1`), client],
    ["IPv4 hop with a port", "loopback", proxy, xff(`${client}:4711`), client],
    ["bracketed IPv6 hop with a port", "loopback", proxy, xff("[2001:db8::1]:4711"), "2001:db8::1"],
    ["Forwarded", "loopback", proxy, fwd(`for=${client};proto=https;by=127.0.0.1`), client],
    ["Forwarded, quoted IPv6 and port, FOR", "loopback", proxy, fwd("FOR=\"[2001:db8:cafe::17]:4711\""), "2001:db8:cafe::17"],
    ["Forwarded, several elements", "loopback, 10.0.0.0/8", proxy, fwd(`for=198.51.100.1, for=${client};proto=http, for=10.0.0.2`), client],
    ["spoof: Forwarded, a comma inside quotes", "loopback, 10.0.0.0/8", proxy, fwd(`for=${client};ext="x, for=6.6.6.6", for=10.0.0.2`), client],
    ["X-Forwarded-For wins over Forwarded", "loopback", proxy, { "x-forwarded-for": client, forwarded: "for=198.51.100.1" }, client],
    // Malformed where it is read: the peer's address.
    ["malformed: not an address", "loopback", proxy, xff("not-an-address"), proxy],
    ["malformed: a host name", "loopback", proxy, xff("client.example.com"), proxy],
    ["malformed: an empty hop", "loopback", proxy, xff(`${client},`), proxy],
    ["malformed: a leading zero", "loopback", proxy, xff("203.0.113.07"), proxy],
    ["malformed: IPv4 in brackets", "loopback", proxy, xff(`[${client}]`), proxy],
    ["malformed: behind a trusted hop", "loopback, 10.0.0.0/8", proxy, xff(`${client}, bogus, 10.0.0.2`), proxy],
    ["Forwarded: for=unknown", "loopback", proxy, fwd("for=unknown"), proxy],
    ["Forwarded: an obfuscated for", "loopback", proxy, fwd("for=_hidden"), proxy],
    ["Forwarded: no for", "loopback", proxy, fwd("proto=https;by=127.0.0.1"), proxy],
    ["Forwarded: an empty for", "loopback", proxy, fwd("for="), proxy],
    ["Forwarded: an unterminated quote", "loopback", proxy, fwd("for=\"[2001:db8::1]"), proxy],
    ["Forwarded: garbage", "loopback", proxy, fwd("\"\";;,=,\\"), proxy]
  ]

  it.each(cases)("%s", (_, trusted, peer, headers, expected) => {
    expect(ClientAddress.resolve(trusting(trusted), peer, headers)).toBe(expected)
  })

  it("walks a header of thousands of trusted hops to its farthest", () => {
    const hops = Array.from({ length: 2_000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`)
    expect(ClientAddress.resolve(trusting("loopback, 10.0.0.0/8"), "127.0.0.1", { "x-forwarded-for": hops.join(", ") }))
      .toBe("10.0.0.0")
  })
})

describe("ClientAddress.parse", () => {
  it("reads addresses, CIDRs and loopback", () => {
    const proxies = trusting(" loopback , 10.0.0.0/8,fd00::/8, ::ffff:192.0.2.1, 198.51.100.9,")
    expect(proxies.entries).toEqual(["loopback", "10.0.0.0/8", "fd00::/8", "::ffff:192.0.2.1", "198.51.100.9"])
    for (const address of ["127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1", "10.200.0.1", "fd12::3", "192.0.2.1", "198.51.100.9"]) {
      expect(proxies.has(address), address).toBe(true)
    }
    for (const address of ["11.0.0.1", "fe80::1", "198.51.100.10", "::2", "", "garbage", "localhost"]) {
      expect(proxies.has(address), address).toBe(false)
    }
  })

  it("trusts no one when empty", () => {
    const proxies = trusting("")
    expect(proxies.entries).toEqual([])
    expect(proxies.has("127.0.0.1")).toBe(false)
    expect(ClientAddress.none.has("::1")).toBe(false)
  })

  const refused = ["10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8/1", "10.0.0.0/1e1"]
  it.each([...refused, "proxy.example.com", "[::1]", "fe80::1%eth0", "*"])("refuses %s", (entry) => {
    expect(ClientAddress.parse(`loopback, ${entry}`)).toEqual(Either.left(entry))
  })
})

describe("TRUSTED_PROXIES", () => {
  it("trusts no one by default, and reads the variable and the flag (which wins)", () => {
    const byDefault = Either.getOrThrow(ServiceConfig.load(new Map(), {}))
    expect(byDefault.trustedProxies.entries).toEqual([])
    const fromEnv = Either.getOrThrow(ServiceConfig.load(new Map(), { TRUSTED_PROXIES: "loopback,10.0.0.0/8", AUTH: "none" }))
    expect(fromEnv.trustedProxies.entries).toEqual(["loopback", "10.0.0.0/8"])
    const flags = Setting.parseFlags(["--trusted-proxies", "::1"], ServiceConfig.settings) as Map<string, string>
    const fromFlag = Either.getOrThrow(ServiceConfig.load(flags, { TRUSTED_PROXIES: "loopback", AUTH: "none" }))
    expect(fromFlag.trustedProxies.entries).toEqual(["::1"])
    expect(Setting.usage(ServiceConfig.settings)).toContain("--trusted-proxies")
  })

  it("names the entry that is not an address", () => {
    const errors = Either.getLeft(ServiceConfig.load(new Map(), { TRUSTED_PROXIES: "loopback, nginx" }))
    expect(Option.getOrThrow(errors)).toEqual([
      "TRUSTED_PROXIES: must be a comma-separated list of addresses, CIDRs like 10.0.0.0/8 or fd00::/8, or loopback (got \"nginx\")"
    ])
  })
})
