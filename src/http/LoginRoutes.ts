/**
 * The login page, for browsers: `GET /login` is a small form where a token is pasted, `POST
 * /login` checks it with the {@link Authenticator} and sets it as the `fleetvisor_token` cookie
 * (`HttpOnly; Secure; SameSite=Strict; Path=/`), then redirects to the dashboard (or to a local
 * `next`); `POST /logout` clears the cookie. The pages' WebSockets, event streams and requests
 * then carry the cookie by themselves (`Authenticator.credentialOf`).
 *
 * `Secure` cookies are kept by browsers over HTTPS, and over plain HTTP only for `localhost`:
 * serve TLS (`TLS_CERT_FILE`) or put a TLS-terminating proxy in front (docs/security.md).
 * A `POST` from a page of a foreign origin is refused (403), as upgrades are.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type { IncomingMessage, ServerResponse } from "node:http"
import * as Authenticator from "./Authenticator.js"
import * as ClientAddress from "./ClientAddress.js"
import * as HostCheck from "./HostCheck.js"
import * as Route from "./Route.js"

/** What the login routes need. */
export interface LoginOptions {
  readonly auth: Authenticator.Authenticator
  /** Origins besides the server's own whose pages may post the form (`ALLOWED_ORIGINS`). */
  readonly allowedOrigins: ReadonlyArray<string>
  readonly trustedProxies?: ClientAddress.TrustedProxies | undefined
  /** Counts refused sign-ins. */
  readonly onRefused?: ((reason: Authenticator.RefuseReason) => void) | undefined
  /** Where to go after signing in when the form names nowhere; default `/fleet/`. */
  readonly home?: string | undefined
}

/** The largest form accepted: a token and a path. */
const maxBody = 8 * 1024

const escape = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/** `next` if it is a path of this server (`/fleet/`), else `fallback`: never another site. */
export const safeNext = (next: string | null | undefined, fallback: string): string =>
  typeof next === "string" && /^\/(?![/\\])[\x21-\x7e]*$/.test(next) ? next : fallback

const page = (options: { readonly next: string; readonly error?: string | undefined; readonly note?: string | undefined }) =>
  `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>fleetvisor · sign in</title>
  <style>
    :root { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; color: #1d232a; background: #f7f8fa; }
    main { max-width: 34rem; margin: 4rem auto; padding: 0 1rem; }
    h1 { font-size: 1.2rem; margin: 0.5rem 0 1rem; }
    .muted { color: #6b7785; font-weight: normal; }
    .error { color: #b3261e; }
    label { display: block; margin-bottom: 0.5rem; }
    input { width: 100%; box-sizing: border-box; font: inherit; padding: 4px 6px; margin-top: 0.3rem; }
    button { font: inherit; margin-top: 0.6rem; padding: 3px 12px; }
  </style>
</head>
<body>
  <main>
    <h1>fleetvisor <span class="muted">sign in</span></h1>
    ${options.note === undefined ? "" : `<p class="muted">${escape(options.note)}</p>`}
    <form method="post" action="/login">
      <label>Access token <input name="token" type="password" autocomplete="current-password" required autofocus></label>
      <input type="hidden" name="next" value="${escape(options.next)}">
      <button type="submit">Sign in</button>
      ${options.error === undefined ? "" : `<p class="error">${escape(options.error)}</p>`}
    </form>
    <p class="muted">Ask an admin for a token (<code>fleetvisor token add --user you --role operator</code>).</p>
    <form method="post" action="/logout"><button type="submit">Sign out</button></form>
  </main>
</body>
</html>
`

const html = (response: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) => {
  response.writeHead(status, {
    "content-type": "text/html; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ...headers
  })
  response.end(body)
}

const readForm = (request: IncomingMessage): Promise<URLSearchParams | undefined> =>
  new Promise((resolve) => {
    const chunks: Array<Buffer> = []
    let size = 0
    request.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size > maxBody) {
        resolve(undefined)
        request.destroy()
        return
      }
      chunks.push(chunk)
    })
    request.on("end", () => resolve(new URLSearchParams(Buffer.concat(chunks).toString("utf8"))))
    request.on("error", () => resolve(undefined))
  })

/** The cookie that holds `token` until `expiresAt` (ms; absent: the browser session). */
export const cookie = (token: string, expiresAt?: number | undefined): string => {
  const maxAge = expiresAt === undefined ? "" : `; Max-Age=${Math.max(0, Math.floor((expiresAt - Date.now()) / 1000))}`
  return `${Authenticator.cookieName}=${token}; HttpOnly; Secure; SameSite=Strict; Path=/${maxAge}`
}

/** The cookie that clears the token. */
export const clearedCookie = `${Authenticator.cookieName}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0`

/** `GET /login`, `POST /login`, `POST /logout`; all public (they are how one gets in). */
export const routes = (options: LoginOptions): ReadonlyArray<Route.Route> => {
  const home = options.home ?? "/fleet/"
  const note = options.auth.mode === "none" ? "This server needs no sign-in (AUTH=none): everyone may do everything." : undefined
  const sameOrigin = (request: IncomingMessage, response: ServerResponse) => {
    if (HostCheck.originAllowed(request, options.allowedOrigins)) return true
    Route.text(response, 403, "Origin not allowed\n")
    return false
  }
  return [
    Route.make("GET", "/login", (_, response, url) =>
      html(response, 200, page({ next: safeNext(url.searchParams.get("next"), home), note })), { access: "public" }),
    Route.make("POST", "/login", async (request, response) => {
      if (!sameOrigin(request, response)) return
      const form = await readForm(request)
      if (form === undefined) return Route.text(response, 413, "Form too large\n")
      const next = safeNext(form.get("next"), home)
      const token = (form.get("token") ?? "").trim()
      const address = ClientAddress.ofRequest(request, options.trustedProxies ?? ClientAddress.none)
      const credential = token === "" ? undefined : { token, from: "cookie" as const }
      const exit = await Effect.runPromiseExit(options.auth.authenticate(credential, address))
      if (Exit.isSuccess(exit)) {
        response.writeHead(303, {
          location: next,
          "cache-control": "no-store",
          ...(options.auth.mode === "none" ? {} : { "set-cookie": cookie(token, exit.value.expiresAt) })
        })
        return void response.end()
      }
      const error = Option.getOrUndefined(Cause.failureOption(exit.cause))
      if (error !== undefined) options.onRefused?.(Authenticator.reasonOf(error))
      html(response, 401, page({ next, error: error?.message ?? "Sign-in failed" }))
    }, { access: "public" }),
    Route.make("POST", "/logout", (request, response) => {
      if (!sameOrigin(request, response)) return
      response.writeHead(303, { location: "/login", "set-cookie": clearedCookie, "cache-control": "no-store" })
      response.end()
    }, { access: "public" })
  ]
}
