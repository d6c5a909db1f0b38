import type { AddressInfo } from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import * as ws from "ws"
import { WebSocket, WebSocketServer } from "ws"
import * as WebSocketFrame from "../../src/http/WebSocketFrame.js"

/** ws's own framing (exported by ws, not by its type declarations). */
const { Sender } = ws as unknown as {
  readonly Sender: {
    frame(
      data: Buffer,
      options: { fin: boolean; rsv1: boolean; opcode: number; mask: boolean; readOnly: boolean }
    ): Array<Buffer>
  }
}

/** What `ws` itself writes for `data`: the frame of an unmasked, final, uncompressed message. */
const wsFrame = (data: string | Uint8Array) => {
  const binary = typeof data !== "string"
  const list = Sender.frame(binary ? Buffer.from(data) : Buffer.from(data, "utf8"), {
    fin: true,
    rsv1: false,
    opcode: binary ? 2 : 1,
    mask: false,
    readOnly: false
  })
  return Buffer.concat(list)
}

const lengths = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000]
const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7) & 0xff)
const text = (n: number) => "é".repeat(Math.floor(n / 2)) + "x".repeat(n % 2)

let close: Array<() => void> = []
afterEach(() => {
  for (const c of close) c()
  close = []
})

describe("WebSocketFrame", () => {
  it("builds, byte for byte, the frame ws would write, at every length encoding", () => {
    for (const n of lengths) {
      expect(WebSocketFrame.of(bytes(n)).equals(wsFrame(bytes(n))), `binary ${n}`).toBe(true)
      expect(WebSocketFrame.of(text(n)).equals(wsFrame(text(n))), `text ${n}`).toBe(true)
    }
  })

  it("frames the payload of a broadcast once", () => {
    const payload = bytes(300)
    expect(WebSocketFrame.of(payload)).toBe(WebSocketFrame.of(payload))
    expect(WebSocketFrame.of(bytes(300))).not.toBe(WebSocketFrame.of(payload))
  })

  it("reaches a ws client, written straight to the server's TCP connection, between ws's own frames", async () => {
    const server = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false })
    await new Promise((resolve) => server.once("listening", resolve))
    close.push(() => server.close())
    const accepted = new Promise<WebSocket>((resolve) => server.once("connection", resolve))
    const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`, { perMessageDeflate: false })
    close.push(() => client.terminate())
    const received: Array<string> = []
    const all = new Promise<void>((resolve) =>
      client.on("message", (data: Buffer, isBinary) => {
        received.push(isBinary ? `binary ${data.length} ${data.equals(Buffer.from(bytes(data.length)))}` : `text ${data.toString()}`)
        if (received.length === 4) resolve()
      })
    )
    const socket = await accepted
    expect(socket.extensions).toBe("")
    const transport = (socket as unknown as { _socket: import("node:net").Socket })._socket
    transport.write(WebSocketFrame.of("héllo"))
    socket.send("from ws")
    transport.write(WebSocketFrame.of(bytes(70_000)))
    transport.write(WebSocketFrame.of(bytes(200)))
    await all
    expect(received).toEqual(["text héllo", "text from ws", "binary 70000 true", "binary 200 true"])
  })
})
