/**
 * Frames written to one socket within one turn of the event loop leave in one system call.
 *
 * On loopback and on busy servers a WebSocket frame costs little to build and a lot to send: each
 * `send` is a `writev`, and the kernel's TCP path runs once per call. When a broadcast gives a
 * socket several frames in the same turn (a burst of topics, a publisher faster than the tick),
 * the first goes out at once, as it would without batching, and the socket is corked for the
 * rest; when the turn ends (`process.nextTick`) every corked socket is uncorked and its frames
 * are written together. A socket that gets one frame per turn is never corked, so its latency is
 * that of a plain `send`.
 *
 * @since 0.1.0
 */
import type { Duplex } from "node:stream"

/** A writer whose socket can be batched: it carries the batch state of the current turn. */
export interface Batched {
  /** The TCP connection under the WebSocket. */
  readonly transport: Duplex
  /** 0: not written this turn; 1: written once; 2: corked until the turn ends. */
  writesThisTurn: number
}

let touched: Array<Batched> = []
let spare: Array<Batched> = []
let scheduled = false

const endTurn = (): void => {
  scheduled = false
  const writers = touched
  touched = spare
  spare = writers
  for (let i = 0; i < writers.length; i++) {
    const writer = writers[i]
    if (writer.writesThisTurn === 2) writer.transport.uncork()
    writer.writesThisTurn = 0
  }
  writers.length = 0
}

/** Call before each write to `writer`'s socket: from its second write in a turn on, the socket is corked until the turn ends. */
export const beforeWrite = (writer: Batched): void => {
  switch (writer.writesThisTurn) {
    case 0:
      writer.writesThisTurn = 1
      touched.push(writer)
      if (!scheduled) {
        scheduled = true
        process.nextTick(endTurn)
      }
      return
    case 1:
      writer.writesThisTurn = 2
      writer.transport.cork()
  }
}
