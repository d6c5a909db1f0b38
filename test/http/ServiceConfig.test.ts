import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { describe, expect, it } from "vitest"
import * as ServiceConfig from "../../src/http/ServiceConfig.js"
import * as Setting from "../../src/node/Setting.js"

describe("ServiceConfig", () => {
  it("has deliberate defaults", () => {
    const config = Either.getOrThrow(ServiceConfig.load(new Map(), {}))
    expect(config).toMatchObject({
      port: 8080,
      host: "127.0.0.1",
      dataDir: "./data",
      maxConnections: 20_000,
      maxFrameBytes: 65_536,
      rateLimit: { perSecond: 50, burst: 100 },
      allowedOrigins: []
    })
    expect(Duration.toMillis(config.heartbeat.interval)).toBe(15_000)
    expect(Option.isNone(config.adminToken)).toBe(true)
    expect(ServiceConfig.databaseFile(config)).toBe("data/fleetvisor.db")
  })

  it("reads the environment, and flags win over it", () => {
    const flags = Setting.parseFlags(["--port", "9001", "--heartbeat-interval=2 seconds"], ServiceConfig.settings)
    expect(flags).toEqual(new Map([["PORT", "9001"], ["HEARTBEAT_INTERVAL", "2 seconds"]]))
    const config = Either.getOrThrow(ServiceConfig.load(flags as Map<string, string>, {
      PORT: "8000",
      MAX_CONNECTIONS: "500",
      ADMIN_TOKEN: "0123456789abcdef",
      ALLOWED_ORIGINS: "https://ops.example.com/, http://10.0.0.5:8080"
    }))
    expect(config.port).toBe(9001)
    expect(config.maxConnections).toBe(500)
    expect(Duration.toMillis(config.heartbeat.interval)).toBe(2_000)
    expect(Option.map(config.adminToken, Redacted.value)).toEqual(Option.some("0123456789abcdef"))
    expect(config.allowedOrigins).toEqual(["https://ops.example.com", "http://10.0.0.5:8080"])
  })

  it("names every bad variable, once", () => {
    const errors = Either.getLeft(ServiceConfig.load(new Map(), {
      PORT: "70000",
      RATE_LIMIT_PER_SECOND: "-1",
      ADMIN_TOKEN: "short",
      ALLOWED_ORIGINS: "ops.example.com"
    }))
    expect(Option.getOrThrow(errors)).toEqual([
      "PORT: must be an integer from 0 to 65535",
      "RATE_LIMIT_PER_SECOND: must be a number above 0",
      "ADMIN_TOKEN: must be at least 16 characters",
      "ALLOWED_ORIGINS: must be a comma-separated list of origins like https://ops.example.com, or *"
    ])
  })

  it("refuses unknown flags and flags without a value", () => {
    expect(() => Setting.parseFlags(["--prot", "1"], ServiceConfig.settings)).toThrow(/Unknown argument --prot/)
    expect(() => Setting.parseFlags(["--port"], ServiceConfig.settings)).toThrow(/--port needs a value/)
    expect(Setting.parseFlags(["--help"], ServiceConfig.settings)).toBe("help")
  })
})
