/**
 * Identity on every connection, against the real service in-process (real sockets, a real
 * token file, JWTs signed with keys made here): AUTH=tokens and AUTH=jwt, refusals at the HTTP
 * routes, at /ws and /foxglove (4401/4403 after the handshake), roles per fleet RPC, the audit
 * row of an operator, revocation by the token file, the login cookie, and the start rule.
 */
import { describe, expect, it } from "@effect/vitest"
import Sqlite from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Stream from "effect/Stream"
import * as jose from "jose"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as TestKit from "../../src/actors/TestKit.js"
import * as FleetvisorClient from "../../src/client/FleetvisorClient.js"
import * as ServiceConfig from "../../src/http/ServiceConfig.js"
import * as Setting from "../../src/node/Setting.js"
import * as TokenFile from "../../src/http/TokenFile.js"
import * as Main from "../../src/main.js"
import type * as MainTypes from "../../src/main.js"
import * as FleetNode from "../service/support/FleetNode.js"
import { root } from "../service/support/ServiceProcess.js"
import { addToken, openSocket, refusedWith, request } from "./support/AuthClients.js"
import * as TestService from "./support/TestService.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>) =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error as { _tag: string } : undefined

const json = "fleetvisor.v1.json"
const bearer = (token: string) => `fleetvisor.bearer.${token}`

const wsUrl = (service: MainTypes.Service) => `${service.url.replace(/^http/, "ws")}/ws`

const client = (service: MainTypes.Service, token: string) =>
  Effect.gen(function*() {
    const client = yield* FleetvisorClient.make({
      url: wsUrl(service),
      wire: "json",
      token,
      disableTracing: true,
      reconnect: { initialDelay: "20 millis", maxDelay: "100 millis" }
    })
    yield* client.ready
    return client
  }).pipe(Effect.provide(NodeSocket.layerWebSocketConstructor))

const metric = (text: string, name: string, labels: string) =>
  Number(new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, "m").exec(text)?.[1] ?? 0)

