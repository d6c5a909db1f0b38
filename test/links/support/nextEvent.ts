import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as LinkEvent from "../../../src/links/LinkEvent.js"

/** Takes link events until one of `tag` matches `predicate`; dies after 8 seconds without one. */
export const next = <T extends LinkEvent.LinkEvent["_tag"]>(
  events: Queue.Dequeue<LinkEvent.LinkEvent>,
  tag: T,
  predicate: (event: Extract<LinkEvent.LinkEvent, { _tag: T }>) => boolean = () => true
) =>
  Queue.take(events).pipe(
    Effect.repeat({ until: (e): e is Extract<LinkEvent.LinkEvent, { _tag: T }> => e._tag === tag && predicate(e as never) }),
    Effect.map((e) => e as Extract<LinkEvent.LinkEvent, { _tag: T }>),
    Effect.timeoutFail({ duration: "8 seconds", onTimeout: () => new Error(`no ${tag} event`) }),
    Effect.orDie
  )
