/**
 * The settings that make a node one of several sharing a fleet through Redis: `REDIS_URL` (none:
 * a single node, no Redis), `NODE_ID` and the lease TTL. Each is declared once here (`Setting`),
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
  })
})

/** The cluster's settings, in the order of `--help` and the docs. */
export const settings: ReadonlyArray<Setting.Setting<unknown>> = Object.values(declared)

/** Reads the cluster's settings, declared above. */
export const config: Config.Config<ClusterSettings> = Config.all({
  redisUrl: declared.redisUrl.config,
  nodeId: Config.map(declared.nodeId.config, Option.getOrElse(() => `${os.hostname()}-${process.pid}`)),
  leaseTtlMs: declared.leaseTtlMs.config
})
