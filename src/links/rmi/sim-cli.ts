/**
 * Runs RMI simulators from the command line until Ctrl-C:
 *
 *     tsx src/links/rmi/sim-cli.ts --port 16001 --count 3 --time-scale 1 --idle-timeout 3600
 *
 * starts three simulated robots whose connect ports are 16001, 16002 and 16003; each
 * announces a session port picked by the system.
 */
import { parseArgs } from "node:util"
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { runSimulator } from "./RmiSimulator.js"

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "16001" },
    count: { type: "string", default: "1" },
    "time-scale": { type: "string", default: "1" },
    "idle-timeout": { type: "string", default: "3600" }
  }
})

const number = (name: keyof typeof values, valid: (n: number) => boolean): number => {
  const n = Number(values[name])
  if (!valid(n)) {
    console.error(`--${name} ${values[name]} is not valid`)
    process.exit(2)
  }
  return n
}

const port = number("port", (n) => Number.isInteger(n) && n >= 0 && n < 65536)
const count = number("count", (n) => Number.isInteger(n) && n >= 1)
const timeScale = number("time-scale", (n) => n > 0)
const idleSeconds = number("idle-timeout", (n) => n > 0)

Effect.forEach(
  Array.from({ length: count }, (_, i) => (port === 0 ? 0 : port + i)),
  (robotPort) => runSimulator({ host: values.host, port: robotPort, timeScale, idleTimeout: `${idleSeconds} seconds` }),
  { concurrency: "unbounded", discard: true }
).pipe(NodeRuntime.runMain)
