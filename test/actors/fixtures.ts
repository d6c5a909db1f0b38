import { Effect } from "effect"
import { Actor, type ActorRef, ExitReason } from "../../src/actors/index.js"

/** What the test worker understands. */
export type WorkerMsg =
  | { readonly _tag: "Ping"; readonly reply: ActorRef.Reply<string> }
  | { readonly _tag: "Add"; readonly n: number }
  | { readonly _tag: "Get"; readonly reply: ActorRef.Reply<number> }
  | { readonly _tag: "Crash" }
  | { readonly _tag: "Finish" }
  | { readonly _tag: "Sleep"; readonly millis: number }

export const ping = (reply: ActorRef.Reply<string>): WorkerMsg => ({ _tag: "Ping", reply })
export const get = (reply: ActorRef.Reply<number>): WorkerMsg => ({ _tag: "Get", reply })

/** A small worker: keeps a sum, can crash or finish on request; `log` records lifecycle events. */
export const worker = (log?: Array<string>, name = "worker") =>
  Actor.make<WorkerMsg, number>({
    name,
    init: (ctx) => {
      log?.push(`init ${ctx.self.name ?? name}`)
      return 0
    },
    receive: (sum, msg, ctx) => {
      switch (msg._tag) {
        case "Ping":
          msg.reply.succeed("pong")
          return sum
        case "Add":
          return sum + msg.n
        case "Get":
          msg.reply.succeed(sum)
          return sum
        case "Crash":
          throw new Error("crash requested")
        case "Finish":
          ctx.stop(ExitReason.normal)
          return sum
        case "Sleep":
          return Effect.as(Effect.sleep(msg.millis), sum)
      }
    },
    terminate: (_, reason, ctx) => {
      log?.push(`terminate ${ctx.self.name ?? name} ${ExitReason.format(reason)}`)
    }
  })
