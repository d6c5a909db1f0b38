/**
 * One MQTT client connection (mqtt.js) as a scoped resource: connected when acquired,
 * disconnected when its scope closes. What arrives (connects, disconnects, messages) is queued
 * as {@link MqttEvent}s for one consumer; mqtt.js reconnects by itself and re-subscribes.
 *
 * With `security` ({@link BrokerSecurity}), the credentials and TLS files are read at the
 * connect and again before every reconnect. Failed attempts back off (the reconnect period
 * doubles up to `maxReconnectPeriod`), and each failure is logged as one line saying why
 * (`BrokerSecurity.refusal`), sampled per reason, with the URL's password redacted.
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { connect as mqttConnect, type IClientOptions, type MqttClient } from "mqtt"
import * as LogSampler from "../../actors/LogSampler.js"
import * as BrokerSecurity from "./BrokerSecurity.js"

/** The message the broker publishes for a client that vanishes without saying goodbye. */
export interface LastWill {
  readonly topic: string
  readonly payload: string
  readonly qos: 0 | 1 | 2
  readonly retain: boolean
}

/** How to connect. */
export interface MqttConnectionOptions {
  /** e.g. `mqtt://127.0.0.1:1883`. */
  readonly url: string
  /** Must be unique on the broker: a second client with the same id kicks the first one off. */
  readonly clientId: string
  readonly will?: LastWill
  /** Seconds between pings; 15 is what VDA 5050 recommends. */
  readonly keepaliveSeconds?: number
  /** Delay before each reconnect attempt after the connection is lost. */
  readonly reconnectPeriod?: Duration.DurationInput
  /** How long the first connect may take before it fails. */
  readonly connectTimeout?: Duration.DurationInput
  /**
   * Takes every message as mqtt.js hands it over, instead of `events`: for a consumer that only
   * forwards messages to a mailbox, so that thousands a second cost no fiber step each.
   */
  readonly onMessage?: ((topic: string, payload: Uint8Array) => void) | undefined
  /** User name, password file, CA, client certificate and key; files read at each (re)connect. */
  readonly security?: BrokerSecurity.BrokerSecurity | undefined
  /** Longest delay between reconnect attempts while they fail; default 10 seconds. */
  readonly maxReconnectPeriod?: Duration.DurationInput | undefined
  /**
   * The first connect keeps trying (with the same backoff) through refusals and unreachable
   * brokers instead of failing; interrupting it stops it.
   */
  readonly untilConnected?: boolean | undefined
  /** Hears of every failed attempt, first connect and reconnects alike (a status, a metric). */
  readonly onFailure?: ((refusal: BrokerSecurity.Refusal) => void) | undefined
  /** Where failure lines are sampled (one per reason per window); default: one sampler per connection. */
  readonly sampler?: LogSampler.LogSampler | undefined
}

/** Something that happened on the connection, in order. */
export type MqttEvent = Data.TaggedEnum<{
  /** Connected, the first time or again after a loss: time to announce oneself. */
  Connected: {}
  Disconnected: {}
  Message: { readonly topic: string; readonly payload: Uint8Array; readonly retain: boolean }
}>

/** Constructors and matchers of {@link MqttEvent}. */
export const MqttEvent = Data.taggedEnum<MqttEvent>()

