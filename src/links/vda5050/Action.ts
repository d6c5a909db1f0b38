/**
 * Actions, as carried by `instantActions` and by the nodes and edges of an `order`.
 */
import * as Schema from "effect/Schema"

/** How an action may run alongside driving and other actions. */
export const BlockingType = Schema.Literal("NONE", "SOFT", "HARD")

/** How an action may run alongside driving and other actions. */
export type BlockingType = typeof BlockingType.Type

/** An action parameter's value: any JSON value but `null`. */
export const ActionParameterValue = Schema.Union(
  Schema.String,
  Schema.Number,
  Schema.Boolean,
  Schema.Array(Schema.Unknown),
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)

/** One `key`/`value` parameter of an action. */
export const ActionParameter = Schema.Struct({
  key: Schema.String,
  value: ActionParameterValue
}).annotations({ identifier: "ActionParameter" })

/** One `key`/`value` parameter of an action. */
export interface ActionParameter extends Schema.Schema.Type<typeof ActionParameter> {}

/** An action the AGV is to perform. */
export const Action = Schema.Struct({
  actionType: Schema.String,
  actionId: Schema.String,
  actionDescription: Schema.optional(Schema.String),
  blockingType: BlockingType,
  actionParameters: Schema.optional(Schema.Array(ActionParameter))
}).annotations({ identifier: "Action" })

/** An action the AGV is to perform. */
export interface Action extends Schema.Schema.Type<typeof Action> {}

/** The instant action types the specification predefines (others are vendor-specific). */
export const PredefinedInstantActionTypes = [
  "startPause",
  "stopPause",
  "startCharging",
  "stopCharging",
  "initPosition",
  "stateRequest",
  "logReport",
  "cancelOrder",
  "factsheetRequest"
] as const

/** An instant action type the specification predefines. */
export type PredefinedInstantActionType = (typeof PredefinedInstantActionTypes)[number]
