/**
 * A plain MQTT subscriber to every AGV's `instantActions` under a prefix, as the cluster's stop
 * tests read what reached the broker: each message's AGV, headerId, action types, the id of its
 * `cancelOrder` (which names the node that sent it) and when it was heard.
 */
import * as Mqtt from "mqtt"

/** One `instantActions` message heard. */
export interface Heard {
  readonly robot: string
  readonly headerId: number
  readonly types: ReadonlyArray<string>
  readonly cancelId: string | undefined
  /** `performance.now()` when it was heard. */
  readonly at: number
}

/** Listens to `<prefix>/+/+/instantActions` on `brokerUrl`; `heard` grows as messages come, until `close`. */
export const listenInstantActions = async (brokerUrl: string, prefix: string) => {
  const heard: Array<Heard> = []
  const subscriber = await Mqtt.connectAsync(brokerUrl)
  subscriber.on("message", (_, payload) => {
    const message = JSON.parse(payload.toString()) as {
      headerId: number
      manufacturer: string
      serialNumber: string
      actions: ReadonlyArray<{ actionType: string; actionId: string }>
    }
    heard.push({
      robot: `${message.manufacturer}/${message.serialNumber}`,
      headerId: message.headerId,
      types: message.actions.map((action) => action.actionType),
      cancelId: message.actions.find((action) => action.actionType === "cancelOrder")?.actionId,
      at: performance.now()
    })
  })
  await subscriber.subscribeAsync(`${prefix}/+/+/instantActions`)
  return { heard, close: () => subscriber.endAsync() }
}