describe("AUTH=tokens", () => {
  it.scopedLive("no, wrong or expired tokens are refused everywhere; roles are checked per route and per RPC; the audit names the user", () =>
    Effect.gen(function*() {
      const dir = yield* TestService.tempDirectory
      const file = path.join(dir, "tokens.json")
      const viewer = yield* addToken(file, "vera", ["viewer"])
      const operator = yield* addToken(file, "alice", ["operator"])
      const admin = yield* addToken(file, "root", ["admin"])
      const expired = yield* addToken(file, "old", ["admin"], new Date(Date.now() - 60_000))
      expect(fs.statSync(file).mode & 0o777).toBe(0o600)
      const node = yield* FleetNode.start({
        arms: 2,
        agvs: 0,
        env: { AUTH: "tokens", AUTH_TOKENS_FILE: file, FLEET_LEASE_TTL_MS: "600000" }
      })
      const { service } = node
      const [arm, otherArm] = node.arms

      // HTTP: the probes and the pages are public, their data is not.
      yield* Effect.promise(async () => {
        expect((await request(`${service.url}/healthz`)).status).toBe(200)
        expect((await request(`${service.url}/metrics`)).status).toBe(200)
        expect((await request(`${service.url}/fleet/`)).status).toBe(200)
        expect((await request(`${service.url}/login`)).status).toBe(200)
        const none = await request(`${service.url}/stream`)
        expect(none.status).toBe(401)
        expect(none.headers["www-authenticate"]).toBe("Bearer realm=\"fleetvisor\"")
        const wrong = await request(`${service.url}/stream`, { headers: { authorization: `Bearer ${operator}x` } })
        expect(wrong.status).toBe(401)
        expect(wrong.headers["www-authenticate"]).toMatch(/error="invalid_token"/)
        expect(JSON.parse((await request(`${service.url}/stream`, { headers: { authorization: `Bearer ${expired}` } })).body))
          .toEqual({ error: "The credential has expired" })
        const stream = await request(`${service.url}/stream`, { headers: { authorization: `Bearer ${viewer}` }, maxBytes: 10 })
        expect(stream.status).toBe(200)
        // An operator is not an admin: the actor tree is refused; an admin reads it.
        expect((await request(`${service.url}/admin/actors`, { headers: { authorization: `Bearer ${operator}` } })).status).toBe(403)
        expect((await request(`${service.url}/admin/actors`, { headers: { authorization: `Bearer ${admin}` } })).status).toBe(200)
        // A DNS-rebound page reaches the port by another name: 421 before any credential is looked at.
        expect((await request(`${service.url}/admin/actors`, { headers: { authorization: `Bearer ${admin}`, host: "evil.example" } })).status)
          .toBe(421)
      })

      // /ws: the handshake completes and the session closes at once with 4401; the token is never echoed.
      yield* Effect.promise(async () => {
        expect(await refusedWith(wsUrl(service), [json])).toMatchObject({ code: 4401, selected: json })
        expect((await refusedWith(wsUrl(service), [json, bearer("fvt_wrong")])).code).toBe(4401)
        const old = await refusedWith(wsUrl(service), [bearer(expired), json])
        expect(old).toMatchObject({ code: 4401, selected: json })
        expect(old.reason).toMatch(/expired/)
        const good = await openSocket(wsUrl(service), [bearer(viewer), json])
        expect(good.selected).toBe(json)
        expect(JSON.stringify(good.responseHeaders)).not.toContain(viewer)
        good.ws.close()
      })

      // A viewer subscribes and may stop (STOP_ROLE=viewer) but may not take a lease.
      const vera = yield* client(service, viewer)
      const first = yield* vera.rpc.FleetSubscribe({}).pipe(Stream.take(1), Stream.runCollect)
      expect([...first][0]!._tag).toBe("FleetSnapshot")
      expect(failureOf(yield* Effect.exit(vera.rpc.FleetAcquire({ robot: arm })))).toMatchObject({
        _tag: "Forbidden",
        needed: "operator",
        user: "vera"
      })
      expect(failureOf(yield* Effect.exit(vera.rpc.FleetCommand({ robot: arm, command: { _tag: "Pause" } }))))
        .toMatchObject({ _tag: "Forbidden" })
      yield* vera.rpc.FleetEmergencyStop({ robot: otherArm })

      // An operator takes a lease and commands; the dashboard shows the user's name as the holder.
      const alice = yield* client(service, operator)
      yield* alice.rpc.FleetAcquire({ robot: arm })
      yield* alice.rpc.FleetCommand({ robot: arm, command: { _tag: "Pause" } })
      yield* TestKit.awaitUntil(
        Effect.map(node.fleet.state, (view) => view.robots.find((r) => r.id === arm)?.controlledBy === "alice"),
        { waitedFor: `${arm} shown as held by alice` }
      )
      const db = new Sqlite(path.join(service.config.dataDir, "fleetvisor.db"), { readonly: true })
      const audit = db.prepare("SELECT who, role, session, robot, command, result FROM audit_log ORDER BY id").all() as Array<
        Record<string, unknown>
      >
      db.close()
      expect(audit.map(({ session: _, ...row }) => row)).toEqual([
        { who: "vera", role: "viewer", robot: otherArm, command: "EmergencyStop", result: "ok" },
        { who: "alice", role: "operator", robot: arm, command: "Acquire", result: "ok" },
        { who: "alice", role: "operator", robot: arm, command: "Pause", result: "ok" }
      ])
      expect(audit.every((row) => typeof row.session === "string" && /^\d+$/.test(row.session as string))).toBe(true)

      const text = yield* service.metrics.text
      expect(metric(text, "fleetvisor_auth_refused_total", "reason=\"forbidden\",endpoint=\"rpc\"")).toBe(2)
      expect(metric(text, "fleetvisor_auth_refused_total", "reason=\"no_credential\",endpoint=\"ws\"")).toBe(1)
      expect(metric(text, "fleetvisor_auth_refused_total", "reason=\"expired\",endpoint=\"ws\"")).toBe(1)
      expect(metric(text, "fleetvisor_auth_refused_total", "reason=\"forbidden\",endpoint=\"http\"")).toBe(1)
    }), { timeout: 40_000 })

  it.scopedLive("a token removed from the file: its session closes with 4401 within 5 s, its lease is released, its stream ends, it is refused after", () =>
    Effect.gen(function*() {
      const dir = yield* TestService.tempDirectory
      const file = path.join(dir, "tokens.json")
      const stolen = yield* addToken(file, "mallory", ["operator"])
      const viewer = yield* addToken(file, "vera", ["viewer"])
      const node = yield* FleetNode.start({
        arms: 1,
        agvs: 0,
        env: { AUTH: "tokens", AUTH_TOKENS_FILE: file, FLEET_LEASE_TTL_MS: "600000" }
      })
      const { service } = node
      const [arm] = node.arms
      const url = wsUrl(service)

      // The attacker holds a lease over one session, and watches over another and an event stream.
      const attacker = yield* client(service, stolen)
      yield* attacker.rpc.FleetAcquire({ robot: arm })
      const raw = yield* Effect.promise(() => openSocket(url, [json, bearer(stolen)]))
      const sse = yield* Effect.promise(() =>
        new Promise<{ ended: Promise<number> }>((resolve, reject) => {
          const req = request(`${service.url}/stream`, { headers: { authorization: `Bearer ${stolen}` } })
          resolve({ ended: req.then(() => Date.now()) })
          req.catch(reject)
        })
      )
      const honest = yield* Effect.promise(() => openSocket(url, [json, bearer(viewer)]))
      yield* TestKit.awaitUntil(Effect.sync(() => service.auth.tracked() >= 4), { waitedFor: "four tracked connections" })

      // `fleetvisor token revoke mallory`: the file is rewritten (renamed over).
      const revokedAt = Date.now()
      const removed = yield* TokenFile.revoke(file, "mallory")
      expect(removed.map((entry) => entry.user)).toEqual(["mallory"])
      const closed = yield* Effect.promise(() => raw.closed)
      expect(closed.code).toBe(4401)
      expect(closed.reason).toMatch(/revoked/)
      const closeMs = closed.at - revokedAt
      expect(closeMs).toBeLessThan(5_000)
      const sseEndedMs = (yield* Effect.promise(() => sse.ended)) - revokedAt
      expect(sseEndedMs).toBeLessThan(5_000)
      yield* TestKit.awaitUntil(
        Effect.map(node.fleet.state, (view) => view.robots.find((r) => r.id === arm)?.controlledBy === undefined),
        { timeoutMillis: 5_000, waitedFor: "the attacker's lease released" }
      )
      const releasedMs = Date.now() - revokedAt
      console.log(JSON.stringify({ revocation: { closeMs, sseEndedMs, leaseReleasedMs: releasedMs } }))

      // Replaying the token now: refused at once. The honest viewer is still connected.
      expect((yield* Effect.promise(() => refusedWith(url, [json, bearer(stolen)]))).code).toBe(4401)
      expect((yield* Effect.promise(() => request(`${service.url}/stream`, { headers: { authorization: `Bearer ${stolen}` } }))).status)
        .toBe(401)
      expect(honest.ws.readyState).toBe(honest.ws.OPEN)
      honest.ws.close()

      // A file that does not parse keeps the tokens read before.
      fs.writeFileSync(file, "{ not json")
      yield* Effect.sleep("1500 millis")
      const still = yield* Effect.promise(() => openSocket(url, [json, bearer(viewer)]))
      expect(still.selected).toBe(json)
      still.ws.close()
      const text = yield* service.metrics.text
      expect(metric(text, "fleetvisor_auth_refused_total", "reason=\"revoked\",endpoint=\"ws\"")).toBe(2)
      expect(metric(text, "fleetvisor_auth_refused_total", "reason=\"revoked\",endpoint=\"sse\"")).toBe(1)
    }), { timeout: 40_000 })

  it.scopedLive("/foxglove takes ?token=; the login page sets an HttpOnly Secure SameSite=Strict cookie the sockets then carry", () =>
    Effect.gen(function*() {
      const dir = yield* TestService.tempDirectory
      const file = path.join(dir, "tokens.json")
      const viewer = yield* addToken(file, "vera", ["viewer"])
      const node = yield* FleetNode.start({ arms: 1, agvs: 0, env: { AUTH: "tokens", AUTH_TOKENS_FILE: file } })
      const { service } = node
      const foxglove = `${service.url.replace(/^http/, "ws")}/foxglove`
      yield* Effect.promise(async () => {
        expect(await refusedWith(foxglove, ["foxglove.websocket.v1"])).toMatchObject({ code: 4401, selected: "foxglove.websocket.v1" })
        const fox = await openSocket(`${foxglove}?token=${encodeURIComponent(viewer)}`, ["foxglove.websocket.v1"])
        expect(fox.selected).toBe("foxglove.websocket.v1")
        fox.ws.close()

        const bad = await request(`${service.url}/login`, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: "token=fvt_nope&next=%2Ffleet%2F"
        })
        expect(bad.status).toBe(401)
        expect(bad.headers["set-cookie"]).toBeUndefined()
        const login = await request(`${service.url}/login`, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: `token=${encodeURIComponent(viewer)}&next=${encodeURIComponent("//evil.example/")}`
        })
        expect(login.status).toBe(303)
        expect(login.headers.location).toBe("/fleet/")
        const cookie = login.headers["set-cookie"]![0]!
        expect(cookie).toMatch(/^fleetvisor_token=fvt_[\w-]+; HttpOnly; Secure; SameSite=Strict; Path=\/$/)
        const pair = cookie.split(";")[0]!
        const session = await openSocket(wsUrl(service), [json], { cookie: pair })
        expect(session.selected).toBe(json)
        session.ws.close()
        expect((await request(`${service.url}/stream`, { headers: { cookie: pair }, maxBytes: 10 })).status).toBe(200)
        // Another site's page carrying the cookie is still refused by Origin.
        await expect(openSocket(wsUrl(service), [json], { cookie: pair, origin: "https://evil.example" })).rejects.toThrow(/403/)
        const logout = await request(`${service.url}/logout`, { method: "POST" })
        expect(logout.headers["set-cookie"]![0]).toMatch(/^fleetvisor_token=; .*Max-Age=0/)
      })
    }), { timeout: 30_000 })
})

