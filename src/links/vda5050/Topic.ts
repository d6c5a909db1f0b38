/**
 * MQTT topics of VDA 5050: `interfaceName/majorVersion/manufacturer/serialNumber/topic`,
 * e.g. `uagv/v2/KIT/0001/state`. The first two levels (the prefix) are a suggestion of the
 * specification and configurable here; the topic names at the end are mandatory.
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import type { AgvIdentity } from "./Header.js"

/** The prefix (`interfaceName/majorVersion`) the specification suggests for a local broker. */
export const DEFAULT_PREFIX = "uagv/v2"

/** The last level of a VDA 5050 topic. */
export const TopicName = Schema.Literal("order", "instantActions", "state", "visualization", "connection", "factsheet")

/** The last level of a VDA 5050 topic. */
export type TopicName = typeof TopicName.Type

/** Topics master control publishes to an AGV. */
export const toAgv: ReadonlyArray<TopicName> = ["order", "instantActions"]

/** Topics an AGV (or the broker, for its last will) publishes to master control. */
export const fromAgv: ReadonlyArray<TopicName> = ["state", "visualization", "connection", "factsheet"]

/** How a message on a topic is published. */
export interface Delivery {
  readonly qos: 0 | 1
  readonly retain: boolean
}

/** QoS and retain flag of every topic, as the specification's table sets them. */
export const delivery: { readonly [K in TopicName]: Delivery } = {
  order: { qos: 0, retain: false },
  instantActions: { qos: 0, retain: false },
  state: { qos: 0, retain: false },
  visualization: { qos: 0, retain: false },
  connection: { qos: 1, retain: true },
  factsheet: { qos: 0, retain: true }
}

/** A parsed topic: which AGV, which message. */
export interface AgvTopic extends AgvIdentity {
  readonly topic: TopicName
}

/** A topic string that is not a VDA 5050 topic under the expected prefix. */
export class InvalidTopic extends Data.TaggedError("InvalidTopic")<{
  readonly topic: string
  readonly reason: string
}> {
  override get message() {
    return `invalid VDA 5050 topic "${this.topic}": ${this.reason}`
  }
}

const serialNumberPattern = /^[A-Za-z0-9_.:-]+$/

/** Whether `serialNumber` uses only the characters the specification allows: `A-Z a-z 0-9 _ . : -`. */
export const isValidSerialNumber = (serialNumber: string): boolean => serialNumberPattern.test(serialNumber)

/** The topic of message `topic` from or to `agv`. The identity is assumed valid (see {@link isValidSerialNumber}). */
export const format = (agv: AgvTopic, prefix: string = DEFAULT_PREFIX): string =>
  `${prefix}/${agv.manufacturer}/${agv.serialNumber}/${agv.topic}`

/** The filter master control subscribes to: every message of every AGV under `prefix`. */
export const subscriptionFilter = (prefix: string = DEFAULT_PREFIX): string => `${prefix}/+/+/#`

const isTopicName = Schema.is(TopicName)

/** Reads which AGV and which message a topic is about. */
export const parse = (topic: string, prefix: string = DEFAULT_PREFIX): Either.Either<AgvTopic, InvalidTopic> => {
  const fail = (reason: string) => Either.left(new InvalidTopic({ topic, reason }))
  if (!topic.startsWith(`${prefix}/`)) return fail(`expected the prefix "${prefix}/"`)
  const levels = topic.slice(prefix.length + 1).split("/")
  if (levels.length !== 3) return fail("expected manufacturer/serialNumber/topic after the prefix")
  const [manufacturer, serialNumber, name] = levels
  if (manufacturer === "" || /[+#]/.test(manufacturer)) return fail(`invalid manufacturer "${manufacturer}"`)
  if (!isValidSerialNumber(serialNumber)) {
    return fail(`serialNumber "${serialNumber}" must use only A-Z a-z 0-9 _ . : -`)
  }
  if (!isTopicName(name)) return fail(`unknown topic "${name}"`)
  return Either.right({ manufacturer, serialNumber, topic: name })
}
