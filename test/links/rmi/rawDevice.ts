/**
 * A remote device without the client, for tests of the simulator: a bare line socket that
 * sends whatever the test says and hands back each reply line by line.
 */
import { Effect, Either, type Scope } from "effect"
import * as LineSocket from "../../../src/links/rmi/LineSocket.js"
import * as RmiPacket from "../../../src/links/rmi/RmiPacket.js"

export interface RawDevice {
  readonly send: (packet: RmiPacket.Request | string) => void
  /** The next packet from the controller. */
  readonly next: Effect.Effect<RmiPacket.Reply>
  /** Succeeds once the controller has closed the connection. */
  readonly closed: Effect.Effect<void>
}

/** Connects to `port` without any handshake. */
export const connectRaw = (port: number): Effect.Effect<RawDevice, never, Scope.Scope> =>
  Effect.gen(function*() {
    const socket = yield* Effect.orDie(LineSocket.connect({ host: "127.0.0.1", port }))
    return {
      send: (packet) => socket.write(typeof packet === "string" ? packet : RmiPacket.encode(packet)),
      next: socket.lines.take.pipe(Effect.orDie, Effect.map((line) => Either.getOrThrow(RmiPacket.decodeReply(line)))),
      closed: socket.lines.await.pipe(Effect.ignore)
    }
  })

/** Does the FRC_Connect handshake on `port` and returns the device connected to the session port. */
export const openSession = (port: number): Effect.Effect<RawDevice & { readonly sessionPort: number }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const reply = yield* Effect.scoped(
      Effect.flatMap(connectRaw(port), (device) => {
        device.send({ Communication: "FRC_Connect" })
        return device.next
      })
    )
    if (!("PortNumber" in reply)) return yield* Effect.dieMessage(`FRC_Connect refused: ${JSON.stringify(reply)}`)
    const device = yield* connectRaw(reply.PortNumber)
    return { ...device, sessionPort: reply.PortNumber }
  })

/** A wait of `seconds` seconds; queued behind nothing, it finishes `seconds / timeScale` later. */
export const waitTime = (SequenceID: number, seconds: number): RmiPacket.Instruction => ({
  Instruction: "FRC_WaitTime",
  SequenceID,
  Time: seconds
})
