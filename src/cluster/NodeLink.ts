/**
 * The direct links between nodes: the cluster's {@link Remote.Transport}, over TCP, without Redis.
 *
 * Each node listens on one port (`CLUSTER_PORT`) and announces where in its membership heartbeat
 * (`address`, `host:port`). A request to another node looks that node up in the address book
 * (the live members: a node that is not live fails with `NodeDown` at once), then goes over the
 * one connection this node keeps to it, opened on the first request and opened again on the next
 * request after it dropped. Requests and replies travel in the other direction on the other
 * node's own connection, so each pair of nodes has at most two.
 *
 * **Frames**: a 4-byte big-endian length, then that many bytes of MessagePack (at most
 * `maxFrameBytes`, 1 MiB by default). A connection opens with a hello each way and a welcome:
 *
 * 1. the listener sends `{ t: "hello", v, node, min, max, nonce }` (`v`: its newest version);
 * 2. the connecting node checks the node is the one it meant and that the version ranges
 *    overlap, and answers its own hello, `{ t: "hello", v, node, min, max, nonce, mac? }`;
 * 3. the listener answers `{ t: "welcome", v, mac? }` (`v`: the version they agreed, the newest
 *    both speak) or `{ t: "refused", reason }` and closes.
 *
 * With a shared secret (`CLUSTER_SECRET_FILE`), each side's `mac` is an HMAC-SHA256 of the nonce
 * the other sent (with both node ids and its role), so a peer without the secret is refused on
 * either side and counted. Then the connecting node sends requests
 * `{ t: "req", id, service, payload, urgent?, deadline }` (`deadline`: ms left of its timeout)
 * and the listener replies `{ t: "res", id, reply }` in any order. Every frame type belongs to
 * the version agreed in the hello; a frame this node cannot read (not MessagePack, not a frame it
 * expects, longer than the limit) closes the connection and is counted, and never crashes the node.
 *
 * **What a failure means** (as {@link Remote} promises): `NodeDown` only while nothing was sent
 * (not live, no address, connection refused, no welcome before the request's timeout);
 * `IncompatibleNode` when the versions do not overlap; once a request's bytes are written,
 * a dropped connection or no reply is `RemoteTimeout`: the outcome is unknown. Nothing is retried.
 *
 * **Serving**: every request runs in a fiber of its own, so an urgent one (a stop) never waits
 * behind normal ones whose handlers are slow. Handlers are not interrupted when their
 * requester's connection drops or its deadline passes (a command half done is worse than a reply
 * lost); they stop with the link.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as LogLevel from "effect/LogLevel"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import { Packr } from "msgpackr"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as LogSampler from "../actors/LogSampler.js"
import { Remote } from "../actors/index.js"
import { InvalidSettings, ListenFailed } from "./ClusterError.js"
import type * as Membership from "./Membership.js"
import * as NodeProtocol from "./NodeProtocol.js"

/** Where a node's link listens (`host:port`), or why it cannot be reached. */
export type Lookup = string | { readonly reason: string }

/** How a link finds other nodes. */
export type AddressBook = (node: string) => Lookup

/** The live members of `membership()` (undefined until it is made) and the addresses they announce. */
export const fromMembership = (membership: () => Membership.Membership | undefined): AddressBook => (node) => {
  const current = membership()
  if (current === undefined) return { reason: "this node has not joined the cluster yet" }
  const member = current.unsafeLive().find((m) => m.id === node)
  if (member === undefined) return { reason: "not live" }
  return member.address ?? { reason: "it announces no node-link address (a build without node links?)" }
}

/** A fixed address book, for tests and tools. */
export const fixed = (addresses: Readonly<Record<string, string>>): AddressBook => (node) =>
  Object.hasOwn(addresses, node) ? addresses[node] : { reason: "not in the address book" }

