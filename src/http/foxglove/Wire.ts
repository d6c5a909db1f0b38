/**
 * The frames of the Foxglove WebSocket protocol (github.com/foxglove/ws-protocol, `docs/spec.md`)
 * that a read-only server speaks: the JSON messages it sends (`serverInfo`, `advertise`,
 * `unadvertise`, `status`), the binary `messageData` frame, and the client's JSON messages it
 * reads (`subscribe`, `unsubscribe`; anything else is answered with a `status` error).
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"

/** The subprotocol names this server accepts, preferred first: the same protocol under its old and new names. */
export const Subprotocols = ["foxglove.websocket.v1", "foxglove.sdk.v1"] as const

/** The first subprotocol the client offers that this server speaks, if any. */
export const negotiate = (offered: Iterable<string>): string | undefined => {
  for (const name of offered) if ((Subprotocols as ReadonlyArray<string>).includes(name)) return name
  return undefined
}

/** A channel as `advertise` announces it. */
export interface Channel {
  readonly id: number
  readonly topic: string
  readonly encoding: "json"
  readonly schemaName: string
  readonly schema: string
  readonly schemaEncoding: "jsonschema"
}

/** `status` levels. */
export const StatusLevel = { info: 0, warning: 1, error: 2 } as const

/** The server's greeting, sent once right after the handshake. */
export const serverInfo = (info: {
  readonly name: string
  readonly sessionId: string
  readonly metadata: Record<string, string>
}): string =>
  JSON.stringify({
    op: "serverInfo",
    name: info.name,
    capabilities: [],
    supportedEncodings: ["json"],
    metadata: info.metadata,
    sessionId: info.sessionId
  })

/** Announces channels. */
export const advertise = (channels: ReadonlyArray<Channel>): string => JSON.stringify({ op: "advertise", channels })

/** Withdraws channels. */
export const unadvertise = (channelIds: ReadonlyArray<number>): string => JSON.stringify({ op: "unadvertise", channelIds })

/** A message for the client's user (a refused request, a dropped subscription). */
export const status = (level: keyof typeof StatusLevel, message: string): string =>
  JSON.stringify({ op: "status", level: StatusLevel[level], message })

/** The `messageData` opcode. */
export const MessageDataOpcode = 0x01

/** Bytes before the payload of a `messageData` frame: opcode, u32 subscription id, u64 timestamp. */
export const MessageDataHeaderBytes = 13

/**
 * A binary `messageData` frame: opcode 0x01, the client's subscription id (u32 LE), the log
 * time in nanoseconds since the epoch (u64 LE), and the payload (here JSON bytes).
 */
export const messageData = (subscriptionId: number, timestampNs: bigint, payload: Uint8Array): Buffer => {
  const frame = Buffer.allocUnsafe(MessageDataHeaderBytes + payload.length)
  frame.writeUInt8(MessageDataOpcode, 0)
  frame.writeUInt32LE(subscriptionId, 1)
  frame.writeBigUInt64LE(timestampNs, 5)
  frame.set(payload, MessageDataHeaderBytes)
  return frame
}

/** Milliseconds since the epoch as the protocol's nanoseconds. */
export const nanos = (ms: number): bigint => BigInt(Math.round(ms)) * 1_000_000n

/** What a client asks for. */
export type ClientRequest =
  | {
    readonly op: "subscribe"
    readonly subscriptions: ReadonlyArray<{ readonly id: number; readonly channelId: number }>
  }
  | { readonly op: "unsubscribe"; readonly subscriptionIds: ReadonlyArray<number> }

const isU32 = (u: unknown): u is number => Number.isInteger(u) && (u as number) >= 0 && (u as number) <= 0xffff_ffff

/** Reads one text frame of the client; `Left` carries the `status` message to answer with. */
export const parseClient = (text: string): Either.Either<ClientRequest, string> => {
  let message: unknown
  try {
    message = JSON.parse(text)
  } catch {
    return Either.left("Not JSON: client messages are JSON objects with an `op`")
  }
  const op = typeof message === "object" && message !== null ? (message as { op?: unknown }).op : undefined
  switch (op) {
    case "subscribe": {
      const subscriptions = (message as { subscriptions?: unknown }).subscriptions
      if (
        !Array.isArray(subscriptions) ||
        !subscriptions.every((s) => typeof s === "object" && s !== null && isU32(s.id) && isU32(s.channelId))
      ) return Either.left("subscribe: `subscriptions` must be an array of { id, channelId } (u32)")
      return Either.right({ op, subscriptions })
    }
    case "unsubscribe": {
      const subscriptionIds = (message as { subscriptionIds?: unknown }).subscriptionIds
      if (!Array.isArray(subscriptionIds) || !subscriptionIds.every(isU32)) {
        return Either.left("unsubscribe: `subscriptionIds` must be an array of u32")
      }
      return Either.right({ op, subscriptionIds })
    }
    default:
      return Either.left(
        typeof op === "string"
          ? `Unsupported operation ${JSON.stringify(op)}: this server is read-only and declared no capabilities`
          : "Missing `op`"
      )
  }
}
