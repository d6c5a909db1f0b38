/**
 * The settings that make a node one of several sharing a fleet through Redis: `REDIS_URL` (none:
 * a single node, no Redis), `NODE_ID`, the lease TTL, and where the node link listens. Each is declared once here (`Setting`),
 * for `--help`, the flags and the settings table of docs/service.md.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as os from "node:os"
import * as Setting from "../node/Setting.js"
import * as Membership from "./Membership.js"
import * as RedisAddress from "./RedisAddress.js"

/** How this node takes part in a cluster. */
export interface ClusterSettings {
  /** The cluster's Redis; none: this node is alone and runs every robot. */
  readonly redisUrl: Option.Option<string>
  /** This node's id, unique in the cluster. */
  readonly nodeId: string
  /** A robot lease's TTL, ms: how long a dead node's robots wait for another node. */
  readonly leaseTtlMs: number
  /** The node link's TCP port (0: a free one chosen at start). */
  readonly port: number
  /** The interface the node link listens on. */
  readonly bind: string
  /** The host the other nodes reach this one at. */
  readonly advertise: string
  /** A file holding the cluster's shared secret, if any. */
  readonly secretFile: Option.Option<string>
  /** The URL browsers reach this node at directly, announced to the others; none: dashboards send no stop here from another node. */
  readonly publicUrl: Option.Option<string>
}

const nodeId = (name: string) =>
  Config.string(name).pipe(
    Config.mapOrFail((id) =>
      Membership.validNodeId(id) ? Either.right(id) : Either.left(ConfigError.InvalidData([], `"${id}" must be non-empty, without "|"`))
    )
  )

/** A `REDIS_URL` that {@link RedisAddress.parse} reads; the error redacts any password. */
const redisUrl = (name: string) =>
  Config.string(name).pipe(
    Config.mapOrFail((url) =>
      Either.match(RedisAddress.parse(url), {
        onLeft: (error) => Either.left(ConfigError.InvalidData([], error.reason)),
        onRight: () => Either.right(url)
      })
    )
  )

const ttl = (name: string) =>
  Config.integer(name).pipe(
    Config.mapOrFail((n) =>
      n >= 1_000 && n <= 60_000 ? Either.right(n) : Either.left(ConfigError.InvalidData([], `${n} must be between 1000 and 60000`))
    )
  )

const port = (name: string) =>
  Config.integer(name).pipe(
    Config.mapOrFail((n) =>
      n >= 0 && n <= 65_535 ? Either.right(n) : Either.left(ConfigError.InvalidData([], `${n} must be a TCP port (0–65535)`))
    )
  )

const host = (name: string) =>
  Config.string(name).pipe(
    Config.mapOrFail((h) =>
      h.length > 0 && !/[\s/]/.test(h) ? Either.right(h) : Either.left(ConfigError.InvalidData([], `"${h}" must be a host name or address`))
    )
  )

const publicUrl = (name: string) =>
  Config.string(name).pipe(
    Config.mapOrFail((url) => {
      const parsed = URL.canParse(url) ? new URL(url) : undefined
      return parsed !== undefined && (parsed.protocol === "http:" || parsed.protocol === "https:")
        ? Either.right(url.replace(/\/+$/, ""))
        : Either.left(ConfigError.InvalidData([], `"${url}" must be an http:// or https:// URL`))
    })
  )

const declared = Setting.group("Cluster", {
  redisUrl: Setting.optional("REDIS_URL", {
    config: redisUrl,
    unset: "(none)",
    help:
      "The Redis several nodes share a fleet through, e.g. `redis://10.0.0.9:6379`, `rediss://…` (TLS, a managed Redis) or `redis+sentinel://10.0.0.9:26379,10.0.0.10:26379/mymaster` (Sentinel): each robot's link then runs on exactly one node and every node's dashboards see every robot ([cluster.md](cluster.md#running-several-nodes-what-works-today), [Sentinel](cluster.md#redis-with-sentinel-or-a-managed-redis)). None: a single node that runs every robot."
  }),
  nodeId: Setting.optional("NODE_ID", {
    config: nodeId,
    unset: "`<hostname>-<pid>`",
    help: "This node's id in the cluster: unique, non-empty, without `|`. Keep it across restarts (a systemd unit's name, say)."
  }),
  leaseTtlMs: Setting.make("CLUSTER_LEASE_TTL_MS", {
    config: ttl,
    default: "5000",
    help:
      "A robot lease's TTL in ms (1000–60000): a node that dies has its robots run elsewhere within about this plus 2 s; renewed every third of it."
  }),
  port: Setting.make("CLUSTER_PORT", {
    config: port,
    default: "0",
    shown: "`0` (a free port)",
    help:
      "The TCP port of this node's link to the other nodes (remote commands and stops, [cluster.md](cluster.md#node-links)); 0: a free port chosen at start, announced through Redis. Set one to open it in a firewall."
  }),
  bind: Setting.make("CLUSTER_BIND", {
    config: host,
    default: "0.0.0.0",
    help: "The interface the node link listens on: `0.0.0.0` (every IPv4 interface), a host's address, or `::` for IPv6 as well."
  }),
  advertise: Setting.optional("CLUSTER_ADVERTISE", {
    config: host,
    unset: "the hostname",
    help: "The host name or address the other nodes reach this node's link at, announced with the port in its heartbeat."
  }),
  secretFile: Setting.optional("CLUSTER_SECRET_FILE", {
    config: Config.string,
    unset: "(none)",
    help:
      "A file (readable only by the service) holding a secret of at least 16 bytes shared by every node: a peer that does not prove it knows it is refused. None: any peer that reaches the port is trusted."
  }),
  publicUrl: Setting.optional("CLUSTER_PUBLIC_URL", {
    config: publicUrl,
    unset: "(none)",
    help:
      "The URL browsers reach this node at directly, e.g. `https://fleet.plant.example/nodes/fleet-a` (a path of the proxy, so that the login cookie goes along): announced to the other nodes, whose dashboards send each emergency stop here too ([cluster.md](cluster.md#the-dashboard-sends-a-stop-to-two-nodes)). None: no dashboard of another node sends its stops here."
  })
})

/** The cluster's settings, in the order of `--help` and the docs. */
export const settings: ReadonlyArray<Setting.Setting<unknown>> = Object.values(declared)

/** Reads the cluster's settings, declared above. */
export const config: Config.Config<ClusterSettings> = Config.all({
  redisUrl: declared.redisUrl.config,
  nodeId: Config.map(declared.nodeId.config, Option.getOrElse(() => `${os.hostname()}-${process.pid}`)),
  leaseTtlMs: declared.leaseTtlMs.config,
  port: declared.port.config,
  bind: declared.bind.config,
  advertise: Config.map(declared.advertise.config, Option.getOrElse(() => os.hostname())),
  secretFile: declared.secretFile.config,
  publicUrl: declared.publicUrl.config
})
