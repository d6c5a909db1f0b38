/**
 * The check every message under the fleet's prefix goes through before anything else sees it:
 * the topic must be a VDA 5050 topic under the prefix, the payload must decode with the message
 * schema of its topic, and the payload's `manufacturer` and `serialNumber` must be the topic's
 * (an AGV speaks only for itself: a message naming another AGV is refused, not applied to
 * either). Used where the messages arrive: the broker connection's actor, or its
 * ingest thread (`IngestThread`).
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import type { AgvIdentity } from "./Header.js"
import * as MessageCodec from "./MessageCodec.js"
import * as Topic from "./Topic.js"

/** A message that passed: which AGV, which topic, and the decoded message. */
export interface Valid {
  readonly _tag: "Valid"
  readonly identity: AgvIdentity
  readonly topic: Topic.TopicName
  readonly message: MessageCodec.MessageOf<Topic.TopicName>
}

/** A message refused: its topic, the topic name it is counted under (`topic` when the topic did not parse), and why. */
export interface Invalid {
  readonly _tag: "Invalid"
  readonly topic: string
  readonly countedAs: string
  readonly reason: string
}

/** A message not decoded because its AGV was refused first (see `before` of {@link makeChecker}). */
export interface Refused<R> {
  readonly _tag: "Refused"
  readonly identity: AgvIdentity
  readonly topic: Topic.TopicName
  readonly reason: R
}

/** What a message turned out to be; `undefined` for an empty payload (a retained message being cleared). */
export type Checked = Valid | Invalid | undefined

const maxCachedTopics = 100_000

/** Topics longer than this are parsed each time, not cached: 100,000 topics of 60 KB would hold 6 GB. */
const maxCachedTopicLength = 256

/**
 * A checker for messages under `prefix`; it remembers each topic it parsed (a fleet has a few per
 * AGV). `before`, when given, sees the AGV of a well-formed topic before the payload is decoded: a
 * reason it returns refuses the message undecoded (`Refused`), so that a flood of messages from
 * AGVs that would be refused anyway costs a topic parse each, not a JSON parse and a schema.
 */
export function makeChecker(prefix: string): (topic: string, payload: Uint8Array) => Checked
export function makeChecker<R>(
  prefix: string,
  before: (identity: AgvIdentity, topic: Topic.TopicName) => R | undefined
): (topic: string, payload: Uint8Array) => Checked | Refused<R>
export function makeChecker<R>(
  prefix: string,
  before?: (identity: AgvIdentity, topic: Topic.TopicName) => R | undefined
): (topic: string, payload: Uint8Array) => Checked | Refused<R> {
  const topics = new Map<
    string,
    Either.Either<{ readonly identity: AgvIdentity; readonly topic: Topic.TopicName }, Topic.InvalidTopic>
  >()
  return (name, payload) => {
    if (payload.byteLength === 0) return undefined
    let parsed = topics.get(name)
    if (parsed === undefined) {
      if (topics.size >= maxCachedTopics) topics.clear()
      parsed = Either.map(Topic.parse(name, prefix), ({ topic, ...identity }) => ({ identity, topic }))
      if (name.length <= maxCachedTopicLength) topics.set(name, parsed)
    }
    if (Either.isLeft(parsed)) return { _tag: "Invalid", topic: name, countedAs: "topic", reason: parsed.left.reason }
    const { identity, topic } = parsed.right
    const refused = before?.(identity, topic)
    if (refused !== undefined) return { _tag: "Refused", identity, topic, reason: refused }
    const decoded = MessageCodec.decode(topic, payload)
    if (Either.isLeft(decoded)) {
      const reason = decoded.left.issues.map((issue) => `${issue.path || "(root)"}: ${issue.message}`).join("; ")
      return { _tag: "Invalid", topic: name, countedAs: topic, reason: `${decoded.left.schema}: ${reason}` }
    }
    // Header fields are optional in some schemas (visualization): only a name that differs is refused.
    const said = decoded.right as { readonly manufacturer?: string; readonly serialNumber?: string }
    if (
      (said.manufacturer !== undefined && said.manufacturer !== identity.manufacturer) ||
      (said.serialNumber !== undefined && said.serialNumber !== identity.serialNumber)
    ) {
      return {
        _tag: "Invalid",
        topic: name,
        countedAs: topic,
        reason: `the payload names ${said.manufacturer ?? identity.manufacturer}/${said.serialNumber ?? identity.serialNumber}, ` +
          `the topic ${identity.manufacturer}/${identity.serialNumber}`
      }
    }
    return { _tag: "Valid", identity, topic, message: decoded.right }
  }
}
