/**
 * Where the cluster's Redis is, read from `REDIS_URL`: one parser for every connection a node
 * opens (its commands, its backplane, its latches' subscriber), so that they all reach the same
 * Redis and a bad URL stops the start with one clear error.
 *
 * - `redis://[[user]:password@]host[:port][/db]`: one Redis.
 * - `rediss://…`: the same over TLS (a managed Redis); ioredis reads both forms itself.
 * - `redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/<master name>[/db][?options]`:
 *   the Sentinels of a master group (port 26379 by default); the node asks them for the master
 *   and asks again whenever its connection drops, so it follows a failover. `rediss+sentinel://`
 *   uses TLS to the Sentinels and the master; `sentinel://` is read as `redis+sentinel://`. The
 *   user and password are the master's; options: `db`, `sentinelUsername`, `sentinelPassword`
 *   (also `sentinel_username`, `sentinel_password`, as redis-py's tools write them).
 *
 * A URL is shown in logs and errors only through {@link redact}: no password is ever echoed.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import { Redis, type RedisOptions } from "ioredis"
import { InvalidSettings } from "./ClusterError.js"

/** One Sentinel's address. */
export interface SentinelAddress {
  readonly host: string
  readonly port: number
}

/** A Redis reached at one address: the URL is given to ioredis as it is. */
export interface Direct {
  readonly _tag: "Direct"
  readonly url: string
  /** Whether it is `rediss://` (TLS). */
  readonly tls: boolean
  /** The URL without its password, for logs. */
  readonly redacted: string
}

/** A Redis master found through its Sentinels. */
export interface Sentinel {
  readonly _tag: "Sentinel"
  readonly sentinels: ReadonlyArray<SentinelAddress>
  /** The master group's name, as in `sentinel monitor <name> …`. */
  readonly name: string
  readonly username: string | undefined
  readonly password: string | undefined
  readonly sentinelUsername: string | undefined
  readonly sentinelPassword: string | undefined
  readonly db: number
  /** TLS to the Sentinels and the master (`rediss+sentinel://`). */
  readonly tls: boolean
  /** The URL without its passwords, for logs. */
  readonly redacted: string
}

/** Where the cluster's Redis is. */
export type RedisAddress = Direct | Sentinel

/** The port of a Sentinel when its address names none. */
export const defaultSentinelPort = 26379

const sentinelSchemes: Record<string, boolean> = {
  "redis+sentinel": false,
  "sentinel": false,
  "rediss+sentinel": true
}

const optionNames: Record<string, "db" | "sentinelUsername" | "sentinelPassword"> = {
  db: "db",
  sentinelUsername: "sentinelUsername",
  sentinel_username: "sentinelUsername",
  sentinelPassword: "sentinelPassword",
  sentinel_password: "sentinelPassword"
}

const invalid = (reason: string) => Either.left(new InvalidSettings({ reason: `REDIS_URL: ${reason}` }))

const decode = (text: string): string | undefined => {
  try {
    return decodeURIComponent(text)
  } catch {
    return undefined
  }
}

const validPort = (text: string) => /^\d{1,5}$/.test(text) && Number(text) >= 1 && Number(text) <= 65_535

const validDb = (text: string) => /^\d{1,4}$/.test(text)

/** `host`, `host:port`, `[v6]`, `[v6]:port`; undefined when it is none of them. */
const hostPort = (text: string): SentinelAddress | undefined => {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]@/?#\s]+))(?::(\d+))?$/.exec(text)
  if (match === null) return undefined
  const port = match[3]
  if (port !== undefined && !validPort(port)) return undefined
  return { host: match[1] ?? match[2], port: port === undefined ? defaultSentinelPort : Number(port) }
}

