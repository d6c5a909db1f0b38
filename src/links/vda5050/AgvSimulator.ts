/**
 * Simulated AGVs that speak VDA 5050 over MQTT, for demos, tests and load tests.
 *
 * Each AGV has its own MQTT connection whose last will is `…/connection` CONNECTIONBROKEN; it
 * announces itself ONLINE, drives loops of a small map until master control sends it an order,
 * reports `state` on every event and at least every `stateIntervalMs`, `visualization` at
 * `visualizationHz`, obeys the instant actions startPause, stopPause, cancelOrder, stateRequest
 * and factsheetRequest, and says OFFLINE when the scope closes. Faults are injected per AGV:
 * {@link SimulatedAgv.kill}, {@link SimulatedAgv.goOffline}, {@link SimulatedAgv.publishRaw}.
 *
 * It also checks that one node commands it at a time (issue #16): each order fleetvisor sends
 * names its node ({@link OrderId}); an order that arrives less than `leasePeriodMs` after an order
 * of another node counts a {@link DuplicateOwner} (logged as a warning, listed in
 * {@link AgvSimulator.duplicateOwners}).
 *
 * @example
 * ```ts
 * const sim = yield* AgvSimulator.make({ brokerUrl: "mqtt://127.0.0.1:1883", count: 3 })
 * yield* sim.agvs[0].kill // the broker publishes uagv/v2/fleetvisor/sim-0001/connection CONNECTIONBROKEN
 * ```
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { randomBytes } from "node:crypto"
import type * as BrokerSecurity from "../mqtt/BrokerSecurity.js"
import * as MqttConnection from "../mqtt/MqttConnection.js"
import type { Factsheet } from "./Factsheet.js"
import * as Header from "./Header.js"
import * as HeaderIds from "./HeaderIds.js"
import * as Vehicle from "./internal/vehicle.js"
import * as MessageCodec from "./MessageCodec.js"
import * as OrderId from "./OrderId.js"
import * as SimMap from "./SimMap.js"
import type { State } from "./State.js"
import * as Topic from "./Topic.js"
import * as LogSampler from "../../actors/LogSampler.js"

/** What to simulate, and where. */
export interface AgvSimulatorOptions {
  readonly brokerUrl: string
  /** Credentials and TLS files of a protected broker (the fleet's own, in the demo). */
  readonly security?: BrokerSecurity.BrokerSecurity | undefined
  /** Topic prefix (`interfaceName/majorVersion`); defaults to `uagv/v2`. */
  readonly prefix?: string
  /** Defaults to `fleetvisor`. */
  readonly manufacturer?: string
  readonly count: number
  /** AGV n (from 1) is `${serialPrefix}${n padded to 4 digits}`; defaults to `sim-`, giving `sim-0001`. */
  readonly serialPrefix?: string
  /** Visualization messages per second per AGV; 10 suits a dashboard, 0 sends none. */
  readonly visualizationHz?: number
  /** Longest time between two state messages; the specification's 30 s by default. */
  readonly stateIntervalMs?: number
  /** Seed of the map (see {@link SimMap.make}); defaults to 1. */
  readonly mapSeed?: number
  /** Driving speed in m/s; defaults to 1, a typical AGV speed indoors. */
  readonly speed?: number
  /** Whether AGVs drive loops of the map on their own until their first order; defaults to true. */
  readonly patrol?: boolean
  /**
   * Orders of two nodes closer than this, ms, count a duplicate owner; defaults to 5,000, the
   * cluster's default lease TTL. A lawful handover only guarantees the lease margin (500 ms)
   * between the old owner's last order and the new owner's first (the old one may order until its
   * own deadline, TTL − margin), so a check with a whole TTL sends no order for one period before
   * it moves robots on purpose (as the cluster's chaos test does).
   */
  readonly leasePeriodMs?: number
}

/** Orders from two nodes that reached one AGV within one lease period: two nodes commanded it as owners. */
export interface DuplicateOwner {
  /** `manufacturer/serialNumber`. */
  readonly agv: string
  /** The node of the earlier order, then the node of the later one. */
  readonly nodes: readonly [string, string]
  /** How far apart the two orders arrived, ms. */
  readonly apartMs: number
  /** When the later one arrived, ms since the epoch. */
  readonly at: number
}

