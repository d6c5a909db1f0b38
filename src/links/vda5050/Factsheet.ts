/**
 * The `factsheet` topic: what an AGV is and can do, sent on a `factsheetRequest` and retained.
 * Modelled loosely: the type, the physical limits, the timing limits and the supported actions
 * are typed; geometry, load and localisation details pass through as plain JSON objects.
 */
import * as Schema from "effect/Schema"
import { BlockingType } from "./Action.js"
import { HeaderFields } from "./Header.js"

/** A JSON object whose content is not modelled. */
const LooseObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/** What kind of vehicle the AGV is. */
export const TypeSpecification = Schema.Struct({
  seriesName: Schema.String,
  seriesDescription: Schema.optional(Schema.String),
  agvKinematic: Schema.Literal("DIFF", "OMNI", "THREEWHEEL"),
  agvClass: Schema.Literal("FORKLIFT", "CONVEYOR", "TUGGER", "CARRIER"),
  maxLoadMass: Schema.Finite,
  localizationTypes: Schema.Array(Schema.String),
  navigationTypes: Schema.Array(Schema.String)
}).annotations({ identifier: "TypeSpecification" })

/** Speeds (m/s), accelerations (m/s²) and dimensions (m) of the AGV. */
export const PhysicalParameters = Schema.Struct({
  speedMin: Schema.Finite,
  speedMax: Schema.Finite,
  accelerationMax: Schema.Finite,
  decelerationMax: Schema.Finite,
  heightMin: Schema.Finite,
  heightMax: Schema.Finite,
  width: Schema.Finite,
  length: Schema.Finite
}).annotations({ identifier: "PhysicalParameters" })

/** Message size limits and the timing the AGV keeps (seconds). */
export const ProtocolLimits = Schema.Struct({
  maxStringLens: LooseObject,
  maxArrayLens: LooseObject,
  timing: Schema.Struct({
    minOrderInterval: Schema.Finite,
    minStateInterval: Schema.Finite,
    defaultStateInterval: Schema.optional(Schema.Finite),
    visualizationInterval: Schema.optional(Schema.Finite)
  })
}).annotations({ identifier: "ProtocolLimits" })

/** An action type the AGV supports, and where it may be used. */
export const AgvAction = Schema.Struct({
  actionType: Schema.String,
  actionDescription: Schema.optional(Schema.String),
  actionScopes: Schema.Array(Schema.Literal("INSTANT", "NODE", "EDGE")),
  actionParameters: Schema.optional(Schema.Array(LooseObject)),
  resultDescription: Schema.optional(Schema.String),
  blockingTypes: Schema.optional(Schema.Array(BlockingType))
}).annotations({ identifier: "AgvAction" })

/** An action type the AGV supports. */
export interface AgvAction extends Schema.Schema.Type<typeof AgvAction> {}

/** Optional protocol fields the AGV supports, and the actions it offers. */
export const ProtocolFeatures = Schema.Struct({
  optionalParameters: Schema.Array(
    Schema.Struct({
      parameter: Schema.String,
      support: Schema.Literal("SUPPORTED", "REQUIRED"),
      description: Schema.optional(Schema.String)
    })
  ),
  agvActions: Schema.Array(AgvAction)
}).annotations({ identifier: "ProtocolFeatures" })

/** A `factsheet` message. */
export const Factsheet = Schema.Struct({
  ...HeaderFields,
  typeSpecification: TypeSpecification,
  physicalParameters: PhysicalParameters,
  protocolLimits: ProtocolLimits,
  protocolFeatures: ProtocolFeatures,
  agvGeometry: LooseObject,
  loadSpecification: LooseObject,
  localizationParameters: Schema.optional(LooseObject)
}).annotations({ identifier: "Factsheet" })

/** A `factsheet` message. */
export interface Factsheet extends Schema.Schema.Type<typeof Factsheet> {}
