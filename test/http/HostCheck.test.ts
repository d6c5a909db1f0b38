/**
 * The `Host` rule against DNS rebinding, as a pure function, and `ALLOWED_HOSTS` as a setting.
 */
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as os from "node:os"
import { describe, expect, it } from "vitest"
import * as HostCheck from "../../src/http/HostCheck.js"
import * as ServiceConfig from "../../src/http/ServiceConfig.js"
import * as Setting from "../../src/node/Setting.js"

const loopbackOnly = { listenHost: "127.0.0.1", allowedHosts: [] }
const everywhere = { listenHost: "0.0.0.0", allowedHosts: [] }

describe("HostCheck.allowedHost", () => {
  it("allows loopback names, any IP address and the listen host, with any port", () => {
    for (const host of ["localhost", "localhost:8080", "LOCALHOST:1", "localhost.", "app.localhost:8080", "127.0.0.1:8080", "127.0.0.1", "[::1]:8080", "[::1]", "::1"]) {
      expect(HostCheck.allowedHost(host, loopbackOnly), host).toBe(true)
    }
    // An address cannot be rebound: a browser sends it only to the address it connects to.
    for (const host of ["10.0.0.5:8080", "192.168.1.20", "[fd00::5]:8080", "0.0.0.0:8080"]) {
      expect(HostCheck.allowedHost(host, everywhere), host).toBe(true)
    }
    expect(HostCheck.allowedHost("fleet-box:8080", { listenHost: "fleet-box", allowedHosts: [] })).toBe(true)
    expect(HostCheck.allowedHost("FLEET-BOX.", { listenHost: "fleet-box", allowedHosts: [] })).toBe(true)
  })

  it("refuses any other name, also ones that look like loopback", () => {
    for (const host of ["evil.example:8080", "evil.example", "localhost.evil.example", "127.0.0.1.nip.io:8080", "fleet-box", "", " ", "a:b:c", "[::1", "evil.example:80/x", "user@localhost"]) {
      expect(HostCheck.allowedHost(host, loopbackOnly), JSON.stringify(host)).toBe(false)
    }
    expect(HostCheck.allowedHost("evil.example:8080", everywhere)).toBe(false)
  })

  it("allows ALLOWED_HOSTS entries: a name, every name under a .suffix, or anything for *", () => {
    const plant = { listenHost: "0.0.0.0", allowedHosts: ["fleet.plant.example", ".cells.example"] }
    expect(HostCheck.allowedHost("fleet.plant.example:8080", plant)).toBe(true)
    expect(HostCheck.allowedHost("Fleet.Plant.Example.", plant)).toBe(true)
    expect(HostCheck.allowedHost("other.plant.example", plant)).toBe(false)
    expect(HostCheck.allowedHost("cell-1.cells.example:8080", plant)).toBe(true)
    expect(HostCheck.allowedHost("cells.example", plant)).toBe(false)
    expect(HostCheck.allowedHost("evilcells.example", plant)).toBe(false)
    expect(HostCheck.allowedHost("evil.example", { listenHost: "127.0.0.1", allowedHosts: ["*"] })).toBe(true)
  })

  it("a request without Host (HTTP/1.0) is allowed: no browser sends one", () => {
    expect(HostCheck.allowedHost(undefined, loopbackOnly)).toBe(true)
  })

  it("the service also answers to the machine's own name", () => {
    const options = HostCheck.forService("0.0.0.0", [])
    expect(HostCheck.allowedHost(`${os.hostname()}:8080`, options)).toBe(true)
    expect(HostCheck.allowedHost("evil.example", options)).toBe(false)
  })
})

describe("ALLOWED_HOSTS", () => {
  it("is empty by default, reads names and suffixes, and refuses ports and URLs", () => {
    const byDefault = Either.getOrThrow(ServiceConfig.load(new Map(), {}))
    expect(byDefault.allowedHosts).toEqual([])
    const set = Either.getOrThrow(ServiceConfig.load(new Map(), { ALLOWED_HOSTS: "fleet.plant.example, .cells.example,10.0.0.5" }))
    expect(set.allowedHosts).toEqual(["fleet.plant.example", ".cells.example", "10.0.0.5"])
    for (const bad of ["fleet.plant.example:8080", "http://fleet.plant.example", "a b"]) {
      const errors = Either.getLeft(ServiceConfig.load(new Map(), { ALLOWED_HOSTS: bad }))
      expect(Option.getOrThrow(errors)[0], bad).toMatch(/^ALLOWED_HOSTS: must be a comma-separated list of host names/)
    }
  })

  it("the other edge settings have deliberate defaults", () => {
    const config = Either.getOrThrow(ServiceConfig.load(new Map(), {}))
    expect(config.maxSseStreams).toBe(1000)
    expect(config.maxSseStreamsPerAddress).toBe(100)
    expect(config.foxgloveAllowedOrigins).toEqual(["https://app.foxglove.dev"])
    expect(config.foxgloveMaxConnectionsPerAddress).toBe(8)
    expect(Setting.usage(ServiceConfig.settings)).toContain("--allowed-hosts")
    expect(Setting.usage(ServiceConfig.settings)).toContain("--headers-timeout")
  })
})