/** One simulated AGV, to inspect and to mistreat. */
export interface SimulatedAgv extends Header.AgvIdentity {
  readonly clientId: string
  /** The full MQTT topic of `name` for this AGV, e.g. `uagv/v2/fleetvisor/sim-0001/state`. */
  readonly topic: (name: Topic.TopicName) => string
  /** What the AGV's next state message will say. */
  readonly state: Effect.Effect<Omit<State, keyof Header.Header>>
  readonly isConnected: Effect.Effect<boolean>
  /** Drops the TCP connection without DISCONNECT, so the broker publishes the last will (CONNECTIONBROKEN). */
  readonly kill: Effect.Effect<void>
  /** Leaves in an orderly way: publishes OFFLINE, then disconnects. */
  readonly goOffline: Effect.Effect<void>
  /** Connects again after {@link kill} or {@link goOffline}; the AGV then announces ONLINE. */
  readonly reconnect: Effect.Effect<void>
  /** Publishes any payload, valid or not, on one of this AGV's topics. */
  readonly publishRaw: (
    topic: Topic.TopicName,
    payload: string | Uint8Array
  ) => Effect.Effect<void, MqttConnection.MqttError>
  /** How many orders each node sent this AGV (read from their orderIds); orders without a node are not counted. */
  readonly ordersBy: Effect.Effect<ReadonlyMap<string, number>>
}

/** A running simulated fleet. */
export interface AgvSimulator {
  readonly prefix: string
  readonly map: SimMap.SimMap
  readonly agvs: ReadonlyArray<SimulatedAgv>
  /** Every duplicate owner seen so far, in order of arrival; there must be none. */
  readonly duplicateOwners: Effect.Effect<ReadonlyArray<DuplicateOwner>>
}

interface Config {
  readonly brokerUrl: string
  readonly security: BrokerSecurity.BrokerSecurity | undefined
  readonly prefix: string
  readonly manufacturer: string
  readonly serialPrefix: string
  readonly visualizationHz: number
  readonly visualizationPeriod: number
  readonly tickMs: number
  readonly stateIntervalMs: number
  readonly speed: number
  readonly patrol: boolean
  readonly instance: string
  readonly leasePeriodMs: number
}

const TURN_RATE = Math.PI / 2
/** The fleet moves at least 10 times a second, even when it sends no visualization. */
const MAX_TICK_MS = 100
const SUPPORTED_INSTANT_ACTIONS = ["startPause", "stopPause", "cancelOrder", "stateRequest", "factsheetRequest"]

const factsheet = (config: Config): Omit<Factsheet, keyof Header.Header> => ({
  typeSpecification: {
    seriesName: "fleetvisor simulated AGV",
    agvKinematic: "DIFF",
    agvClass: "CARRIER",
    maxLoadMass: 500,
    localizationTypes: ["NATURAL"],
    navigationTypes: ["AUTONOMOUS"]
  },
  physicalParameters: {
    speedMin: 0,
    speedMax: config.speed,
    accelerationMax: 1,
    decelerationMax: 1,
    heightMin: 0.3,
    heightMax: 0.3,
    width: 0.8,
    length: 1.2
  },
  protocolLimits: {
    maxStringLens: {},
    maxArrayLens: {},
    timing: {
      minOrderInterval: 0.1,
      minStateInterval: 0.1,
      defaultStateInterval: config.stateIntervalMs / 1000,
      ...(config.visualizationHz > 0 ? { visualizationInterval: 1 / config.visualizationHz } : {})
    }
  },
  protocolFeatures: {
    optionalParameters: [],
    agvActions: SUPPORTED_INSTANT_ACTIONS.map((actionType) => ({ actionType, actionScopes: ["INSTANT"] as const }))
  },
  agvGeometry: {},
  loadSpecification: {}
})