describe("AUTH=jwt", () => {
  it.scopedLive("good, badly signed, foreign issuer, foreign audience and expired JWTs; the roles claim; a JWT that expires closes its session", () =>
    Effect.gen(function*() {
      const dir = yield* TestService.tempDirectory
      const { privateKey, publicKey } = yield* Effect.promise(() => jose.generateKeyPair("ES256", { extractable: true }))
      const other = yield* Effect.promise(() => jose.generateKeyPair("ES256"))
      const keyFile = path.join(dir, "issuer.pem")
      fs.writeFileSync(keyFile, yield* Effect.promise(() => jose.exportSPKI(publicKey)))
      const sign = (claims: Record<string, unknown>, options: { key?: CryptoKey; issuer?: string; audience?: string; exp?: number | string } = {}) =>
        Effect.promise(() =>
          new jose.SignJWT(claims)
            .setProtectedHeader({ alg: "ES256" })
            .setIssuer(options.issuer ?? "https://idp.plant.example")
            .setAudience(options.audience ?? "fleetvisor")
            .setIssuedAt()
            .setExpirationTime(options.exp ?? "10 minutes")
            .sign(options.key ?? privateKey)
        )
      const service = yield* TestService.start({
        AUTH: "jwt",
        AUTH_JWT_KEY_FILE: keyFile,
        AUTH_JWT_ISSUER: "https://idp.plant.example",
        AUTH_JWT_AUDIENCE: "fleetvisor",
        AUTH_JWT_ROLES_CLAIM: "fleetvisor_roles"
      })
      const admin = yield* sign({ sub: "ada", fleetvisor_roles: ["admin"] })
      const viewer = yield* sign({ sub: "vic", fleetvisor_roles: "viewer" })
      const forged = yield* sign({ sub: "eve", fleetvisor_roles: ["admin"] }, { key: other.privateKey })
      const foreignIssuer = yield* sign({ sub: "ada", fleetvisor_roles: ["admin"] }, { issuer: "https://elsewhere.example" })
      const foreignAudience = yield* sign({ sub: "ada", fleetvisor_roles: ["admin"] }, { audience: "another-app" })
      const expired = yield* sign({ sub: "ada", fleetvisor_roles: ["admin"] }, { exp: Math.floor(Date.now() / 1000) - 60 })
      const short = yield* sign({ sub: "sam", fleetvisor_roles: ["viewer"] }, { exp: Math.floor(Date.now() / 1000) + 2 })
      const admin401 = async (token: string) =>
        (await request(`${service.url}/admin/actors`, { headers: { authorization: `Bearer ${token}` } })).status
      yield* Effect.promise(async () => {
        expect(await admin401(admin)).toBe(200)
        expect(await admin401(viewer)).toBe(403)
        expect(await admin401(forged)).toBe(401)
        expect(await admin401(foreignIssuer)).toBe(401)
        expect(await admin401(foreignAudience)).toBe(401)
        expect(await admin401(expired)).toBe(401)
        expect((await refusedWith(wsUrl(service), [json, bearer(forged)])).code).toBe(4401)
        const good = await openSocket(wsUrl(service), [json, bearer(viewer)])
        expect(good.selected).toBe(json)
        good.ws.close()
        // A JWT that expires while its session is open: closed with 4401 within a second or so.
        const soon = await openSocket(wsUrl(service), [json, bearer(short)])
        const closed = await soon.closed
        expect(closed.code).toBe(4401)
        expect(closed.reason).toMatch(/expired/)
      })
    }), { timeout: 30_000 })
})