/** `url` with the password of its user info and any `sentinel…password` option replaced by `***`. */
export const redact = (url: string): string => {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)/.exec(url)
  let out = url
  if (scheme !== null) {
    const rest = url.slice(scheme[1].length)
    const end = rest.search(/[/?#]/)
    const authority = end < 0 ? rest : rest.slice(0, end)
    const at = authority.lastIndexOf("@")
    if (at >= 0) {
      const info = authority.slice(0, at)
      const colon = info.indexOf(":")
      const shown = colon < 0 ? info : `${info.slice(0, colon)}:***`
      out = scheme[1] + shown + rest.slice(at)
    }
  }
  return out.replace(/([?&]sentinel_?[pP]assword=)[^&#]*/g, "$1***")
}

const parseDirect = (url: string, tls: boolean): Either.Either<RedisAddress, InvalidSettings> => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return invalid(`${redact(url)} is not a URL`)
  }
  if (parsed.hostname === "") return invalid(`${redact(url)} names no host`)
  if (parsed.pathname !== "" && parsed.pathname !== "/" && !validDb(parsed.pathname.slice(1))) {
    return invalid(`${redact(url)}: the path must be a database number (/0)`)
  }
  return Either.right({ _tag: "Direct", url, tls, redacted: redact(url) })
}

const parseSentinel = (url: string, scheme: string, tls: boolean): Either.Either<RedisAddress, InvalidSettings> => {
  const shown = redact(url)
  const rest = url.slice(scheme.length + 3)
  const hash = rest.indexOf("#")
  if (hash >= 0) return invalid(`${shown}: a fragment (#…) means nothing here`)
  const query = rest.indexOf("?")
  const beforeQuery = query < 0 ? rest : rest.slice(0, query)
  const slash = beforeQuery.indexOf("/")
  const authority = slash < 0 ? beforeQuery : beforeQuery.slice(0, slash)
  const path = slash < 0 ? "" : beforeQuery.slice(slash + 1)
  const at = authority.lastIndexOf("@")
  let username: string | undefined
  let password: string | undefined
  if (at >= 0) {
    const info = authority.slice(0, at)
    const colon = info.indexOf(":")
    const user = decode(colon < 0 ? info : info.slice(0, colon))
    const pass = colon < 0 ? "" : decode(info.slice(colon + 1))
    if (user === undefined || pass === undefined) return invalid(`${shown}: the user info is not percent-encoded properly`)
    username = user === "" ? undefined : user
    password = pass === "" ? undefined : pass
  }
  const hosts = at >= 0 ? authority.slice(at + 1) : authority
  if (hosts === "") return invalid(`${shown} names no Sentinel (host:port,host:port,…)`)
  const sentinels: Array<SentinelAddress> = []
  for (const part of hosts.split(",")) {
    const address = hostPort(part)
    if (address === undefined) return invalid(`${shown}: "${part}" is not a Sentinel address (host or host:port, port 1–65535)`)
    sentinels.push(address)
  }
  const segments = path === "" ? [] : path.split("/")
  if (segments.length > 2) return invalid(`${shown}: the path must be /<master name>[/db]`)
  const name = segments[0] === undefined ? undefined : decode(segments[0])
  if (name === undefined || name === "") return invalid(`${shown} names no master group (…/<master name>, as in "sentinel monitor <name>")`)
  let db = segments[1] === undefined || segments[1] === "" ? "0" : segments[1]
  let sentinelUsername: string | undefined
  let sentinelPassword: string | undefined
  if (query >= 0) {
    for (const [key, value] of new URLSearchParams(rest.slice(query + 1))) {
      const option = optionNames[key]
      if (option === undefined) {
        return invalid(`${shown}: unknown option "${key}" (known: db, sentinelUsername, sentinelPassword)`)
      }
      if (option === "db") db = value
      else if (option === "sentinelUsername") sentinelUsername = value
      else sentinelPassword = value
    }
  }
  if (!validDb(db)) return invalid(`${shown}: the database must be a number`)
  return Either.right({
    _tag: "Sentinel",
    sentinels,
    name,
    username,
    password,
    sentinelUsername,
    sentinelPassword,
    db: Number(db),
    tls,
    redacted: shown
  })
}

/** Reads a `REDIS_URL`; a URL that cannot work is `InvalidSettings` saying why (its password redacted). */
export const parse = (url: string): Either.Either<RedisAddress, InvalidSettings> => {
  const match = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(url.trim())
  if (match === null) return invalid(`${redact(url)} is not a URL (redis://host:6379, rediss://…, redis+sentinel://host:26379,…/<master>)`)
  const scheme = match[1].toLowerCase()
  if (scheme === "redis" || scheme === "rediss") return parseDirect(url.trim(), scheme === "rediss")
  const tls = sentinelSchemes[scheme]
  if (tls !== undefined) return parseSentinel(url.trim(), match[1], tls)
  return invalid(`unknown scheme "${match[1]}://" (redis://, rediss://, redis+sentinel://, rediss+sentinel://)`)
}

/** Where the Redis is, for a log line, without any password. */
export const describe = (address: RedisAddress): string =>
  address._tag === "Direct"
    ? `Redis ${address.redacted}`
    : `the master "${address.name}" of the Sentinels ${address.sentinels.map(({ host, port }) => `${host.includes(":") ? `[${host}]` : host}:${port}`).join(",")}${address.tls ? " (TLS)" : ""}`

/** A new ioredis client for `address` with the caller's own connection `options`. */
export const open = (address: RedisAddress, options: RedisOptions): Redis => {
  const common: RedisOptions = {
    // A connection that finds itself on a replica (a managed Redis's endpoint or a Sentinel master
    // demoted under it) reconnects, to wherever the address leads now; the command is not re-sent.
    reconnectOnError: (error) => error.message.startsWith("READONLY") ? 1 : false,
    ...options
  }
  if (address._tag === "Direct") return new Redis(address.url, common)
  return new Redis({
    ...common,
    sentinels: address.sentinels.map(({ host, port }) => ({ host, port })),
    name: address.name,
    db: address.db,
    ...(address.username === undefined ? {} : { username: address.username }),
    ...(address.password === undefined ? {} : { password: address.password }),
    ...(address.sentinelUsername === undefined ? {} : { sentinelUsername: address.sentinelUsername }),
    ...(address.sentinelPassword === undefined ? {} : { sentinelPassword: address.sentinelPassword }),
    ...(address.tls ? { tls: {}, enableTLSForSentinelMode: true } : {}),
    // Ask the Sentinels again soon, whatever the caller's own pace: a failover is when it matters.
    // Not ioredis's `failoverDetector` (see `SentinelWatch`, which the cluster's connections use).
    sentinelRetryStrategy: (times: number) => Math.min(100 * times, 1_000)
  })
}
