import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Schema, Scope } from "effect"
import { Remote } from "../../src/actors/index.js"

class Busy extends Schema.TaggedError<Busy>()("Busy", { robot: Schema.String, until: Schema.Date }) {}
class NotOwner extends Schema.TaggedError<NotOwner>()("NotOwner", { robot: Schema.String, token: Schema.BigInt }) {}

const Move = Remote.service("test/move", {
  request: Schema.Struct({ robot: Schema.String, x: Schema.Number, token: Schema.BigInt }),
  success: Schema.Struct({ accepted: Schema.Boolean, at: Schema.Date }),
  failure: Schema.Union(Busy, NotOwner)
})

const at = new Date("2026-12-07T03:00:00.000Z")

/** A network of nodes a and b; b serves Move: arm-1 is busy, arm-2 belongs to another node, any other robot moves. */
const network = Effect.gen(function*() {
  const net = Remote.memoryNetwork()
  const a = net.transport("a")
  const b = net.transport("b")
  const calls: Array<string> = []
  yield* Remote.serve(b, Move, ({ robot, token }, from) =>
    Effect.suspend((): Effect.Effect<{ accepted: boolean; at: Date }, Busy | NotOwner> => {
      calls.push(`${robot} from ${from}`)
      if (robot === "arm-1") return Effect.fail(new Busy({ robot, until: at }))
      if (robot === "arm-2") return Effect.fail(new NotOwner({ robot, token: token + 1n }))
      return Effect.succeed({ accepted: true, at })
    }))
  return { net, a, b, calls, move: Remote.ref(a, "b", Move) }
})

