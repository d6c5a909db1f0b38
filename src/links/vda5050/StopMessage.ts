/**
 * The emergency stop on the wire: one `instantActions` message with `startPause` (HARD) and
 * `cancelOrder` (NONE), whoever sends it (the AGV's link, the stop channel's thread, or a node
 * that does not run the AGV's link), and how to recognise one among the `instantActions` heard
 * on an AGV's topic.
 *
 * @since 0.1.0
 */
import type * as Either from "effect/Either"
import * as Header from "./Header.js"
import type { InstantActions } from "./InstantActions.js"
import * as MessageCodec from "./MessageCodec.js"

/** An encoded stop, and the `actionId` of its `cancelOrder` (one of them finishing confirms the stop). */
export interface Stop {
  readonly payload: Either.Either<string, MessageCodec.MessageEncodeError>
  readonly cancelId: string
}

let counter = 0

/** The stop of `identity` with `headerId`; `tag` makes the action ids of this sender unique (e.g. a node's id). */
export const encode = (identity: Header.AgvIdentity, headerId: number, now: number, tag: string): Stop => {
  const stamp = `${now.toString(36)}-${tag}${++counter}`
  const cancelId = `cancelOrder-${stamp}`
  return {
    cancelId,
    payload: MessageCodec.encode("instantActions", {
      ...Header.make(identity, headerId, now),
      actions: [
        { actionType: "startPause", actionId: `startPause-${stamp}`, blockingType: "HARD" },
        { actionType: "cancelOrder", actionId: cancelId, blockingType: "NONE" }
      ]
    })
  }
}

/** The `cancelOrder` actionId of `message` when it is a stop (a `startPause` and a `cancelOrder` together), else `undefined`. */
export const cancelIdOf = (message: InstantActions): string | undefined => {
  if (!message.actions.some((action) => action.actionType === "startPause")) return undefined
  return message.actions.find((action) => action.actionType === "cancelOrder")?.actionId
}
