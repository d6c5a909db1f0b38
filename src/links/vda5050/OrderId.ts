/**
 * The `orderId` fleetvisor gives the orders it sends, and which node sent one.
 *
 * On a single node an order is `fleetvisor-<time>`; with several nodes it names its sender,
 * `fleetvisor-<node>-<time>`, where `<time>` is the sending time in ms, base 36. Base 36 has no
 * `-`, so the time is what follows the last `-` and the node is everything between the first
 * `fleetvisor-` and that last `-`: a node id may itself contain `-` (`fleet-a`), and any other
 * character a node id may hold (all but `|`), without ambiguity. The AGV simulator reads the
 * sender back to flag orders from two nodes in one lease period.
 *
 * @since 0.1.0
 */

const PREFIX = "fleetvisor-"

/** The orderId of an order `node` sends at `at` (ms since the epoch); without a node, the single node's form. */
export const make = (node: string | undefined, at: number): string =>
  node === undefined ? `${PREFIX}${at.toString(36)}` : `${PREFIX}${node}-${at.toString(36)}`

/** The node that sent an order, read from its orderId; undefined for a single node's order or one fleetvisor did not send. */
export const senderOf = (orderId: string): string | undefined => {
  if (!orderId.startsWith(PREFIX)) return undefined
  const rest = orderId.slice(PREFIX.length)
  const last = rest.lastIndexOf("-")
  if (last <= 0 || !/^[0-9a-z]+$/.test(rest.slice(last + 1))) return undefined
  return rest.slice(0, last)
}