/** `host:port` of `host` (brackets around an IPv6 address) and `port`. */
export const formatAddress = (host: string, port: number): string => (host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`)

/** The host and port of `host:port` or `[v6]:port`, or `undefined`. */
export const parseAddress = (address: string): { readonly host: string; readonly port: number } | undefined => {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address)
  if (match === null) return undefined
  const port = Number(match[3])
  return port > 0 && port < 65_536 ? { host: match[1] ?? match[2], port } : undefined
}

/** How a node's link runs. */
export interface Options {
  /** This node's id. */
  readonly node: string
  /** Where the other nodes are (usually {@link fromMembership}). */
  readonly peers: AddressBook
  /** The TCP port to listen on (`CLUSTER_PORT`); 0 (the default): a free port chosen at start. */
  readonly port?: number | undefined
  /** The interface to listen on (`CLUSTER_BIND`, default `0.0.0.0`). */
  readonly bind?: string | undefined
  /** The host other nodes reach this one at (`CLUSTER_ADVERTISE`, default the hostname). */
  readonly advertise?: string | undefined
  /** The cluster's shared secret (`CLUSTER_SECRET_FILE`): peers without it are refused. */
  readonly secret?: Uint8Array | undefined
  /** The node protocol versions spoken (default {@link NodeProtocol.range}; tests change it). */
  readonly versions?: NodeProtocol.Range | undefined
  /** The longest frame, bytes (default 1 MiB). */
  readonly maxFrameBytes?: number | undefined
  /** How long either side waits for the other's hello or welcome, ms (default 5,000). */
  readonly helloTimeout?: number | undefined
  /** At most this many connections from other nodes at once (default 256). */
  readonly maxConnections?: number | undefined
}

/** The default longest frame: 1 MiB. */
export const defaultMaxFrameBytes = 1024 * 1024

/** Past this many bytes waiting in a connection's send buffer, requests to its node are refused (`NodeDown`, not sent). */
const maxBuffered = 8 * 1024 * 1024

/** Plain counters, for metrics. */
export interface Counts {
  /** Requests written to another node's connection. */
  readonly requestsSent: number
  /** Replies written to other nodes (whatever they were). */
  readonly requestsServed: number
  /** Requests of this node to itself (handled in place, not counted above). */
  readonly localRequests: number
  /** Requests of this node that failed, by error. */
  readonly failures: {
    readonly NodeDown: number
    readonly RemoteTimeout: number
    readonly IncompatibleNode: number
    /** Defect replies (no such service, undecodable request, the handler died). */
    readonly RemoteDefect: number
  }
  /** Replies that came after their request timed out (or was interrupted). */
  readonly lateReplies: number
  /** Replies not sent: their requester's connection had closed. */
  readonly lostReplies: number
  /** Connections this node opened to others. */
  readonly connectionsOpened: number
  /** Connections other nodes (or anyone) opened to this node. */
  readonly connectionsAccepted: number
  /** Connections open now, both directions. */
  readonly connectionsOpen: number
  /** Connections closed for a frame this node could not read (garbage, oversized, unexpected). */
  readonly badFrames: number
  /** Hellos this node refused: versions that do not overlap, a wrong secret, no hello in time, another node than meant. */
  readonly refusedHellos: number
  /** Requests for a service this node does not serve. */
  readonly unknownServices: number
  /** Requests whose payload did not decode with their service's schema. */
  readonly undecodableRequests: number
}

/** This node's link: a {@link Remote.Transport} with where it listens and its counters. */
export interface NodeLink extends Remote.Transport {
  /** What this node announces: `advertise:port`. */
  readonly address: string
  /** The port it listens on. */
  readonly port: number
  /** The counters so far. */
  readonly counts: () => Counts
  /** Destroys every connection now, both directions (tests: a peer that drops mid-request). */
  readonly unsafeDropConnections: () => void
}

type Frame = Record<string, unknown>

const packr = new Packr({ useRecords: false })

/** One frame's bytes: its length, then its MessagePack. Throws when `frame` cannot be encoded. */
const encodeFrame = (frame: Frame): Buffer => {
  const body = packr.pack(frame)
  const bytes = Buffer.allocUnsafe(4 + body.length)
  bytes.writeUInt32BE(body.length, 0)
  body.copy(bytes, 4)
  return bytes
}

/** A frame from its MessagePack, or `undefined` when it is not one. */
const decodeFrame = (bytes: Buffer): Frame | undefined => {
  try {
    const value: unknown = packr.unpack(bytes)
    return typeof value === "object" && value !== null && !Array.isArray(value) && typeof (value as Frame).t === "string"
      ? value as Frame
      : undefined
  } catch {
    return undefined
  }
}

/** Cuts a byte stream into frames. */
class Reader {
  private chunks: Array<Buffer> = []
  private total = 0
  private need: number | undefined = undefined
  constructor(private readonly max: number) {}

  /** The frames `chunk` completes, or why the stream must close. */
  push(chunk: Buffer): Array<Buffer> | string {
    this.chunks.push(chunk)
    this.total += chunk.length
    const frames: Array<Buffer> = []
    for (;;) {
      if (this.need === undefined) {
        if (this.total < 4) break
        const length = this.take(4).readUInt32BE(0)
        if (length > this.max) return `a frame of ${length} bytes (the limit is ${this.max})`
        if (length === 0) return "an empty frame"
        this.need = length
      }
      if (this.total < this.need) break
      frames.push(this.take(this.need))
      this.need = undefined
    }
    return frames
  }

  private take(n: number): Buffer {
    this.total -= n
    const first = this.chunks[0]
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift()
      else this.chunks[0] = first.subarray(n)
      return first.subarray(0, n)
    }
    const out = Buffer.allocUnsafe(n)
    let at = 0
    while (at < n) {
      const chunk = this.chunks[0]
      const k = Math.min(chunk.length, n - at)
      chunk.copy(out, at, 0, k)
      at += k
      if (k === chunk.length) this.chunks.shift()
      else this.chunks[0] = chunk.subarray(k)
    }
    return out
  }
}

const isVersion = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0

/** The peer's range from its hello, or `undefined` when the hello is malformed. */
const helloOf = (frame: Frame): { readonly node: string; readonly range: NodeProtocol.Range; readonly v: number; readonly nonce: Uint8Array } | undefined =>
  frame.t === "hello" && typeof frame.node === "string" && isVersion(frame.min) && isVersion(frame.max) &&
    frame.nonce instanceof Uint8Array && frame.nonce.length >= 16 && frame.nonce.length <= 64
    ? { node: frame.node, range: { min: frame.min, max: frame.max }, v: isVersion(frame.v) ? frame.v : frame.max, nonce: frame.nonce }
    : undefined

const mac = (secret: Uint8Array, role: "client" | "server", from: string, to: string, nonce: Uint8Array): Buffer =>
  crypto.createHmac("sha256", secret).update(`fleetvisor node link|${role}|${from}|${to}|`).update(nonce).digest()

const sameMac = (given: unknown, expected: Buffer) =>
  given instanceof Uint8Array && given.length === expected.length && crypto.timingSafeEqual(given, expected)

const maxDefectMessage = 2_000

const defect = (message: string): Remote.RemoteReply => ({
  _tag: "Defect",
  message: message.length > maxDefectMessage ? `${message.slice(0, maxDefectMessage)}…` : message
})

/** A reply from the wire, or a Defect saying it was not one. */
const replyOf = (value: unknown): Remote.RemoteReply => {
  if (typeof value === "object" && value !== null) {
    const reply = value as Record<string, unknown>
    if (reply._tag === "Success") return { _tag: "Success", value: reply.value }
    if (reply._tag === "Failure") return { _tag: "Failure", error: reply.error }
    if (reply._tag === "Defect" && typeof reply.message === "string") return defect(reply.message)
  }
  return defect("a malformed reply")
}

const exitReply = (exit: Exit.Exit<Remote.RemoteReply>): Remote.RemoteReply => {
  if (Exit.isSuccess(exit)) return exit.value
  return defect(Exit.isInterrupted(exit) ? "the handler was interrupted" : "the handler died")
}

/** One connection this node opened to another. */
interface Outgoing {
  readonly address: string
  readonly socket: net.Socket
  state: "connecting" | "open" | "closed"
  /** Settles once: `undefined` when the welcome came, else why the connection is of no use. */
  readonly ready: Promise<Remote.NodeDown | Remote.IncompatibleNode | undefined>
  /** The requests written and not answered: each settles with its reply, or with why its outcome is unknown. */
  readonly pending: Map<number, (outcome: Remote.RemoteReply | string) => void>
}

/**
 * Reads the cluster's shared secret from `file` (`CLUSTER_SECRET_FILE`): its bytes without
 * surrounding whitespace, at least 16 of them. A file others may read is logged as a warning.
 */
export const readSecret = (file: string): Effect.Effect<Uint8Array, InvalidSettings> =>
  Effect.gen(function*() {
    const read = yield* Effect.try({
      try: () => ({ text: fs.readFileSync(file), mode: fs.statSync(file).mode }),
      catch: (error) => new InvalidSettings({ reason: `CLUSTER_SECRET_FILE ${file} cannot be read: ${String(error)}` })
    })
    const secret = Buffer.from(read.text.toString("utf8").trim(), "utf8")
    if (secret.length < 16) {
      return yield* Effect.fail(new InvalidSettings({ reason: `CLUSTER_SECRET_FILE ${file} holds fewer than 16 bytes` }))
    }
    if ((read.mode & 0o077) !== 0) {
      yield* Effect.logWarning(`CLUSTER_SECRET_FILE ${file} is readable by others than its owner (chmod 600)`)
    }
    return secret
  })

/**
 * Starts this node's link: listens until the scope closes (when every connection is closed and
 * every handler still running is interrupted). Fails with `ListenFailed` when it cannot listen.
 */
export const make = (options: Options): Effect.Effect<NodeLink, ListenFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const self = options.node
    const versions = options.versions ?? NodeProtocol.range
    const maxFrame = options.maxFrameBytes ?? defaultMaxFrameBytes
    const helloTimeout = options.helloTimeout ?? 5_000
    const secret = options.secret
    const bind = options.bind ?? "0.0.0.0"
    const counts = {
      requestsSent: 0,
      requestsServed: 0,
      localRequests: 0,
      failures: { NodeDown: 0, RemoteTimeout: 0, IncompatibleNode: 0, RemoteDefect: 0 },
      lateReplies: 0,
      lostReplies: 0,
      connectionsOpened: 0,
      connectionsAccepted: 0,
      badFrames: 0,
      refusedHellos: 0,
      unknownServices: 0,
      undecodableRequests: 0
    }
    const services = new Map<string, (payload: unknown, from: string) => Effect.Effect<Remote.RemoteReply>>()
    const incoming = new Set<net.Socket>()
    const outgoing = new Map<string, Outgoing>()
    let closing = false
    let sequence = 0
    const run = yield* FiberSet.makeRuntime<never>()
    const runtime = yield* Effect.runtime<never>()
    const sampler = LogSampler.make({ windowMillis: 60_000 })
    /** A warning, at most one a minute per key (peers can repeat their mistakes at will). */
    const warn = (key: string, what: string, message: () => string) => {
      const log = sampler.sample(LogLevel.Warning, key, what, () => `node link: ${message()}`)
      if (log !== undefined) Runtime.runFork(runtime)(log)
    }
    const who = (socket: net.Socket) => `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`
    const badFrame = (socket: net.Socket, peer: string | undefined, reason: string) => {
      counts.badFrames++
      warn("bad-frame", "node link: connections closed for a bad frame", () =>
        `closed the connection ${peer === undefined ? "from" : `with node ${LogSampler.excerpt(peer)} at`} ${who(socket)}: ${reason}`)
      socket.destroy()
    }
    const refused = (key: string, message: () => string) => {
      counts.refusedHellos++
      warn(`refused:${key}`, "node link: peers refused", message)
    }
    const write = (socket: net.Socket, frame: Frame) => {
      if (!socket.destroyed) socket.write(encodeFrame(frame))
    }
    /** Refuses a peer in the hello: says why, then closes (at once if it does not close itself). */
    const refuse = (socket: net.Socket, reason: string) => {
      if (socket.destroyed) return
      socket.end(encodeFrame({ t: "refused", reason }))
      setTimeout(() => socket.destroy(), 1_000).unref()
    }

    // Listening: the other nodes' requests.
    const serveRequest = (socket: net.Socket, from: string, frame: Frame) => {
      const id = frame.id
      const respond = (reply: Remote.RemoteReply) => {
        if (socket.destroyed) {
          counts.lostReplies++
          return
        }
        let bytes: Buffer
        try {
          bytes = encodeFrame({ t: "res", id, reply })
        } catch (error) {
          bytes = encodeFrame({ t: "res", id, reply: defect(`the reply cannot be encoded: ${String(error)}`) })
        }
        if (bytes.length - 4 > maxFrame) bytes = encodeFrame({ t: "res", id, reply: defect(`the reply is longer than ${maxFrame} bytes`) })
        socket.write(bytes)
        counts.requestsServed++
      }
      const handler = services.get(frame.service as string)
      if (handler === undefined) {
        counts.unknownServices++
        return respond(defect(`node ${self} has no service ${String(frame.service)}`))
      }
      // Each request in a fiber of its own: an urgent one never waits behind slow handlers.
      run(handler(frame.payload, from)).addObserver((exit) => respond(exitReply(exit)))
    }

    const accept = (socket: net.Socket) => {
      if (closing) return void socket.destroy()
      counts.connectionsAccepted++
      incoming.add(socket)
      socket.setNoDelay(true)
      socket.setKeepAlive(true, 5_000)
      const reader = new Reader(maxFrame)
      const nonce = crypto.randomBytes(16)
      let peer: string | undefined
      const timer = setTimeout(() => {
        refused("timeout", () => `no hello from ${who(socket)} within ${helloTimeout} ms`)
        socket.destroy()
      }, helloTimeout)
      socket.on("error", () => {})
      socket.on("close", () => {
        clearTimeout(timer)
        incoming.delete(socket)
      })
      socket.on("data", (chunk: Buffer) => {
        const frames = reader.push(chunk)
        if (typeof frames === "string") return badFrame(socket, peer, frames)
        for (const bytes of frames) {
          if (socket.destroyed) return
          const frame = decodeFrame(bytes)
          if (frame === undefined) return badFrame(socket, peer, "not a frame")
          if (peer !== undefined) {
            if (frame.t !== "req" || !Number.isSafeInteger(frame.id) || typeof frame.service !== "string") {
              return badFrame(socket, peer, `an unexpected ${LogSampler.excerpt(String(frame.t), 20)} frame`)
            }
            serveRequest(socket, peer, frame)
            continue
          }
          const hello = helloOf(frame)
          if (hello === undefined) return badFrame(socket, peer, "no hello")
          clearTimeout(timer)
          const version = NodeProtocol.agree(versions, hello.range)
          if (version === undefined) {
            refused("versions", () =>
              `refused node ${LogSampler.excerpt(hello.node)} at ${who(socket)}: it speaks node protocol ${hello.range.min}–${hello.range.max}, this node ${versions.min}–${versions.max}`)
            return refuse(socket, "versions")
          }
          if (secret !== undefined && !sameMac(frame.mac, mac(secret, "client", hello.node, self, nonce))) {
            refused("secret", () => `refused node ${LogSampler.excerpt(hello.node)} at ${who(socket)}: wrong or no cluster secret`)
            return refuse(socket, "secret")
          }
          peer = hello.node
          write(socket, {
            t: "welcome",
            v: version,
            ...(secret === undefined ? {} : { mac: mac(secret, "server", self, hello.node, hello.nonce) })
          })
        }
      })
      write(socket, { t: "hello", v: versions.max, node: self, min: versions.min, max: versions.max, nonce })
    }

    const server = net.createServer(accept)
    server.maxConnections = options.maxConnections ?? 256
    yield* Effect.async<void, ListenFailed>((resume) => {
      const failed = (error: Error) => resume(Effect.fail(new ListenFailed({ bind, port: options.port ?? 0, reason: error.message })))
      server.once("error", failed)
      server.listen(options.port ?? 0, bind, () => {
        server.off("error", failed)
        resume(Effect.void)
      })
    })
    server.on("error", (error) => warn("server", "node link: server errors", () => `server error: ${error.message}`))
    const port = (server.address() as net.AddressInfo).port
    const address = formatAddress(options.advertise ?? os.hostname(), port)

    const dropAll = () => {
      for (const socket of incoming) socket.destroy()
      for (const connection of outgoing.values()) connection.socket.destroy()
    }
    yield* Effect.addFinalizer(() =>
      Effect.async<void>((resume) => {
        closing = true
        server.close(() => resume(Effect.void))
        dropAll()
      })
    )

    // Connecting: this node's requests.
    const connect = (node: string, address: string, target: { readonly host: string; readonly port: number }): Outgoing => {
      counts.connectionsOpened++
      const socket = net.connect({ host: target.host, port: target.port })
      socket.setNoDelay(true)
      socket.setKeepAlive(true, 5_000)
      const reader = new Reader(maxFrame)
      const nonce = crypto.randomBytes(16)
      let phase: "hello" | "welcome" | "open" = "hello"
      /** The version the other node announced in its hello. */
      let theirs = 0
      let lastError: string | undefined
      let settle!: (result: Remote.NodeDown | Remote.IncompatibleNode | undefined) => void
      const ready = new Promise<Remote.NodeDown | Remote.IncompatibleNode | undefined>((resolve) => (settle = resolve))
      let settled = false
      const finish = (result: Remote.NodeDown | Remote.IncompatibleNode | undefined) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        settle(result)
      }
      const down = (reason: string) => new Remote.NodeDown({ node, reason })
      const connection: Outgoing = { address, socket, state: "connecting", ready, pending: new Map() }
      const timer = setTimeout(() => {
        finish(down(`no welcome from ${address} within ${helloTimeout} ms`))
        socket.destroy()
      }, helloTimeout)
      socket.on("error", (error) => void (lastError = error.message))
      socket.on("close", () => {
        connection.state = "closed"
        if (outgoing.get(node) === connection) outgoing.delete(node)
        finish(down(lastError === undefined ? `the connection to ${address} closed before its welcome` : `${address}: ${lastError}`))
        const pending = [...connection.pending.values()]
        connection.pending.clear()
        for (const fail of pending) fail(`the connection dropped after the request was sent${lastError === undefined ? "" : ` (${lastError})`}`)
      })
      socket.on("data", (chunk: Buffer) => {
        const frames = reader.push(chunk)
        if (typeof frames === "string") return badFrame(socket, node, frames)
        for (const bytes of frames) {
          if (socket.destroyed) return
          const frame = decodeFrame(bytes)
          if (frame === undefined) return badFrame(socket, node, "not a frame")
          if (phase === "open") {
            if (frame.t !== "res" || !Number.isSafeInteger(frame.id)) return badFrame(socket, node, "an unexpected frame")
            const answer = connection.pending.get(frame.id as number)
            if (answer === undefined) {
              counts.lateReplies++
              continue
            }
            connection.pending.delete(frame.id as number)
            answer(replyOf(frame.reply))
            continue
          }
          if (phase === "hello") {
            const hello = helloOf(frame)
            if (hello === undefined) return badFrame(socket, node, "no hello")
            if (hello.node !== node) {
              refused("identity", () => `${address} answered as node ${LogSampler.excerpt(hello.node)}, not ${node}`)
              finish(down(`${address} is node ${hello.node} now`))
              return void socket.destroy()
            }
            const ours = { min: versions.min, max: versions.max }
            // Said in full even when refused, so that the other node logs why.
            write(socket, {
              t: "hello",
              v: versions.max,
              node: self,
              min: versions.min,
              max: versions.max,
              nonce,
              ...(secret === undefined ? {} : { mac: mac(secret, "client", self, node, hello.nonce) })
            })
            if (NodeProtocol.agree(versions, hello.range) === undefined) {
              refused("versions", () =>
                `refused node ${node}: it speaks node protocol ${hello.range.min}–${hello.range.max}, this node ${versions.min}–${versions.max}`)
              finish(new Remote.IncompatibleNode({ node, theirs: hello.v, ours }))
              return void socket.end()
            }
            theirs = hello.v
            phase = "welcome"
            continue
          }
          // The welcome, or a refusal.
          if (frame.t === "refused") {
            const reason = String(frame.reason)
            finish(
              reason === "versions"
                ? new Remote.IncompatibleNode({ node, theirs: theirs, ours: { min: versions.min, max: versions.max } })
                : down(reason === "secret" ? "it refused this node's cluster secret" : `it refused this node (${LogSampler.excerpt(reason, 40)})`)
            )
            return void socket.destroy()
          }
          if (frame.t !== "welcome") return badFrame(socket, node, "no welcome")
          if (secret !== undefined && !sameMac(frame.mac, mac(secret, "server", node, self, nonce))) {
            refused("secret", () => `node ${node} at ${address} does not know the cluster secret`)
            finish(down("it does not know the cluster secret"))
            return void socket.destroy()
          }
          phase = "open"
          connection.state = "open"
          finish(undefined)
        }
      })
      return connection
    }

    /** The open connection to `node`, opened if need be; fails while nothing was sent. */
    const connectionTo = (node: string, timeoutMillis: number) =>
      Effect.suspend((): Effect.Effect<Outgoing, Remote.NodeDown | Remote.IncompatibleNode> => {
        if (closing) return Effect.fail(new Remote.NodeDown({ node, reason: "this node's link is closing" }))
        const found = options.peers(node)
        if (typeof found !== "string") return Effect.fail(new Remote.NodeDown({ node, reason: found.reason }))
        const target = parseAddress(found)
        if (target === undefined) {
          return Effect.fail(new Remote.NodeDown({ node, reason: `its address ${LogSampler.excerpt(found, 80)} is not host:port` }))
        }
        let connection = outgoing.get(node)
        if (connection === undefined || connection.state === "closed" || connection.address !== found) {
          // A node that came back elsewhere: its old connection is of no use.
          connection?.socket.destroy()
          connection = connect(node, found, target)
          outgoing.set(node, connection)
        }
        if (connection.state === "open") return Effect.succeed(connection)
        const opening = connection
        return Effect.async<Outgoing, Remote.NodeDown | Remote.IncompatibleNode>((resume) => {
          let waiting = true
          const timer = setTimeout(() => {
            waiting = false
            resume(Effect.fail(new Remote.NodeDown({ node, reason: `not connected within ${timeoutMillis} ms` })))
          }, timeoutMillis)
          void opening.ready.then((failure) => {
            if (!waiting) return
            waiting = false
            clearTimeout(timer)
            resume(failure === undefined ? Effect.succeed(opening) : Effect.fail(failure))
          })
          return Effect.sync(() => {
            waiting = false
            clearTimeout(timer)
          })
        })
      })

    const send = (node: string, service: string, payload: unknown, options: Remote.RequestOptions, started: number) => (connection: Outgoing) =>
      Effect.async<Remote.RemoteReply, Remote.NodeDown | Remote.RemoteTimeout>((resume) => {
        const remaining = options.timeoutMillis - (Date.now() - started)
        if (connection.state !== "open" || connection.socket.destroyed || !connection.socket.writable) {
          return resume(Effect.fail(new Remote.NodeDown({ node, reason: "its connection closed before the request was sent" })))
        }
        if (remaining <= 0) return resume(Effect.fail(new Remote.NodeDown({ node, reason: `not connected within ${options.timeoutMillis} ms` })))
        // A peer that reads nothing (hung, partitioned) must not pile up requests here without end.
        if (connection.socket.writableLength > maxBuffered) {
          return resume(Effect.fail(new Remote.NodeDown({ node, reason: `it reads nothing: ${connection.socket.writableLength} bytes wait to be sent` })))
        }
        const id = ++sequence
        let bytes: Buffer
        try {
          bytes = encodeFrame({ t: "req", id, service, payload, ...(options.urgent === true ? { urgent: true } : {}), deadline: remaining })
        } catch (error) {
          return resume(Effect.dieMessage(`a request to ${service} cannot be encoded: ${String(error)}`))
        }
        if (bytes.length - 4 > maxFrame) return resume(Effect.dieMessage(`a request to ${service} is longer than ${maxFrame} bytes`))
        const unknown = (reason: string) =>
          Effect.fail(new Remote.RemoteTimeout({ node, service, timeoutMillis: options.timeoutMillis, reason }))
        const timer = setTimeout(() => {
          connection.pending.delete(id)
          resume(unknown(`no reply within ${options.timeoutMillis} ms`))
        }, remaining)
        connection.pending.set(id, (outcome) => {
          clearTimeout(timer)
          resume(typeof outcome === "string" ? unknown(outcome) : Effect.succeed(outcome))
        })
        connection.socket.write(bytes)
        counts.requestsSent++
        return Effect.sync(() => {
          clearTimeout(timer)
          connection.pending.delete(id)
        })
      })

    /** A request of this node to itself: its own handler, through MessagePack as over the wire. */
    const local = (service: string, payload: unknown, options: Remote.RequestOptions) =>
      Effect.suspend(() => {
        counts.localRequests++
        const handler = services.get(service)
        if (handler === undefined) return Effect.succeed(defect(`node ${self} has no service ${service}`))
        const wire = packr.unpack(packr.pack(payload))
        return Effect.async<Remote.RemoteReply, Remote.RemoteTimeout>((resume) => {
          let waiting = true
          const timer = setTimeout(() => {
            waiting = false
            resume(Effect.fail(new Remote.RemoteTimeout({ node: self, service, timeoutMillis: options.timeoutMillis, reason: `no reply within ${options.timeoutMillis} ms` })))
          }, options.timeoutMillis)
          run(handler(wire, self)).addObserver((exit) => {
            if (!waiting) return
            waiting = false
            clearTimeout(timer)
            const reply = exitReply(exit)
            try {
              resume(Effect.succeed(replyOf(packr.unpack(packr.pack(reply)))))
            } catch (error) {
              resume(Effect.succeed(defect(`the reply cannot be encoded: ${String(error)}`)))
            }
          })
          return Effect.sync(() => {
            waiting = false
            clearTimeout(timer)
          })
        })
      })

    const request: Remote.Transport["request"] = (node, service, payload, options) =>
      (node === self
        ? local(service, payload, options)
        : Effect.suspend(() => {
          const started = Date.now()
          return Effect.flatMap(connectionTo(node, options.timeoutMillis), send(node, service, payload, options, started))
        })).pipe(
          Effect.tapBoth({
            onFailure: (error) => Effect.sync(() => void counts.failures[error._tag]++),
            onSuccess: (reply) => Effect.sync(() => void (reply._tag === "Defect" && counts.failures.RemoteDefect++))
          })
        )

    const serve: Remote.Transport["serve"] = (service, handler) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          services.set(service, handler)
        }),
        () =>
          Effect.sync(() => {
            if (services.get(service) === handler) services.delete(service)
          })
      )

    return {
      node: self,
      address,
      port,
      request,
      serve,
      rejected: () => void counts.undecodableRequests++,
      counts: () => ({
        ...counts,
        failures: { ...counts.failures },
        connectionsOpen: incoming.size + [...outgoing.values()].filter((c) => c.state !== "closed").length
      }),
      unsafeDropConnections: dropAll
    } satisfies NodeLink
  })
