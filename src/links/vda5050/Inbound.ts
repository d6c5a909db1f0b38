/**
 * The check every message under the fleet's prefix goes through before anything else sees it:
 * the topic must be a VDA 5050 topic under the prefix, the payload must decode with the message
 * schema of its topic, and the payload's `manufacturer` and `serialNumber` must be the topic's
 * (an AGV speaks only for itself: a message naming another AGV is refused, not applied to
 * either). Used where the messages arrive: the broker connection's actor, or its
 * ingest thread (`IngestThread`).
 *
 * With the official schemas (`OfficialSchemas`), they are the authority: the payload is parsed
 * once and checked against the schema of its topic and version. A `visualization` (a sample,
 * many a second per AGV) then goes on as it is, only its known fields kept; the other topics
 * (events the fleet acts on) are decoded into the message model as well. Without them, the
 * message schema decides alone, which costs about twice as much for a `visualization`.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import type { AgvIdentity } from "./Header.js"
import * as MessageCodec from "./MessageCodec.js"
import type * as OfficialSchemas from "./OfficialSchemas.js"
import * as Topic from "./Topic.js"
import * as Visualization from "./Visualization.js"

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

/** What a checker does besides parsing the topic. */
export interface CheckerOptions<R> {
  /**
   * Sees the AGV of a well-formed topic before the payload is decoded: a reason it returns
   * refuses the message undecoded (`Refused`), so that a flood of messages from AGVs that would
   * be refused anyway costs a topic parse each, not a JSON parse and a schema.
   */
  readonly before?: ((identity: AgvIdentity, topic: Topic.TopicName) => R | undefined) | undefined
  /** The official schemas' check (`OfficialSchemas.validate`); without it, the message schemas alone decide. */
  readonly official?: OfficialSchemas.Validate | undefined
}

const textDecoder = new TextDecoder()

type Decoded = Either.Either<MessageCodec.MessageOf<Topic.TopicName>, string>

const describe = (error: MessageCodec.MessageDecodeError): string =>
  `${error.schema}: ${error.issues.map((issue) => `${issue.path || "(root)"}: ${issue.message}`).join("; ")}`

const decodeAlone = (topic: Topic.TopicName, payload: Uint8Array): Decoded =>
  Either.mapLeft(MessageCodec.decode(topic, payload), describe)

const decodeOfficially = (official: OfficialSchemas.Validate) => (topic: Topic.TopicName, payload: Uint8Array): Decoded => {
  let value: unknown
  try {
    value = JSON.parse(textDecoder.decode(payload))
  } catch (error) {
    return Either.left(`${topic}: not JSON (${(error as Error).message})`)
  }
  const reason = official(topic, value)
  if (reason !== undefined) return Either.left(reason)
  if (topic === "visualization") return Either.right(Visualization.fromChecked(value as Record<string, unknown>))
  return Either.mapLeft(MessageCodec.decodeValue(topic, value), describe)
}

/**
 * A checker for messages under `prefix`; it remembers each topic it parsed (a fleet has a few per
 * AGV). See {@link CheckerOptions} for `before` and `official`.
 */
export function makeChecker(prefix: string, options?: CheckerOptions<never>): (topic: string, payload: Uint8Array) => Checked
export function makeChecker<R>(
  prefix: string,
  options: CheckerOptions<R>
): (topic: string, payload: Uint8Array) => Checked | Refused<R>
export function makeChecker<R>(
  prefix: string,
  { before, official }: CheckerOptions<R> = {}
): (topic: string, payload: Uint8Array) => Checked | Refused<R> {
  const decode = official === undefined ? decodeAlone : decodeOfficially(official)
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
    const decoded = decode(topic, payload)
    if (Either.isLeft(decoded)) return { _tag: "Invalid", topic: name, countedAs: topic, reason: decoded.left }
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