describe("the start rule", () => {
  it("an unset AUTH is none only on a loopback HOST without TRUSTED_PROXIES", () => {
    const load = (env: Record<string, string>) => ServiceConfig.loadConfig(Main.config, new Map(), env)
    expect(load({ HOST: "127.0.0.1" })).toMatchObject({ _tag: "Right", right: { service: { auth: { mode: "none" } } } })
    expect(load({ HOST: "::1" })).toMatchObject({ _tag: "Right" })
    expect(load({ HOST: "0.0.0.0" })).toMatchObject({ _tag: "Left" })
    expect(load({ HOST: "127.0.0.1", TRUSTED_PROXIES: "loopback" })).toMatchObject({ _tag: "Left" })
    expect(load({ HOST: "0.0.0.0", AUTH: "none" })).toMatchObject({ _tag: "Right" })
    expect(load({ HOST: "0.0.0.0", AUTH: "tokens", DATA_DIR: "/var/lib/fleetvisor" })).toMatchObject({
      _tag: "Right",
      right: { service: { auth: { mode: "tokens", tokensFile: "/var/lib/fleetvisor/tokens.json", stopRole: "viewer" } } }
    })
    expect(load({ AUTH: "jwt", AUTH_JWT_KEY_FILE: "/k.pem", AUTH_JWT_ISSUER: "i" })).toMatchObject({
      _tag: "Left",
      left: ["AUTH_JWT_AUDIENCE: must be set with AUTH=jwt"]
    })
    expect(load({ AUTH: "password" })).toMatchObject({ _tag: "Left" })
  })

  it("the service process exits 78 and says why in one line when AUTH is unset on 0.0.0.0", () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fleetvisor-auth-"))
    try {
      const env: Record<string, string | undefined> = { ...process.env, PORT: "0", HOST: "0.0.0.0", DATA_DIR: dataDir }
      delete env.AUTH
      const run = spawnSync(process.execPath, ["--import", "tsx", "src/main.ts"], { cwd: root, env, encoding: "utf8", timeout: 60_000 })
      expect(run.status).toBe(78)
      const lines = run.stderr.trim().split("\n")
      expect(lines).toEqual([
        "fleetvisor: invalid configuration",
        "  AUTH: must be set when HOST (0.0.0.0) is not loopback or TRUSTED_PROXIES is set: AUTH=tokens or AUTH=jwt, or AUTH=none to let anyone who reaches the port move robots"
      ])
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true })
    }
  }, 60_000)

  it("every auth setting is listed by --help and documented in docs/service.md", () => {
    const usage = Setting.usage(Main.allSettings)
    const docs = fs.readFileSync(new URL("../../docs/service.md", import.meta.url), "utf8")
    for (const name of ["AUTH", "AUTH_TOKENS_FILE", "AUTH_JWT_KEY_FILE", "AUTH_JWT_ISSUER", "AUTH_JWT_AUDIENCE", "AUTH_JWT_ROLES_CLAIM", "AUTH_JWT_USER_CLAIM", "STOP_ROLE"]) {
      const flag = `--${name.toLowerCase().replaceAll("_", "-")}`
      expect(usage, name).toContain(flag)
      expect(docs, name).toContain(`| \`${name}\` | \`${flag}\` |`)
    }
  })
})
