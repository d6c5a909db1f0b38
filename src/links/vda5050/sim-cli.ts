/**
 * Runs simulated VDA 5050 AGVs until interrupted (Ctrl-C sends OFFLINE for each).
 *
 *     npx tsx src/links/vda5050/sim-cli.ts --broker mqtt://127.0.0.1:1883 --count 5 --hz 10
 *
 * Without --broker it starts an embedded broker on 127.0.0.1:18830 and prints its URL. An order
 * of one node less than --lease-period ms (default 5000) after another node's is logged as a
 * duplicate owner.
 */
import { NodeRuntime } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import { parseArgs } from "node:util"
import * as EmbeddedBroker from "../mqtt/EmbeddedBroker.js"
import * as AgvSimulator from "./AgvSimulator.js"
import * as Topic from "./Topic.js"

const { values } = parseArgs({
  options: {
    broker: { type: "string" },
    count: { type: "string", default: "3" },
    prefix: { type: "string", default: Topic.DEFAULT_PREFIX },
    hz: { type: "string", default: "10" },
    manufacturer: { type: "string", default: "fleetvisor" },
    seed: { type: "string", default: "1" },
    "lease-period": { type: "string", default: "5000" }
  }
})

const program = Effect.gen(function* () {
  const brokerUrl = yield* EmbeddedBroker.urlOrEmbedded(values.broker)
  const sim = yield* AgvSimulator.make({
    brokerUrl,
    prefix: values.prefix,
    manufacturer: values.manufacturer,
    count: Number(values.count),
    visualizationHz: Number(values.hz),
    mapSeed: Number(values.seed),
    leasePeriodMs: Number(values["lease-period"])
  })
  yield* Effect.log(
    `${sim.agvs.length} AGVs on ${brokerUrl} (map ${sim.map.mapId}, ${sim.map.nodes.length} nodes); ` +
      `subscribe to ${Topic.subscriptionFilter(sim.prefix)}; orders of two nodes within ${values["lease-period"]} ms are logged as duplicate owners`
  )
  return yield* Effect.never
})

NodeRuntime.runMain(Effect.scoped(program))