const startAgv = (
  config: Config,
  map: SimMap.SimMap,
  index: number,
  startNode: number,
  duplicates: Array<DuplicateOwner>
): Effect.Effect<{ readonly handle: SimulatedAgv; readonly tick: Effect.Effect<void> }, MqttConnection.MqttError, Scope.Scope> =>
  Effect.gen(function* () {
    const agv: Header.AgvIdentity = {
      manufacturer: config.manufacturer,
      serialNumber: `${config.serialPrefix}${String(index + 1).padStart(4, "0")}`
    }
    const topic = (name: Topic.TopicName) => Topic.format({ ...agv, topic: name }, config.prefix)
    const ids = yield* HeaderIds.make
    const stamp = <T extends Topic.TopicName>(name: T, body: Omit<MessageCodec.MessageOf<T>, keyof Header.Header>) =>
      Effect.gen(function* () {
        const header = Header.make(agv, yield* ids.next(name), yield* Clock.currentTimeMillis)
        return yield* Effect.orDie(MessageCodec.encode(name, { ...header, ...body } as MessageCodec.MessageOf<T>))
      })

    const clientId = `${agv.serialNumber}-${config.instance}`
    const connection = yield* MqttConnection.connect({
      url: config.brokerUrl,
      security: config.security,
      clientId,
      will: {
        topic: topic("connection"),
        payload: yield* stamp("connection", { connectionState: "CONNECTIONBROKEN" }),
        ...Topic.delivery.connection
      }
    })

    const send = <T extends Topic.TopicName>(name: T, body: Omit<MessageCodec.MessageOf<T>, keyof Header.Header>) =>
      Effect.gen(function* () {
        if (!(yield* connection.isConnected)) return
        const payload = yield* stamp(name, body)
        yield* connection.publish(topic(name), payload, Topic.delivery[name])
      }).pipe(Effect.catchTag("MqttError", (error) => Effect.logDebug(`${clientId}: ${error.message}`)))

    const vehicle = yield* Ref.make(Vehicle.make(map, startNode, config.patrol))
    const timers = { lastTick: yield* Clock.currentTimeMillis, lastState: 0, lastVisualization: 0 }
    const publishState = Effect.gen(function* () {
      timers.lastState = yield* Clock.currentTimeMillis
      yield* send("state", Vehicle.toState(yield* Ref.get(vehicle)))
    })

    /** Each node's latest order (arrival, ms since the epoch) and count. */
    const senders = new Map<string, { at: number; count: number }>()
    const checkSender = (orderId: string) =>
      Effect.gen(function* () {
        const node = OrderId.senderOf(orderId)
        if (node === undefined) return
        const now = yield* Clock.currentTimeMillis
        for (const [other, { at }] of senders) {
          if (other === node || now - at >= config.leasePeriodMs) continue
          const duplicate: DuplicateOwner = { agv: `${agv.manufacturer}/${agv.serialNumber}`, nodes: [other, node], apartMs: now - at, at: now }
          duplicates.push(duplicate)
          yield* Effect.logWarning(
            `${clientId}: duplicate owner: an order of ${node} ${duplicate.apartMs} ms after one of ${other} (lease period ${config.leasePeriodMs} ms)`
          )
        }
        senders.set(node, { at: now, count: (senders.get(node)?.count ?? 0) + 1 })
      })

    const onMessage = (topicName: string, payload: Uint8Array) =>
      Effect.gen(function* () {
        const parsed = Topic.parse(topicName, config.prefix)
        if (Either.isLeft(parsed)) return
        const name = parsed.right.topic
        if (name !== "order" && name !== "instantActions") return
        const decoded = MessageCodec.decode(name, payload)
        if (Either.isLeft(decoded)) {
          yield* Effect.logWarning(`${clientId}: ${LogSampler.excerpt(decoded.left.message)}`)
          yield* Ref.update(vehicle, (v) => Vehicle.rejectMessage(v, name, decoded.left.message))
        } else if (name === "order") {
          const order = decoded.right as MessageCodec.MessageOf<"order">
          yield* checkSender(order.orderId)
          yield* Ref.update(vehicle, (v) => Vehicle.acceptOrder(v, order, map))
        } else {
          const { actions } = decoded.right as MessageCodec.MessageOf<"instantActions">
          yield* Ref.update(vehicle, (v) => actions.reduce(Vehicle.instantAction, v))
          if (actions.some((a) => a.actionType === "factsheetRequest")) yield* send("factsheet", factsheet(config))
        }
        yield* publishState
      })

    const ready = yield* Deferred.make<void>()
    const onEvent = MqttConnection.MqttEvent.$match({
      Connected: () =>
        Effect.gen(function* () {
          yield* send("connection", { connectionState: "ONLINE" })
          yield* connection.subscribe([topic("order"), topic("instantActions")], 0).pipe(Effect.orDie)
          yield* publishState
          yield* Deferred.succeed(ready, undefined)
        }),
      Disconnected: () => Effect.void,
      Message: ({ payload, topic }) => onMessage(topic, payload)
    })

    const goOffline = Effect.gen(function* () {
      yield* send("connection", { connectionState: "OFFLINE" })
      yield* connection.end
    })
    yield* Effect.addFinalizer(() => goOffline)
    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(connection.events), onEvent)))
    yield* Deferred.await(ready)

    const motion = { speed: config.speed, turnRate: TURN_RATE }
    const tick = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const dt = Math.min(now - timers.lastTick, 1000) / 1000
      timers.lastTick = now
      const event = yield* Ref.modify(vehicle, (v) => {
        const step = Vehicle.step(v, dt, map, motion)
        return [step.event, step.vehicle]
      })
      if (event || now - timers.lastState >= config.stateIntervalMs) yield* publishState
      if (now - timers.lastVisualization >= config.visualizationPeriod - config.tickMs / 2) {
        timers.lastVisualization = now
        yield* send("visualization", Vehicle.toVisualization(yield* Ref.get(vehicle)))
      }
    })

    const handle: SimulatedAgv = {
      ...agv,
      clientId,
      topic,
      state: Effect.map(Ref.get(vehicle), Vehicle.toState),
      isConnected: connection.isConnected,
      kill: connection.drop,
      goOffline,
      reconnect: connection.reconnect,
      publishRaw: (name, payload) => connection.publish(topic(name), payload, Topic.delivery[name]),
      ordersBy: Effect.sync(() => new Map([...senders].map(([node, { count }]) => [node, count])))
    }
    return { handle, tick }
  })

