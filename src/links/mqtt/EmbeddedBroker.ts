/**
 * An MQTT broker inside the process (aedes), so the service runs with no broker installed:
 * a newcomer starts fleetvisor and the simulated fleet talks to this broker. Real deployments
 * configure a broker URL (Mosquitto, EMQX) and never start this one.
 */
import Aedes from "aedes"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as net from "node:net"

/**
 * The port the embedded broker listens on by default: near MQTT's 1883 so it is recognisable,
 * but never 1883 itself, which a real broker on the same machine may hold.
 */
export const DEFAULT_PORT = 18830

/** Where to listen. */
export interface EmbeddedBrokerOptions {
  /** Defaults to {@link DEFAULT_PORT}; 0 picks a free port (tests). */
  readonly port?: number
  /** Defaults to 127.0.0.1: the embedded broker is for this machine only. */
  readonly host?: string
}

/** A running embedded broker. */
export interface EmbeddedBroker {
  /** e.g. `mqtt://127.0.0.1:18830`. */
  readonly url: string
  readonly host: string
  readonly port: number
}

/** The broker could not listen (most often: the port is taken). */
export class EmbeddedBrokerError extends Data.TaggedError("EmbeddedBrokerError")<{ readonly cause: unknown }> {
  override get message() {
    return `embedded MQTT broker failed to start: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** Starts an aedes broker on `host:port`; it closes, with every client connection, when the scope closes. */
export const make = (options: EmbeddedBrokerOptions = {}): Effect.Effect<EmbeddedBroker, EmbeddedBrokerError, Scope.Scope> =>
  Effect.gen(function* () {
    const host = options.host ?? "127.0.0.1"
    const { server } = yield* Effect.acquireRelease(
      Effect.async<{ broker: ReturnType<typeof Aedes.createBroker>; server: net.Server }, EmbeddedBrokerError>((resume) => {
        const broker = Aedes.createBroker()
        const server = net.createServer(broker.handle)
        server.once("error", (cause) => {
          broker.close()
          resume(Effect.fail(new EmbeddedBrokerError({ cause })))
        })
        server.listen(options.port ?? DEFAULT_PORT, host, () => resume(Effect.succeed({ broker, server })))
      }),
      // The broker closes its client connections first, or the server would wait for them forever.
      ({ broker, server }) =>
        Effect.async<void>((resume) => {
          broker.close(() => server.close(() => resume(Effect.void)))
        })
    )
    const port = (server.address() as net.AddressInfo).port
    return { url: `mqtt://${host}:${port}`, host, port }
  })

/**
 * The broker URL to use: `configured` when there is one, otherwise the URL of an embedded
 * broker started for the scope.
 */
export const urlOrEmbedded = (
  configured: string | undefined,
  options?: EmbeddedBrokerOptions
): Effect.Effect<string, EmbeddedBrokerError, Scope.Scope> =>
  configured === undefined || configured === "" ? Effect.map(make(options), (broker) => broker.url) : Effect.succeed(configured)
