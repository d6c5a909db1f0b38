/**
 * How every broker connection of the node (the fleet's, the ingest thread's, the stop channel's
 * thread's, the demo's simulators') reaches a protected broker: a user name, a password read
 * from a file, a private CA and a client certificate and key read from files, and why the
 * broker or TLS refused it.
 *
 * - The files are read when a client is made and again before each reconnect
 *   ({@link secureClient}), so a rotated password or certificate (systemd `LoadCredential=`, a
 *   renewal job) is picked up without a restart. A file that cannot be read at a reconnect
 *   keeps the last secrets and is reported.
 * - Credentials inline in the URL (`mqtt://user:pass@host`) still work; the settings win over
 *   them. URLs are logged only through {@link redactUrl}.
 * - Consecutive failed attempts back off: the reconnect period doubles from its base up to a
 *   ceiling and returns to the base on the next connect.
 * - {@link refusal} turns what mqtt.js or TLS threw into a reason of a small fixed set (a
 *   metric label, a sampling key) and one line saying what to check; never a secret.
 *
 * Used by the main thread and by the threads that connect on their own (ingest, stop channel).
 *
 * @since 0.1.0
 */
import type { IClientOptions, MqttClient } from "mqtt"
import * as fs from "node:fs"

/** How to authenticate to the broker: a user name, and file paths read at each (re)connect. Plain data: it crosses to threads. */
export interface BrokerSecurity {
  readonly username?: string | undefined
  /** Its content, one trailing newline removed, is the password. */
  readonly passwordFile?: string | undefined
  /** PEM CA bundle the broker's certificate must chain to (`mqtts://`, `wss://`). */
  readonly caFile?: string | undefined
  /** PEM client certificate and its key, for brokers that require one; both or neither. */
  readonly certFile?: string | undefined
  readonly keyFile?: string | undefined
}

/** What the files hold, read now. */
export interface BrokerSecrets {
  username?: string
  password?: string
  ca?: Buffer
  cert?: Buffer
  key?: Buffer
}

/** Why a connection failed, as a fixed set (metric labels, sampling keys). */
export type RefusalReason =
  | "bad-credentials"
  | "not-authorized"
  | "refused"
  | "unknown-ca"
  | "certificate-required"
  | "bad-certificate"
  | "hostname"
  | "expired"
  | "tls"
  | "secret-file"
  | "unreachable"
  | "other"

/** A failure's reason and one line saying what happened and what to check. */
export interface Refusal {
  readonly reason: RefusalReason
  readonly text: string
}

/** The settings' names, for the lines that tell the operator what to set. */
const setting: Record<"passwordFile" | "caFile" | "certFile" | "keyFile", string> = {
  passwordFile: "FLEET_MQTT_PASSWORD_FILE",
  caFile: "FLEET_MQTT_CA_FILE",
  certFile: "FLEET_MQTT_CERT_FILE",
  keyFile: "FLEET_MQTT_KEY_FILE"
}

/** A secret file that could not be read: names the setting and the path, never the content. */
export class BrokerSecretError extends Error {
  readonly code = "BROKER_SECRET_FILE"
  constructor(settingName: string, path: string, cause: unknown) {
    const reason = cause as { code?: unknown; message?: unknown } | undefined
    super(`${settingName} ${path} cannot be read (${reason?.code ?? reason?.message ?? String(cause)})`)
    this.name = "BrokerSecretError"
  }
}

function read(key: keyof typeof setting, path: string, encoding: "utf8"): string
function read(key: keyof typeof setting, path: string): Buffer
function read(key: keyof typeof setting, path: string, encoding?: "utf8"): string | Buffer {
  try {
    return fs.readFileSync(path, encoding)
  } catch (error) {
    throw new BrokerSecretError(setting[key], path, error)
  }
}

/** True when `url` carries a password (`mqtt://user:pass@host`). */
export const hasInlinePassword = (url: string): boolean => {
  try {
    return new URL(url).password !== ""
  } catch {
    return /\/\/[^/@]*:[^/@]*@/.test(url)
  }
}

/** `url` with its password replaced by `***`, for logs. */
export const redactUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password === "") return url
    parsed.password = "***"
    return parsed.toString()
  } catch {
    return url.replace(/(\/\/[^/@:]*):[^/@]*@/, "$1:***@")
  }
}

/** The user name and password of `url`'s user info, decoded (undefined when absent). */
const inlineCredentials = (url: string): { username: string | undefined; password: string | undefined } => {
  try {
    const parsed = new URL(url)
    return {
      username: parsed.username === "" ? undefined : decodeURIComponent(parsed.username),
      password: parsed.password === "" ? undefined : decodeURIComponent(parsed.password)
    }
  } catch {
    return { username: undefined, password: undefined }
  }
}

/** `url` without user info: mqtt.js would otherwise let it override the options' credentials. */
const withoutCredentials = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.username === "" && parsed.password === "") return url
    parsed.username = ""
    parsed.password = ""
    return parsed.toString()
  } catch {
    return url
  }
}

/**
 * Reads the secrets now: `{ username, password, ca, cert, key }` (fields left out when not set).
 * The password file's content loses one trailing newline (`\n` or `\r\n`). Throws
 * {@link BrokerSecretError}.
 */
export const readSecrets = (security: BrokerSecurity = {}): BrokerSecrets => {
  const secrets: BrokerSecrets = {}
  if (security.username !== undefined && security.username !== "") secrets.username = security.username
  if (security.passwordFile !== undefined) secrets.password = read("passwordFile", security.passwordFile, "utf8").replace(/\r?\n$/, "")
  if (security.caFile !== undefined) secrets.ca = read("caFile", security.caFile)
  if (security.certFile !== undefined) secrets.cert = read("certFile", security.certFile)
  if (security.keyFile !== undefined) secrets.key = read("keyFile", security.keyFile)
  return secrets
}