/** Starts `count` simulated AGVs on the broker; they go OFFLINE and disconnect when the scope closes. */
export const make = (options: AgvSimulatorOptions): Effect.Effect<AgvSimulator, MqttConnection.MqttError, Scope.Scope> =>
  Effect.gen(function* () {
    const visualizationHz = options.visualizationHz ?? 10
    const visualizationPeriod = visualizationHz > 0 ? 1000 / visualizationHz : Infinity
    const config: Config = {
      brokerUrl: options.brokerUrl,
      security: options.security,
      prefix: options.prefix ?? Topic.DEFAULT_PREFIX,
      manufacturer: options.manufacturer ?? "fleetvisor",
      serialPrefix: options.serialPrefix ?? "sim-",
      visualizationHz,
      visualizationPeriod,
      tickMs: Math.min(visualizationPeriod, MAX_TICK_MS),
      stateIntervalMs: options.stateIntervalMs ?? 30_000,
      speed: options.speed ?? 1,
      patrol: options.patrol ?? true,
      instance: randomBytes(3).toString("hex"),
      leasePeriodMs: options.leasePeriodMs ?? 5_000
    }
    if (!Topic.isValidSerialNumber(`${config.serialPrefix}0001`)) {
      return yield* Effect.dieMessage(`serialPrefix "${config.serialPrefix}" must use only A-Z a-z 0-9 _ . : -`)
    }
    const map = SimMap.make(options.mapSeed ?? 1)
    const duplicates: Array<DuplicateOwner> = []
    const started = yield* Effect.forEach(
      Array.from({ length: options.count }, (_, i) => i),
      (index) => startAgv(config, map, index, Math.floor((index * map.nodes.length) / options.count), duplicates),
      { concurrency: 16 }
    )
    const tickAll = Effect.forEach(started, (agv) => agv.tick, { concurrency: "unbounded", discard: true })
    yield* Effect.forkScoped(Effect.repeat(tickAll, Schedule.fixed(config.tickMs)))
    return {
      prefix: config.prefix,
      map,
      agvs: started.map((agv) => agv.handle),
      duplicateOwners: Effect.sync(() => [...duplicates])
    }
  })
