import * as net from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import * as WriteBatch from "../../src/http/WriteBatch.js"

/** A real TCP connection on 127.0.0.1: the server's end as a batched writer, and what the client received. */
const connection = async () => {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve))
  const client = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1")
  let received = ""
  client.on("data", (chunk) => (received += chunk.toString()))
  const transport = await accepted
  const writer: WriteBatch.Batched = { transport, writesThisTurn: 0 }
  const write = (text: string) => {
    WriteBatch.beforeWrite(writer)
    transport.write(text)
  }
  const close = () => {
    client.destroy()
    transport.destroy()
    server.close()
  }
  return { transport, write, received: () => received, close }
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve))

let open: Array<() => void> = []
afterEach(() => {
  for (const close of open) close()
  open = []
})

describe("WriteBatch", () => {
  it("writes the first frame of a turn at once, holds the rest until the turn ends, then writes them together", async () => {
    const conn = await connection()
    open.push(conn.close)

    conn.write("one;")
    expect(conn.transport.writableCorked).toBe(0)
    expect(conn.transport.writableLength).toBe(0)

    conn.write("two;")
    conn.write("three;")
    expect(conn.transport.writableCorked).toBe(1)
    expect(conn.transport.writableLength).toBe("two;three;".length)

    await nextTurn()
    expect(conn.transport.writableCorked).toBe(0)
    expect(conn.transport.writableLength).toBe(0)
    await expect.poll(conn.received).toBe("one;two;three;")
  })

  it("starts afresh every turn: a socket written once per turn is never corked", async () => {
    const conn = await connection()
    open.push(conn.close)
    for (let turn = 0; turn < 3; turn++) {
      conn.write(`${turn};`)
      expect(conn.transport.writableCorked).toBe(0)
      await nextTurn()
    }
    await expect.poll(conn.received).toBe("0;1;2;")
  })

  it("batches each socket on its own", async () => {
    const a = await connection()
    const b = await connection()
    open.push(a.close, b.close)
    a.write("a1;")
    b.write("b1;")
    a.write("a2;")
    expect(a.transport.writableCorked).toBe(1)
    expect(b.transport.writableCorked).toBe(0)
    await nextTurn()
    await expect.poll(a.received).toBe("a1;a2;")
    await expect.poll(b.received).toBe("b1;")
  })
})
