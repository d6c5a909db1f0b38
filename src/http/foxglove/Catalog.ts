/**
 * The channels of a Foxglove endpoint: two per robot, numbered once for every connection.
 *
 * | topic                  | message                                      | from PubSub                                  |
 * |------------------------|----------------------------------------------|----------------------------------------------|
 * | `/robots/<id>/state`   | the robot's dashboard view (`RobotView`)     | `fleet/views`, conflated at the fleet's 30 Hz |
 * | `/robots/<id>/events`  | every link event of the robot (`LinkEvent`)  | `robot:<id>`, as the link publishes them      |
 *
 * A robot enters the catalog the first time the fleet's view names it (the fleet never forgets a
 * robot, so channels are never withdrawn). Each robot's view of a `FleetUpdate` and each link
 * event is encoded to JSON at most once, whatever the number of Foxglove clients, and only when
 * one of them is sent it. The catalog also keeps the latest state of
 * each robot, so that a new subscriber sees the robot at once even if it stands still.
 *
 * @since 0.1.0
 */
import * as JSONSchema from "effect/JSONSchema"
import { Encoded } from "../../actors/Encoded.js"
import { type FleetUpdate, RobotView } from "../../protocol/FleetRpcs.js"
import * as Wire from "./Wire.js"

/** What a channel carries. */
export type ChannelKind = "state" | "events"

/** One encoded robot message, with its log time. */
export interface Payload {
  readonly timestampNs: bigint
  readonly bytes: Uint8Array
}

/** A robot's channels. */
export interface RobotChannels {
  readonly robot: string
  readonly state: Wire.Channel
  readonly events: Wire.Channel
  /** The robot's latest view, encoded. */
  latest: Payload | undefined
}

/** A channel, and whose and which it is. */
export interface ChannelRef {
  readonly robot: string
  readonly kind: ChannelKind
}

/** The channel table of one endpoint. */
export interface Catalog {
  /** Every robot's channels, in the order robots appeared. */
  readonly robots: ReadonlyMap<string, RobotChannels>
  /** What a channel id names. */
  readonly channel: (id: number) => ChannelRef | undefined
  /** Takes in a fleet update; returns its robots' payloads (encoded once per update) and the robots new to the catalog. */
  readonly observe: (update: Encoded<typeof FleetUpdate.Type>) => ObservedUpdate
  /** Takes in views read directly from the fleet (its state when the endpoint starts). */
  readonly seed: (views: ReadonlyArray<RobotView>, at: number) => ReadonlyArray<RobotChannels>
}

/** A fleet update as Foxglove connections see it. */
export interface ObservedUpdate {
  readonly payloads: ReadonlyArray<readonly [robot: string, payload: Payload]>
  readonly added: ReadonlyArray<RobotChannels>
}

const stateSchema = JSON.stringify(JSONSchema.make(RobotView))

const eventsSchema = JSON.stringify({
  $schema: "http://json-schema.org/draft-07/schema#",
  title: "fleetvisor.LinkEvent",
  description: "What a robot link publishes: LinkUp, LinkDown, Alarm, EmergencyStopped, ArmTelemetry, AgvTelemetry",
  type: "object",
  required: ["_tag", "robot", "at"],
  properties: {
    _tag: { type: "string", enum: ["LinkUp", "LinkDown", "Alarm", "EmergencyStopped", "ArmTelemetry", "AgvTelemetry"] },
    robot: { type: "string" },
    kind: { type: "string", enum: ["arm", "agv"] },
    at: { type: "number", description: "milliseconds since the epoch" }
  }
})

/** Topic of a robot's channel. */
export const topicOf = (robot: string, kind: ChannelKind): string => `/robots/${robot}/${kind}`

const encoder = new TextEncoder()

const encodeKey = "foxglove.json"

/** A robot's view, encoded to JSON when a connection first sends it: with no Foxglove client, never. */
class ViewPayload implements Payload {
  #bytes: Uint8Array | undefined
  constructor(readonly timestampNs: bigint, private readonly view: RobotView) {}
  get bytes(): Uint8Array {
    return this.#bytes ??= encoder.encode(JSON.stringify(this.view))
  }
}

/** Per update: each robot's view as a payload (encoded once, if at all), stamped when the update was first seen. */
const payloadsOf = (update: Encoded<typeof FleetUpdate.Type>): ObservedUpdate["payloads"] =>
  update.get(encodeKey, (u) => {
    const timestampNs = Wire.nanos(Date.now())
    return u.robots.map((view) => [view.id, new ViewPayload(timestampNs, view)] as const)
  })

const encodedEvents = new WeakMap<object, Payload>()

/** A link event as JSON bytes, stamped with its `at`; encoded once however many connections send it. */
export const eventPayload = (event: unknown): Payload => {
  const cached = typeof event === "object" && event !== null ? encodedEvents.get(event) : undefined
  if (cached !== undefined) return cached
  const at = (event as { at?: unknown } | null)?.at
  const payload = {
    timestampNs: Wire.nanos(typeof at === "number" && Number.isFinite(at) && at >= 0 ? at : Date.now()),
    bytes: encoder.encode(JSON.stringify(event))
  }
  if (typeof event === "object" && event !== null) encodedEvents.set(event, payload)
  return payload
}

/** An empty catalog. */
export const make = (): Catalog => {
  const robots = new Map<string, RobotChannels>()
  const channels = new Map<number, ChannelRef>()
  let nextId = 1

  const channel = (robot: string, kind: ChannelKind): Wire.Channel => {
    const id = nextId++
    channels.set(id, { robot, kind })
    return kind === "state"
      ? {
        id,
        topic: topicOf(robot, kind),
        encoding: "json",
        schemaName: "fleetvisor.RobotView",
        schema: stateSchema,
        schemaEncoding: "jsonschema"
      }
      : {
        id,
        topic: topicOf(robot, kind),
        encoding: "json",
        schemaName: "fleetvisor.LinkEvent",
        schema: eventsSchema,
        schemaEncoding: "jsonschema"
      }
  }

  const take = (robot: string, payload: Payload, added: Array<RobotChannels>) => {
    let entry = robots.get(robot)
    if (entry === undefined) {
      entry = { robot, state: channel(robot, "state"), events: channel(robot, "events"), latest: undefined }
      robots.set(robot, entry)
      added.push(entry)
    }
    entry.latest = payload
  }

  return {
    robots,
    channel: (id) => channels.get(id),
    observe: (update) => {
      const payloads = payloadsOf(update)
      const added: Array<RobotChannels> = []
      for (const [robot, payload] of payloads) take(robot, payload, added)
      return { payloads, added }
    },
    seed: (views, at) => {
      const added: Array<RobotChannels> = []
      for (const view of views) {
        if (robots.has(view.id)) continue
        take(view.id, new ViewPayload(Wire.nanos(at), view), added)
      }
      return added
    }
  }
}

/** Whether a PubSub message is a fleet update (`Encoded<FleetUpdate>`). */
export const isFleetUpdate = (message: unknown): message is Encoded<typeof FleetUpdate.Type> =>
  message instanceof Encoded && (message.value as { _tag?: unknown } | null)?._tag === "FleetUpdate"
