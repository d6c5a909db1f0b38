import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Schema, Scope } from "effect"
import { Packr } from "msgpackr"
import * as net from "node:net"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Remote } from "../../src/actors/index.js"
import * as Membership from "../../src/cluster/Membership.js"
import * as NodeLink from "../../src/cluster/NodeLink.js"
import { connect, eventually, redisServer } from "./fixtures.js"

class NotOwner extends Schema.TaggedError<NotOwner>()("NotOwner", { robot: Schema.String, owner: Schema.String }) {}

const Move = Remote.service("test/move", {
  request: Schema.Struct({ robot: Schema.String, x: Schema.Number, token: Schema.BigInt }),
  success: Schema.Struct({ robot: Schema.String, at: Schema.Date, token: Schema.BigInt }),
  failure: NotOwner
})

const Echo = Remote.service("test/echo", { request: Schema.String, success: Schema.String, failure: Schema.Never })

const at = new Date("2026-12-07T04:00:00.000Z")

/** A link on 127.0.0.1 that finds its peers in `book` (filled as links start). */
const startLink = (node: string, book: Record<string, string>, options: Partial<NodeLink.Options> = {}) =>
  Effect.gen(function*() {
    const link = yield* NodeLink.make({
      node,
      peers: NodeLink.fixed(book),
      bind: "127.0.0.1",
      advertise: "127.0.0.1",
      helloTimeout: 1_000,
      ...options
    })
    book[node] = link.address
    return link
  })

/** A link in a scope of its own, so that a test can close it. */
const startClosable = (node: string, book: Record<string, string>, options: Partial<NodeLink.Options> = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const link = yield* startLink(node, book, options).pipe(Scope.extend(scope))
    return { link, close: Scope.close(scope, Exit.void) }
  })

const serveMove = (link: NodeLink.NodeLink) =>
  Remote.serve(link, Move, ({ robot, token }, from) =>
    robot === "arm-9"
      ? Effect.fail(new NotOwner({ robot, owner: "c" }))
      : Effect.succeed({ robot: `${robot} for ${from}`, at, token: token + 1n }))

/** Writes `bytes` to `port` and resolves when the other side closes the connection (or after 3 s, `false`). */
const sendRaw = (port: number, bytes: Buffer) =>
  Effect.promise(() =>
    new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port }, () => socket.write(bytes))
      const timer = setTimeout(() => {
        socket.destroy()
        resolve(false)
      }, 3_000)
      socket.on("error", () => {})
      socket.on("data", () => {})
      socket.on("close", () => {
        clearTimeout(timer)
        resolve(true)
      })
    })
  )

const frame = (body: Buffer) => {
  const out = Buffer.alloc(4 + body.length)
  out.writeUInt32BE(body.length, 0)
  body.copy(out, 4)
  return out
}

