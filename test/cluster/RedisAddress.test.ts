import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Exit } from "effect"
import * as ClusterConfig from "../../src/cluster/ClusterConfig.js"
import * as RedisAddress from "../../src/cluster/RedisAddress.js"

const parsed = (url: string) => Either.getOrThrow(RedisAddress.parse(url))
const refused = (url: string) => Either.getLeft(RedisAddress.parse(url)).pipe((left) => left._tag === "Some" ? left.value.message : "accepted")

describe("RedisAddress", () => {
  it("passes redis:// and rediss:// to ioredis as they are, TLS told apart", () => {
    expect(parsed("redis://10.0.0.9:6379")).toMatchObject({ _tag: "Direct", url: "redis://10.0.0.9:6379", tls: false })
    expect(parsed("rediss://user:s3cret@cache.example.com:6380/2")).toMatchObject({
      _tag: "Direct",
      tls: true,
      redacted: "rediss://user:***@cache.example.com:6380/2"
    })
  })

  it("reads Sentinel addresses, names and options in every accepted form", () => {
    expect(parsed("redis+sentinel://:pw%40x@10.0.0.1:26379,10.0.0.2,[::1]:26380/mymaster/3?sentinelPassword=sp")).toEqual({
      _tag: "Sentinel",
      sentinels: [{ host: "10.0.0.1", port: 26379 }, { host: "10.0.0.2", port: 26379 }, { host: "::1", port: 26380 }],
      name: "mymaster",
      username: undefined,
      password: "pw@x",
      sentinelUsername: undefined,
      sentinelPassword: "sp",
      db: 3,
      tls: false,
      redacted: "redis+sentinel://:***@10.0.0.1:26379,10.0.0.2,[::1]:26380/mymaster/3?sentinelPassword=***"
    })
    expect(parsed("sentinel://s1:5000/fleet?db=1&sentinel_username=watcher&sentinel_password=x")).toMatchObject({
      sentinels: [{ host: "s1", port: 5000 }],
      name: "fleet",
      db: 1,
      sentinelUsername: "watcher",
      sentinelPassword: "x",
      tls: false
    })
    expect(parsed("rediss+sentinel://app:pw@s1,s2/m")).toMatchObject({ username: "app", password: "pw", tls: true, db: 0 })
  })

  it("refuses what cannot work, saying why, and never shows a password", () => {
    const cases: Record<string, string> = {
      "10.0.0.9:6379": "is not a URL",
      "http://10.0.0.9:6379": `unknown scheme "http://"`,
      "redis://:pw@/0": "is not a URL",
      "redis:///0": "names no host",
      "redis://h:6379/x": "database number",
      "redis+sentinel://:pw@s1:26379,s2:26379": "names no master group",
      "redis+sentinel://:pw@s1:26379,,s2/m": `"" is not a Sentinel address`,
      "redis+sentinel://:pw@s1:99999/m": `"s1:99999" is not a Sentinel address`,
      "redis+sentinel://:pw@/m": "names no Sentinel",
      "redis+sentinel://:pw@s1/m/one": "the database must be a number",
      "redis+sentinel://:pw@s1/m?sentinelPassword=pw&tls=1": `unknown option "tls"`,
      "redis+sentinel://:pw@s1/m/0/extra": "the path must be /<master name>[/db]"
    }
    for (const [url, why] of Object.entries(cases)) {
      const message = refused(url)
      expect(message, url).toContain(why)
      expect(message, url).toContain("REDIS_URL")
      expect(message, url).not.toContain("pw")
    }
  })

  it("a bad REDIS_URL stops the configuration with the reason and without the password", () => {
    const read = (url: string) =>
      Effect.runSyncExit(Effect.withConfigProvider(ClusterConfig.config, ConfigProvider.fromMap(new Map([["REDIS_URL", url]]))))
    const bad = read("redis+sentinel://:hunter2@s1:26379")
    expect(Exit.isFailure(bad)).toBe(true)
    const text = String(Exit.isFailure(bad) ? bad.cause : "")
    expect(text).toContain("names no master group")
    expect(text).not.toContain("hunter2")
    expect(Exit.isSuccess(read("redis+sentinel://:hunter2@s1:26379/mymaster"))).toBe(true)
  })

  it("describes an address without its passwords", () => {
    expect(RedisAddress.describe(parsed("redis+sentinel://:pw@s1,[::1]:26380/m?sentinelPassword=sp"))).toBe(
      `the master "m" of the Sentinels s1:26379,[::1]:26380`
    )
    expect(RedisAddress.describe(parsed("rediss://:pw@h:6380"))).toBe("Redis rediss://:***@h:6380")
  })
})
