/**
 * The `instantActions` topic: actions the AGV is to run as soon as they arrive
 * (pause, resume, cancel the order, send a state, …).
 */
import * as Schema from "effect/Schema"
import { Action } from "./Action.js"
import { HeaderFields } from "./Header.js"

/** An `instantActions` message. Each action names its `actionType` (not the 2.0.0 tag's `actionName`). */
export const InstantActions = Schema.Struct({
  ...HeaderFields,
  actions: Schema.Array(Action)
}).annotations({ identifier: "InstantActions" })

/** An `instantActions` message. */
export interface InstantActions extends Schema.Schema.Type<typeof InstantActions> {}
