import * as Effect from "effect/Effect"
import type { ActorSystem } from "../../../../src/actors/ActorSystem.js"
import type * as PubSub from "../../../../src/actors/PubSub.js"
import * as Registry from "../../../../src/actors/Registry.js"
import type * as Placement from "../../../../src/links/Placement.js"
import type * as SampleColumns from "../../../../src/links/SampleColumns.js"
import * as AgvLink from "../../../../src/links/vda5050/AgvLink.js"
import * as MqttLink from "../../../../src/links/vda5050/MqttLink.js"
import type * as OfficialSchemas from "../../../../src/links/vda5050/OfficialSchemas.js"
import { ChildSpec, DynamicSupervisor } from "../../../../src/supervisors/index.js"

/**
 * The VDA 5050 half of the fleet, as the fleet wires it: a `links` dynamic supervisor and the
 * `mqtt` broker connection, which starts an `agv:<manufacturer>/<serial>` link under `links` for
 * each AGV it discovers.
 */
export const start = (options: {
  readonly system: ActorSystem
  readonly hub: PubSub.PubSub
  readonly registry: Registry.Registry<string, any>
  readonly url: string
  readonly prefix: string
  readonly agvOptions?: Partial<AgvLink.AgvLinkOptions> | undefined
  /** Check messages on the ingest thread (`MqttLink`'s `ingestThread`). */
  readonly ingestThread?: boolean | undefined
  /** How many ingest threads (`MqttLink`'s `ingestThreads`). */
  readonly ingestThreads?: number | undefined
  /** The official schemas messages are checked against (`MqttLink`'s `officialSchemas`). */
  readonly officialSchemas?: OfficialSchemas.OfficialSchemas | undefined
  /** Admit AGVs as the fleet does: an AGV it did not know starts on probation. Absent: every AGV, none on probation. */
  readonly admission?: MqttLink.Admission | undefined
  /** `links`' restart intensity; default 100. */
  readonly linksMaxRestarts?: number | undefined
  /** The fleet's sample columns: each link gets a slot, as the fleet gives them. */
  readonly samples?: SampleColumns.Directory | undefined
  /** Hears each link started, and whether the fleet knew its AGV. */
  readonly onStart?: ((robot: string, known: boolean) => void) | undefined
  /** Which AGVs this node runs (`MqttLink`'s `placement`); links it takes away are terminated under `links`. */
  readonly placement?: Placement.Placement | undefined
}) =>
  Effect.gen(function*() {
    const { hub, registry, system } = options
    const links = yield* system.spawn(DynamicSupervisor.make({ maxRestarts: options.linksMaxRestarts ?? 100 }), { name: "links" })
    const mqtt = yield* system.spawn(
      MqttLink.make({
        url: options.url,
        prefix: options.prefix,
        ingestThread: options.ingestThread,
        ingestThreads: options.ingestThreads,
        officialSchemas: options.officialSchemas,
        registry,
        admission: options.admission,
        samples: options.samples,
        placement: options.placement,
        stopAgv: (identity) =>
          Effect.ignore(Effect.flatMap(Registry.whereis(registry, MqttLink.agvKey(identity)), (ref) =>
            ref._tag === "None" ? Effect.void : DynamicSupervisor.terminateChild(links, ref.value))),
        startAgv: (identity, outbox, known) => {
          options.onStart?.(AgvLink.robotId(identity), known)
          const probation = options.admission !== undefined && !known
          const slot = options.samples?.assign(AgvLink.robotId(identity))
          const samples = slot === undefined ? undefined : { columns: options.samples!.columns, slot }
          return DynamicSupervisor.startChild(
            links,
            ChildSpec.make(MqttLink.agvKey(identity), AgvLink.make({ identity, hub, outbox, probation, samples, ...options.agvOptions }), {
              restart: "transient",
              via: Registry.via(registry, MqttLink.agvKey(identity))
            })
          )
        }
      }),
      { name: "mqtt" }
    )
    return { links, mqtt }
  })
