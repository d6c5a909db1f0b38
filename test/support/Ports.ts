/**
 * Ports on 127.0.0.1 for tests that start servers of their own (a Mosquitto, a service on a
 * fixed port): one nothing listens on now, and whether one accepts connections yet.
 */
import * as net from "node:net"

/** A port nothing listens on now: bound, then released. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer().once("error", reject).listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

/** Whether something accepts a connection on the port now. */
export const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1")
    socket.once("connect", () => (socket.destroy(), resolve(true))).once("error", () => resolve(false))
  })

/** Waits (up to 5 s) until the port accepts connections; fails saying what did not start. */
export const awaitListening = async (port: number, what: string): Promise<void> => {
  for (let i = 0; i < 100 && !(await accepts(port)); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  if (!(await accepts(port))) throw new Error(`${what} did not start on 127.0.0.1:${port}`)
}