describe("Remote", () => {
  it.scopedLive("a typed success and typed failures cross the network through their schemas", () =>
    Effect.gen(function*() {
      const { calls, move } = yield* network
      expect(move.node).toBe("b")
      expect(move.service).toBe("test/move")
      const ok = yield* move.ask({ robot: "agv-1", x: 1, token: 7n })
      expect(ok).toEqual({ accepted: true, at })
      expect(ok.at).toBeInstanceOf(Date)

      const busy = yield* Effect.flip(move.ask({ robot: "arm-1", x: 1, token: 7n }))
      expect(busy).toBeInstanceOf(Busy)
      expect(busy._tag === "Busy" && busy.until.getTime()).toBe(at.getTime())
      const notOwner = yield* Effect.flip(move.ask({ robot: "arm-2", x: 1, token: 7n }))
      expect(notOwner).toBeInstanceOf(NotOwner)
      expect(notOwner._tag === "NotOwner" && notOwner.token).toBe(8n)
      const caught = yield* move.ask({ robot: "arm-1", x: 1, token: 7n }).pipe(
        Effect.catchTag("Busy", (error) => Effect.succeed(`busy: ${error.robot}`))
      )
      expect(caught).toBe("busy: arm-1")
      expect(calls).toEqual(["agv-1 from a", "arm-1 from a", "arm-2 from a", "arm-1 from a"])
    }))

  it.scopedLive("a node that is down, unknown or cut off: NodeDown at once, and nothing reaches the handler", () =>
    Effect.gen(function*() {
      const { net, a, calls, move } = yield* network
      net.down("b")
      const down = yield* Effect.flip(move.ask({ robot: "agv-1", x: 1, token: 1n }))
      expect(down._tag).toBe("NodeDown")
      expect(down.message).toContain("nothing was sent")
      const unknown = yield* Effect.flip(Remote.ref(a, "nobody", Move).ask({ robot: "agv-1", x: 1, token: 1n }))
      expect(unknown).toMatchObject({ _tag: "NodeDown", node: "nobody" })
      net.up("b")
      net.down("a")
      expect((yield* Effect.flip(move.ask({ robot: "agv-1", x: 1, token: 1n })))._tag).toBe("NodeDown")
      net.up("a")
      expect(calls).toEqual([])
      expect((yield* move.ask({ robot: "agv-1", x: 1, token: 1n })).accepted).toBe(true)
    }))

  it.scopedLive("a handler that never answers: RemoteTimeout after the timeout; a node that goes down mid-request: RemoteTimeout at once", () =>
    Effect.gen(function*() {
      const net = Remote.memoryNetwork()
      const a = net.transport("a")
      let started = yield* Deferred.make<void>()
      yield* Remote.serve(net.transport("b"), Move, () => Effect.zipRight(Deferred.succeed(started, undefined), Effect.never))
      const move = Remote.ref(a, "b", Move)
      const timeout = yield* Effect.flip(move.ask({ robot: "agv-1", x: 1, token: 1n }, { timeout: "150 millis" }))
      expect(timeout).toMatchObject({ _tag: "RemoteTimeout", node: "b", service: "test/move", timeoutMillis: 150, reason: "no reply within 150 ms" })
      expect(timeout.message).toContain("outcome unknown")

      // Delivered, then the node drops: the outcome is unknown, so it is not NodeDown.
      started = yield* Deferred.make<void>()
      const asked = yield* Effect.fork(move.ask({ robot: "agv-1", x: 1, token: 1n }, { timeout: "10 seconds" }))
      yield* Deferred.await(started)
      net.down("b")
      const dropped = yield* Effect.flip(asked.await.pipe(Effect.flatten))
      expect(dropped).toMatchObject({ _tag: "RemoteTimeout", reason: "the node went down after the request was delivered" })
    }))

  it.scopedLive("a request that does not decode is a Defect and counted, and the handler is not called", () =>
    Effect.gen(function*() {
      const { a, calls, net } = yield* network
      const raw = yield* a.request("b", "test/move", { robot: 3, x: "left" }, { timeoutMillis: 1_000 })
      expect(raw._tag).toBe("Defect")
      expect(raw._tag === "Defect" && raw.message).toContain("did not decode")
      // The same through a ref whose request schema is looser than the server's.
      const Loose = Remote.service("test/move", { request: Schema.Unknown, success: Schema.Unknown, failure: Schema.Never })
      const defect = yield* Effect.flip(Remote.ref(a, "b", Loose).ask({ robot: "agv-1" }))
      expect(defect).toMatchObject({ _tag: "RemoteDefect", node: "b", service: "test/move" })
      expect(calls).toEqual([])
      expect(net.rejected("b")).toBe(2)
    }))

  it.scopedLive("a handler that dies, an unknown service and a reply that does not decode are RemoteDefects", () =>
    Effect.gen(function*() {
      const net = Remote.memoryNetwork()
      const a = net.transport("a")
      const b = net.transport("b")
      const Echo = Remote.service("test/echo", { request: Schema.String, success: Schema.String, failure: Schema.Never })
      yield* Remote.serve(b, Echo, (text) => (text === "die" ? Effect.dieMessage("the handler broke") : Effect.succeed(text)))
      const echo = Remote.ref(a, "b", Echo)
      expect(yield* echo.ask("hello")).toBe("hello")
      const died = yield* Effect.flip(echo.ask("die"))
      expect(died).toMatchObject({ _tag: "RemoteDefect", node: "b", service: "test/echo" })
      expect(died.message).toContain("the handler broke")

      const missing = yield* Effect.flip(Remote.ref(a, "b", { ...Echo, name: "test/missing" }).ask("x"))
      expect(missing._tag).toBe("RemoteDefect")
      expect(missing.message).toContain("no service test/missing")

      const Strict = Remote.service("test/echo", { request: Schema.String, success: Schema.Number, failure: Schema.Never })
      const undecodable = yield* Effect.flip(Remote.ref(a, "b", Strict).ask("hello"))
      expect(undecodable._tag).toBe("RemoteDefect")
      expect(undecodable.message).toContain("the reply did not decode")
    }))

  it.scopedLive("a service is served until its scope closes; the handler gets the serving scope's services", () =>
    Effect.gen(function*() {
      const net = Remote.memoryNetwork()
      const a = net.transport("a")
      const Echo = Remote.service("test/echo", { request: Schema.String, success: Schema.String, failure: Schema.Never })
      const scope = yield* Scope.make()
      yield* Remote.serve(net.transport("b"), Echo, (text, from) => Effect.succeed(`${text} from ${from}`)).pipe(Scope.extend(scope))
      expect(yield* Remote.ref(a, "b", Echo).ask("hi")).toBe("hi from a")
      // A node may ask itself through the same transport.
      expect(yield* Remote.ref(net.transport("b"), "b", Echo).ask("me")).toBe("me from b")
      yield* Scope.close(scope, Exit.void)
      expect((yield* Effect.flip(Remote.ref(a, "b", Echo).ask("hi")))._tag).toBe("RemoteDefect")
    }))
})
