/**
 * A TCP connection that carries lines: a `node:net` socket, a {@link LineFramer} on the
 * way in, and the received lines delivered through a `Mailbox` that ends when the
 * connection does. Both the RMI client and the simulator sit on it.
 *
 * It uses `node:net` rather than `@effect/platform`'s `Socket` because both sides need the
 * socket itself: the simulator destroys connections mid-packet, writes raw bytes and knows
 * which port accepted a connection, and the client must tell a peer that closed from a
 * socket error. What remains is thirty lines of event wiring, kept in this one place.
 */
import * as net from "node:net"
import { Data, Duration, Effect, Either, Exit, Mailbox, Scope } from "effect"
import * as LineFramer from "./LineFramer.js"

/** The socket failed: it could not connect, or it broke (reset, timeout). */
export class LineSocketError extends Data.TaggedError("LineSocketError")<{ readonly message: string }> {}

/** A connected TCP socket, read as lines. */
export interface LineSocket {
  /** The lines received, in order. Ends when the peer closes; fails if the socket breaks or a line is too long. */
  readonly lines: Mailbox.ReadonlyMailbox<string, LineSocketError | LineFramer.LineTooLong>
  /** Writes text as is (a packet line, or whatever a fault injector wants); ignored once the socket is closed. */
  readonly write: (text: string | Uint8Array) => void
  /** Closes once what was written is sent. */
  readonly end: () => void
  /** Closes at once, dropping unsent data: a connection that breaks. */
  readonly destroy: () => void
  /** The local port of the connection (the listening port, on a server). */
  readonly localPort: number
}

/** Options of a line socket. */
export interface LineSocketOptions {
  /** Longest accepted line in bytes; default {@link LineFramer.DefaultMaxLineLength}. */
  readonly maxLineLength?: number
}

/**
 * Reads an already connected socket as lines. Closing the scope flushes what was written,
 * then closes the socket (destroying it if that takes longer than a second).
 */
export const fromSocket = (
  socket: net.Socket,
  options?: LineSocketOptions
): Effect.Effect<LineSocket, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const lines = yield* Mailbox.make<string, LineSocketError | LineFramer.LineTooLong>()
      const framer = LineFramer.make(options)
      let failure: LineSocketError | undefined
      socket.setNoDelay(true)
      socket.on("data", (chunk: Buffer) =>
        Either.match(framer.push(chunk), {
          onLeft: (tooLong) => {
            lines.unsafeDone(Exit.fail(tooLong))
            socket.destroy()
          },
          onRight: (received) => void lines.unsafeOfferAll(received)
        }))
      socket.on("error", (error) => {
        failure ??= new LineSocketError({ message: error.message })
      })
      socket.on("close", () => void lines.unsafeDone(failure ? Exit.fail(failure) : Exit.void))
      if (socket.destroyed) lines.unsafeDone(Exit.void)
      return {
        lines,
        write: (text) => {
          if (!socket.destroyed && socket.writable) socket.write(text)
        },
        end: () => void socket.destroySoon(),
        destroy: () => void socket.destroy(),
        localPort: socket.localPort ?? 0
      } satisfies LineSocket
    }),
    () => close(socket)
  )

const close = (socket: net.Socket): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (socket.destroyed) return resume(Effect.void)
    socket.once("close", () => resume(Effect.void))
    socket.destroySoon()
  }).pipe(
    Effect.timeoutTo({ duration: Duration.seconds(1), onTimeout: () => socket.destroy(), onSuccess: () => undefined })
  )

/** Options of an outgoing connection. */
export interface ConnectOptions extends LineSocketOptions {
  readonly host: string
  readonly port: number
  /** How long the TCP handshake may take; default 5 seconds. */
  readonly timeout?: Duration.DurationInput
}

/** Opens a TCP connection to `host:port`, read as lines; closed with the scope. */
export const connect = (options: ConnectOptions): Effect.Effect<LineSocket, LineSocketError, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    restore(open(options)).pipe(Effect.flatMap((socket) => fromSocket(socket, options)))
  )

const open = (options: ConnectOptions): Effect.Effect<net.Socket, LineSocketError> =>
  Effect.async<net.Socket, LineSocketError>((resume) => {
    const socket = net.connect({ host: options.host, port: options.port })
    let connected = false
    const fail = (message: string) => {
      if (connected) return // from now on the LineSocket reports errors
      socket.destroy()
      resume(Effect.fail(new LineSocketError({ message: `connect to ${options.host}:${options.port}: ${message}` })))
    }
    socket.setTimeout(Duration.toMillis(options.timeout ?? Duration.seconds(5)))
    socket.on("error", (error) => fail(error.message))
    socket.once("timeout", () => fail("timed out"))
    socket.once("connect", () => {
      connected = true
      socket.setTimeout(0)
      resume(Effect.succeed(socket))
    })
    return Effect.sync(() => socket.destroy())
  })