describe("NodeLink", () => {
  it.scopedLive("a typed ask over TCP between nodes found through the membership; NodeDown for a node that is not live", () =>
    Effect.gen(function*() {
      const server = yield* redisServer
      let aMembership: Membership.Membership | undefined
      let bMembership: Membership.Membership | undefined
      const a = yield* NodeLink.make({ node: "a", peers: NodeLink.fromMembership(() => aMembership), bind: "127.0.0.1", advertise: "127.0.0.1" })
      const bScope = yield* Scope.make()
      const b = yield* NodeLink.make({ node: "b", peers: NodeLink.fromMembership(() => bMembership), bind: "127.0.0.1", advertise: "127.0.0.1" })
        .pipe(Scope.extend(bScope))
      yield* serveMove(b).pipe(Scope.extend(bScope))
      const move = Remote.ref(a, "b", Move)
      // Not joined yet: nothing to look up.
      expect(yield* Effect.flip(move.ask({ robot: "arm-1", x: 1, token: 1n }))).toMatchObject({ _tag: "NodeDown", node: "b" })

      aMembership = yield* Membership.make({ redis: yield* connect(server), node: "a", protocol: 1, ttl: 1_000, pollInterval: 50, address: a.address })
      bMembership = yield* Membership.make({ redis: yield* connect(server), node: "b", protocol: 1, ttl: 1_000, pollInterval: 50, address: b.address })
        .pipe(Scope.extend(bScope))
      yield* eventually("a sees b", () => aMembership!.unsafeLive().some((m) => m.id === "b"))
      expect(aMembership.unsafeLive().map((m) => [m.id, m.address])).toEqual([["a", a.address], ["b", b.address]])
      expect(b.address).toBe(`127.0.0.1:${b.port}`)

      const moved = yield* move.ask({ robot: "arm-1", x: 1, token: 41n })
      expect(moved).toEqual({ robot: "arm-1 for a", at, token: 42n })
      expect(moved.at).toBeInstanceOf(Date)
      const refused = yield* Effect.flip(move.ask({ robot: "arm-9", x: 1, token: 1n }))
      expect(refused).toBeInstanceOf(NotOwner)
      // b asks a back over a connection of its own.
      yield* Remote.serve(a, Echo, (text, from) => Effect.succeed(`${text} from ${from}`))
      expect(yield* Remote.ref(b, "a", Echo).ask("hi")).toBe("hi from b")
      // A node asks itself through the same transport.
      expect(yield* Remote.ref(a, "a", Echo).ask("me")).toBe("me from a")

      const notLive = yield* Effect.flip(Remote.ref(a, "c", Move).ask({ robot: "arm-1", x: 1, token: 1n }))
      expect(notLive).toMatchObject({ _tag: "NodeDown", node: "c", reason: "not live" })
      const missing = yield* Effect.flip(Remote.ref(a, "b", { ...Echo, name: "test/missing" }).ask("x"))
      expect(missing._tag).toBe("RemoteDefect")

      yield* Scope.close(bScope, Exit.void)
      yield* eventually("b left", () => !aMembership!.unsafeLive().some((m) => m.id === "b"))
      expect((yield* Effect.flip(move.ask({ robot: "arm-1", x: 1, token: 1n })))._tag).toBe("NodeDown")
      const counts = a.counts()
      expect(counts.requestsSent).toBe(3)
      expect(counts.localRequests).toBe(1)
      expect(counts.failures).toEqual({ NodeDown: 3, RemoteTimeout: 0, IncompatibleNode: 0, RemoteDefect: 1 })
      expect(counts.requestsServed).toBe(1)
      expect(counts.connectionsOpened).toBe(1)
    }))

  it.scopedLive("a request in flight when the peer drops the connection is a RemoteTimeout (outcome unknown); the next one reconnects", () =>
    Effect.gen(function*() {
      const book: Record<string, string> = {}
      const a = yield* startLink("a", book)
      const b = yield* startLink("b", book)
      const started = yield* Deferred.make<void>()
      yield* Remote.serve(b, Echo, (text) => text === "hang" ? Effect.zipRight(Deferred.succeed(started, undefined), Effect.never) : Effect.succeed(text))
      const echo = Remote.ref(a, "b", Echo)
      expect(yield* echo.ask("first")).toBe("first")
      const asked = yield* Effect.fork(echo.ask("hang", { timeout: "10 seconds" }))
      yield* Deferred.await(started)
      b.unsafeDropConnections()
      const failure = yield* Effect.flip(Effect.flatten(Fiber.await(asked)))
      expect(failure).toMatchObject({ _tag: "RemoteTimeout", node: "b", service: "test/echo", timeoutMillis: 10_000 })
      expect(failure._tag === "RemoteTimeout" && failure.reason).toContain("dropped after the request was sent")
      // Not retried: the next request opens a new connection.
      expect(yield* echo.ask("again")).toBe("again")
      expect(a.counts().connectionsOpened).toBe(2)
      expect(a.counts().failures.RemoteTimeout).toBe(1)

      // No reply within the timeout: RemoteTimeout too.
      const slow = yield* Effect.flip(echo.ask("hang", { timeout: "200 millis" }))
      expect(slow).toMatchObject({ _tag: "RemoteTimeout", timeoutMillis: 200 })
    }))

  it.scopedLive("a node that is gone (connection refused) is NodeDown: nothing was sent", () =>
    Effect.gen(function*() {
      const book: Record<string, string> = {}
      const a = yield* startLink("a", book)
      const b = yield* startClosable("b", book)
      yield* Remote.serve(b.link, Echo, Effect.succeed).pipe(Effect.forkScoped)
      yield* b.close
      const down = yield* Effect.flip(Remote.ref(a, "b", Echo).ask("x"))
      expect(down).toMatchObject({ _tag: "NodeDown", node: "b" })
      expect(down.message).toContain("ECONNREFUSED")
      book.c = "not an address"
      expect((yield* Effect.flip(Remote.ref(a, "c", Echo).ask("x")))._tag).toBe("NodeDown")
      expect(a.counts().requestsSent).toBe(0)
    }))

  it.scopedLive("versions that do not overlap: IncompatibleNode, refused and counted on both sides; overlapping ones agree", () =>
    Effect.gen(function*() {
      const book: Record<string, string> = {}
      const a = yield* startLink("a", book)
      const newer = yield* startLink("newer", book, { versions: { min: 2, max: 3 } })
      const bridge = yield* startLink("bridge", book, { versions: { min: 1, max: 2 } })
      yield* Remote.serve(newer, Echo, Effect.succeed)
      yield* Remote.serve(bridge, Echo, Effect.succeed)
      const incompatible = yield* Effect.flip(Remote.ref(a, "newer", Echo).ask("x"))
      expect(incompatible).toMatchObject({ _tag: "IncompatibleNode", node: "newer", theirs: 3, ours: { min: 1, max: 1 } })
      // The other way round, seen from the newer node.
      yield* Remote.serve(a, Echo, Effect.succeed)
      const back = yield* Effect.flip(Remote.ref(newer, "a", Echo).ask("x"))
      expect(back).toMatchObject({ _tag: "IncompatibleNode", node: "a", theirs: 1, ours: { min: 2, max: 3 } })
      expect(back.message).toBe("node a speaks node protocol 1, this node 2–3")
      yield* eventually("both nodes counted two refusals", () => a.counts().refusedHellos === 2 && newer.counts().refusedHellos === 2)
      expect(a.counts().failures.IncompatibleNode).toBe(1)
      expect(a.counts().requestsSent).toBe(0)
      // 1–1 and 1–2 agree on 1.
      expect(yield* Remote.ref(a, "bridge", Echo).ask("ok")).toBe("ok")
      expect(yield* Remote.ref(bridge, "a", Echo).ask("ok")).toBe("ok")
    }))

  it.scopedLive("garbage, an oversized frame and a frame that is not MessagePack are refused and counted; good requests go on", () =>
    Effect.gen(function*() {
      const book: Record<string, string> = {}
      const a = yield* startLink("a", book)
      const b = yield* startLink("b", book, { maxFrameBytes: 64 * 1024 })
      yield* Remote.serve(b, Echo, Effect.succeed)
      const echo = Remote.ref(a, "b", Echo)
      expect(yield* echo.ask("before")).toBe("before")
      expect(yield* sendRaw(b.port, Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))).toBe(true)
      const oversized = Buffer.alloc(8)
      oversized.writeUInt32BE(2 * 1024 * 1024, 0)
      expect(yield* sendRaw(b.port, oversized)).toBe(true)
      expect(yield* sendRaw(b.port, frame(Buffer.from([0xc1, 0xc1, 0xc1])))).toBe(true)
      const packr = new Packr({ useRecords: false })
      expect(yield* sendRaw(b.port, frame(packr.pack({ t: "req", id: 1, service: "test/echo", payload: "no hello" })))).toBe(true)
      expect(yield* sendRaw(b.port, frame(packr.pack([1, 2, 3])))).toBe(true)
      yield* eventually("five bad frames counted", () => b.counts().badFrames === 5)
      // A frame the request's own limit refuses is the caller's bug: it dies, nothing is sent.
      const big = yield* Effect.exit(echo.ask("x".repeat(100 * 1024)))
      expect(Exit.isFailure(big) && Exit.causeOption(big)._tag === "Some").toBe(true)
      expect(yield* echo.ask("after")).toBe("after")
      // A request that does not decode with the service's schema: a Defect, counted where served.
      const raw = yield* a.request("b", "test/echo", { not: "a string" }, { timeoutMillis: 1_000 })
      expect(raw._tag).toBe("Defect")
      expect(b.counts().undecodableRequests).toBe(1)
      // A silent client is dropped after the hello timeout.
      const silent = yield* sendRaw(b.port, Buffer.alloc(0))
      expect(silent).toBe(true)
      expect(b.counts().refusedHellos).toBe(1)
    }))

  it.scopedLive("an urgent request is answered while normal handlers are blocked", () =>
    Effect.gen(function*() {
      const book: Record<string, string> = {}
      const a = yield* startLink("a", book)
      const b = yield* startLink("b", book)
      const Stop = Remote.service("test/stop", { request: Schema.String, success: Schema.String, failure: Schema.Never })
      let blocked = 0
      yield* Remote.serve(b, Echo, () => Effect.zipRight(Effect.sync(() => blocked++), Effect.never))
      yield* Remote.serve(b, Stop, (robot) => Effect.succeed(`stopped ${robot}`))
      yield* Effect.forkScoped(Effect.forEach(Array.from({ length: 50 }, (_, i) => i), (i) =>
        Effect.ignore(Remote.ref(a, "b", Echo).ask(`move ${i}`, { timeout: "30 seconds" })), { concurrency: "unbounded" }))
      yield* eventually("50 handlers blocked", () => blocked === 50)
      // The blocked handlers never finish: an urgent request queued behind them would never be answered.
      expect(yield* Remote.ref(a, "b", Stop).ask("arm-1", { urgent: true, timeout: "10 seconds" })).toBe("stopped arm-1")
      expect(b.counts().requestsServed).toBe(1)
    }))

  it.scopedLive("with a shared secret: the same secret talks, another or none is refused on both sides", () =>
    Effect.gen(function*() {
      const book: Record<string, string> = {}
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nodelink-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const file = path.join(dir, "secret")
      fs.writeFileSync(file, "correct horse battery staple\n", { mode: 0o600 })
      const secret = yield* NodeLink.readSecret(file)
      fs.writeFileSync(path.join(dir, "short"), "short", { mode: 0o600 })
      expect((yield* Effect.flip(NodeLink.readSecret(path.join(dir, "short"))))._tag).toBe("InvalidSettings")
      expect((yield* Effect.flip(NodeLink.readSecret(path.join(dir, "missing"))))._tag).toBe("InvalidSettings")

      const a = yield* startLink("a", book, { secret })
      const b = yield* startLink("b", book, { secret })
      const stranger = yield* startLink("stranger", book, { secret: Buffer.from("another secret of enough bytes") })
      const open = yield* startLink("open", book)
      for (const link of [a, b, stranger, open]) yield* Remote.serve(link, Echo, Effect.succeed)
      expect(yield* Remote.ref(a, "b", Echo).ask("ok")).toBe("ok")
      expect(yield* Remote.ref(b, "a", Echo).ask("ok")).toBe("ok")
      // The stranger's hello has the wrong MAC: a refuses it.
      const wrong = yield* Effect.flip(Remote.ref(stranger, "a", Echo).ask("x"))
      expect(wrong).toMatchObject({ _tag: "NodeDown", node: "a" })
      expect(wrong.message).toContain("secret")
      // a asks the stranger: the stranger refuses a's MAC.
      expect((yield* Effect.flip(Remote.ref(a, "stranger", Echo).ask("x")))._tag).toBe("NodeDown")
      // A node without a secret, both ways.
      expect((yield* Effect.flip(Remote.ref(open, "a", Echo).ask("x")))._tag).toBe("NodeDown")
      const toOpen = yield* Effect.flip(Remote.ref(a, "open", Echo).ask("x"))
      expect(toOpen.message).toContain("does not know the cluster secret")
      yield* eventually("refusals counted", () => a.counts().refusedHellos === 3 && stranger.counts().refusedHellos === 1)
      expect(a.counts().requestsSent + stranger.counts().requestsSent + open.counts().requestsSent).toBe(1)
    }))

  it.scopedLive("1,000 small asks between two nodes (figure for the docs)", () =>
    Effect.gen(function*() {
      const book: Record<string, string> = {}
      const a = yield* startLink("a", book)
      const b = yield* startLink("b", book)
      yield* serveMove(b)
      const move = Remote.ref(a, "b", Move)
      for (let i = 0; i < 100; i++) yield* move.ask({ robot: "arm-1", x: i, token: 1n })
      const times: Array<number> = []
      for (let i = 0; i < 1_000; i++) {
        const begun = performance.now()
        yield* move.ask({ robot: "arm-1", x: i, token: BigInt(i) })
        times.push(performance.now() - begun)
      }
      times.sort((x, y) => x - y)
      const median = times[500]
      const p99 = times[990]
      console.log(`node link: 1,000 asks a → b over 127.0.0.1, round trip median ${median.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms, max ${times[999].toFixed(3)} ms`)
      expect(times.length).toBe(1_000)
    }))
})