/** A connect, publish or subscribe that failed. */
export class MqttError extends Data.TaggedError("MqttError")<{
  readonly operation: "connect" | "publish" | "subscribe" | "unsubscribe"
  readonly cause: unknown
}> {
  override get message() {
    return `MQTT ${this.operation} failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** A live MQTT connection. */
export interface MqttConnection {
  readonly clientId: string
  /** Connects, disconnects and messages (unless `onMessage` takes them), for a single consumer. */
  readonly events: Queue.Dequeue<MqttEvent>
  readonly isConnected: Effect.Effect<boolean>
  readonly publish: (
    topic: string,
    payload: string | Uint8Array,
    options: { readonly qos: 0 | 1 | 2; readonly retain: boolean }
  ) => Effect.Effect<void, MqttError>
  readonly subscribe: (filters: ReadonlyArray<string>, qos: 0 | 1 | 2) => Effect.Effect<void, MqttError>
  /** Ends subscriptions; completes once the broker acknowledged (UNSUBACK). */
  readonly unsubscribe: (filters: ReadonlyArray<string>) => Effect.Effect<void, MqttError>
  /** Leaves in an orderly way (DISCONNECT): the broker discards the last will. */
  readonly end: Effect.Effect<void>
  /** Drops the TCP connection without DISCONNECT, as a crash or a cut cable would: the broker publishes the last will. */
  readonly drop: Effect.Effect<void>
  /** Connects again after {@link MqttConnection.end} or {@link MqttConnection.drop}. */
  readonly reconnect: Effect.Effect<void>
}

const callback =
  <E>(resume: (effect: Effect.Effect<void, E>) => void, onError: (cause: unknown) => E) =>
  (error?: unknown) =>
    resume(error ? Effect.fail(onError(error)) : Effect.void)

const endClient = (client: MqttClient, force: boolean) =>
  Effect.async<void>((resume) => {
    client.end(force, {}, () => resume(Effect.void))
  })

/** Connects to the broker; the connection ends (gracefully) when the scope closes. */
export const connect = (options: MqttConnectionOptions): Effect.Effect<MqttConnection, MqttError, Scope.Scope> =>
  Effect.gen(function* () {
    const runtime = yield* Effect.runtime<never>()
    const events = yield* Effect.acquireRelease(Queue.unbounded<MqttEvent>(), Queue.shutdown)
    const reconnectPeriod = Duration.toMillis(options.reconnectPeriod ?? "1 second")
    const maxReconnectPeriod = Math.max(reconnectPeriod, Duration.toMillis(options.maxReconnectPeriod ?? "10 seconds"))
    const clientOptions: IClientOptions = {
      clientId: options.clientId,
      keepalive: options.keepaliveSeconds ?? 15,
      reconnectPeriod,
      connectTimeout: Duration.toMillis(options.connectTimeout ?? "5 seconds"),
      queueQoSZero: false,
      ...(options.will === undefined ? {} : { will: { ...options.will } })
    }
    const sampler = options.sampler ?? LogSampler.make()
    const where = BrokerSecurity.redactUrl(options.url)
    /** Reports a failure: the caller's hook, and one sampled line per reason. */
    const report = (error: unknown) => {
      const refusal = BrokerSecurity.refusal(error)
      options.onFailure?.(refusal)
      Runtime.runFork(runtime)(
        sampler.warning(
          `connect:${refusal.reason}`,
          `MQTT connection failures (${refusal.reason}) of ${options.clientId}`,
          () => `MQTT client ${options.clientId} to ${where}: ${LogSampler.excerpt(refusal.text)}`
        )
      )
    }
    /** One connect: a client that reconnects by itself once connected, or the first failure. */
    const open = Effect.async<MqttClient, MqttError>((resume) => {
      let client: MqttClient
      try {
        const target = BrokerSecurity.connectArguments(options.url, options.security, clientOptions)
        client = mqttConnect(target.url, target.options)
      } catch (cause) {
        report(cause)
        return resume(Effect.fail(new MqttError({ operation: "connect", cause })))
      }
      BrokerSecurity.secureClient(client, options.security, { maxReconnectPeriod, onSecretError: report })
      const onError = (cause: unknown) => {
        client.end(true)
        resume(Effect.fail(new MqttError({ operation: "connect", cause })))
      }
      client.once("error", onError)
      client.once("connect", () => {
        client.off("error", onError)
        resume(Effect.succeed(client))
      })
      client.on("connect", () => {
        // mqtt.js leaves Nagle on, and writes a packet in pieces: a stop would wait for a delayed ACK (40 ms).
        ;(client.stream as { setNoDelay?: (noDelay: boolean) => void }).setNoDelay?.(true)
        Queue.unsafeOffer(events, MqttEvent.Connected())
      })
      client.on("close", () => Queue.unsafeOffer(events, MqttEvent.Disconnected()))
      const onMessage = options.onMessage
      if (onMessage !== undefined) client.on("message", (topic, payload) => onMessage(topic, payload))
      else {
        client.on("message", (topic, payload, packet) =>
          Queue.unsafeOffer(events, MqttEvent.Message({ topic, payload, retain: packet.retain }))
        )
      }
      client.on("error", report)
      return Effect.sync(() => client.end(true))
    })
    const retrying = options.untilConnected === true
      ? Effect.retry(
        open,
        Schedule.exponential(Duration.millis(reconnectPeriod)).pipe(Schedule.union(Schedule.spaced(Duration.millis(maxReconnectPeriod))))
      )
      : open
    // The attempts may be interrupted; a client, once connected, is released with the scope.
    const client = yield* Effect.uninterruptibleMask((restore) =>
      Effect.tap(restore(retrying), (client) =>
        Effect.addFinalizer(() =>
          endClient(client, false).pipe(
            Effect.timeout("2 seconds"),
            Effect.catchAll(() => endClient(client, true))
          )
        ))
    )
    return {
      clientId: options.clientId,
      events,
      isConnected: Effect.sync(() => client.connected),
      publish: (topic, payload, { qos, retain }) =>
        Effect.async<void, MqttError>((resume) => {
          const bytes = typeof payload === "string" ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
          client.publish(topic, bytes, { qos, retain }, callback(resume, (cause) => new MqttError({ operation: "publish", cause })))
        }),
      subscribe: (filters, qos) =>
        Effect.async<void, MqttError>((resume) => {
          client.subscribe([...filters], { qos }, callback(resume, (cause) => new MqttError({ operation: "subscribe", cause })))
        }),
      unsubscribe: (filters) =>
        Effect.async<void, MqttError>((resume) => {
          client.unsubscribe([...filters], callback(resume, (cause) => new MqttError({ operation: "unsubscribe", cause })))
        }),
      end: endClient(client, false),
      drop: endClient(client, true),
      reconnect: Effect.sync(() => {
        client.reconnect()
      })
    } satisfies MqttConnection
  })