const tlsFields = ["ca", "cert", "key"] as const

/** Writes `secrets` into a client's options, and into its WebSocket options (`wss://`), which mqtt.js copies once. */
const apply = (options: IClientOptions, secrets: BrokerSecrets) => {
  Object.assign(options, secrets)
  if (options.wsOptions !== undefined) {
    for (const field of tlsFields) if (secrets[field] !== undefined) (options.wsOptions as Record<string, unknown>)[field] = secrets[field]
  }
}

/**
 * The URL and options to give `mqtt.connect` for `url` under `security`: the URL without user
 * info, `options` with the credentials (the settings', else the URL's) and the TLS files read.
 * Throws {@link BrokerSecretError}.
 */
export const connectArguments = (
  url: string,
  security: BrokerSecurity | undefined,
  options: IClientOptions
): { readonly url: string; readonly options: IClientOptions } => {
  const inline = inlineCredentials(url)
  const secrets = readSecrets(security)
  const merged: IClientOptions = { ...options }
  if (inline.username !== undefined) merged.username = inline.username
  if (inline.password !== undefined) merged.password = inline.password
  apply(merged, secrets)
  return { url: withoutCredentials(url), options: merged }
}

/**
 * Keeps `client` (made from {@link connectArguments}) up to date: reads the secrets again before
 * each reconnect, and backs the reconnect period off from `options.reconnectPeriod` (its base)
 * to `maxReconnectPeriod` while attempts fail. `onSecretError` hears of a file that could not
 * be read (the last secrets are kept).
 */
export const secureClient = (
  client: MqttClient,
  security: BrokerSecurity | undefined,
  { maxReconnectPeriod = 10_000, onSecretError = () => {} }: {
    readonly maxReconnectPeriod?: number
    readonly onSecretError?: (error: BrokerSecretError) => void
  } = {}
): MqttClient => {
  const base = client.options.reconnectPeriod ?? 0
  let failures = 0
  client.on("reconnect", () => {
    try {
      apply(client.options, readSecrets(security))
    } catch (error) {
      onSecretError(error as BrokerSecretError)
    }
  })
  client.on("connect", () => {
    failures = 0
    client.options.reconnectPeriod = base
  })
  client.on("close", () => {
    failures++
    if (base > 0) client.options.reconnectPeriod = Math.min(maxReconnectPeriod, base * 2 ** Math.max(0, failures - 1))
  })
  return client
}

const certificateCodes = new Set<unknown>([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE"
])

const unreachableCodes = new Set<unknown>(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EPIPE"])

/**
 * Why a connection failed: `{ reason, text }`, `reason` one of `bad-credentials`,
 * `not-authorized`, `refused` (another CONNACK code), `unknown-ca`, `certificate-required`,
 * `bad-certificate`, `hostname`, `expired`, `tls`, `secret-file`, `unreachable`, `other`;
 * `text` says what happened and what to check.
 */
export const refusal = (error: unknown): Refusal => {
  const { code, message: text } = (error ?? {}) as { code?: unknown; message?: unknown }
  const message = String(text ?? error)
  if (code === "BROKER_SECRET_FILE") return { reason: "secret-file", text: message }
  if (typeof code === "number") {
    if (code === 4 || code === 134) {
      return { reason: "bad-credentials", text: `refused by the broker: bad user name or password (check FLEET_MQTT_USERNAME and FLEET_MQTT_PASSWORD_FILE)` }
    }
    if (code === 5 || code === 135) {
      return { reason: "not-authorized", text: `refused by the broker: not authorized (a wrong user name or password, or a user that may not connect: check FLEET_MQTT_USERNAME and FLEET_MQTT_PASSWORD_FILE)` }
    }
    return { reason: "refused", text: `refused by the broker: ${message}` }
  }
  if (certificateCodes.has(code)) {
    return { reason: "unknown-ca", text: `the broker's TLS certificate is not signed by a CA this node trusts (${code}; set FLEET_MQTT_CA_FILE to its CA)` }
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return { reason: "hostname", text: `the broker's TLS certificate does not name the host of FLEET_MQTT_URL (${message})` }
  }
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    return { reason: "expired", text: `the broker's TLS certificate is not valid now (${code})` }
  }
  if (/certificate required|alert handshake failure|peer did not return a certificate/i.test(message)) {
    return { reason: "certificate-required", text: `the broker requires a client certificate (set FLEET_MQTT_CERT_FILE and FLEET_MQTT_KEY_FILE): ${message}` }
  }
  if (/alert (bad|unknown|unsupported) certificate|alert unknown ca|certificate (revoked|expired)|alert decrypt/i.test(message)) {
    return { reason: "bad-certificate", text: `the broker refused this node's client certificate (FLEET_MQTT_CERT_FILE): ${message}` }
  }
  if (/ssl|tls|certificate/i.test(message) || (typeof code === "string" && code.startsWith("ERR_SSL"))) {
    return { reason: "tls", text: `TLS with the broker failed: ${message}` }
  }
  if (unreachableCodes.has(code)) return { reason: "unreachable", text: `the broker cannot be reached (${code})` }
  return { reason: "other", text: message }
}

/** Every reason {@link refusal} gives, in a fixed order (metric labels). */
export const refusalReasons: ReadonlyArray<RefusalReason> = [
  "bad-credentials",
  "not-authorized",
  "refused",
  "unknown-ca",
  "certificate-required",
  "bad-certificate",
  "hostname",
  "expired",
  "tls",
  "secret-file",
  "unreachable",
  "other"
]
