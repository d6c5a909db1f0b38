/** Types of BrokerSecurity.mjs: credentials and TLS files of a broker connection, and why it was refused. */
import type { IClientOptions, MqttClient } from "mqtt"

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
  readonly username?: string
  readonly password?: string
  readonly ca?: Buffer
  readonly cert?: Buffer
  readonly key?: Buffer
}

/** A secret file that could not be read (names the setting and the path, never the content). */
export declare class BrokerSecretError extends Error {
  readonly code: "BROKER_SECRET_FILE"
  constructor(settingName: string, path: string, cause: unknown)
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

/** True when the URL carries a password (`mqtt://user:pass@host`). */
export declare const hasInlinePassword: (url: string) => boolean
/** The URL with its password replaced by `***`, for logs. */
export declare const redactUrl: (url: string) => string
/** Reads the files now; throws {@link BrokerSecretError}. */
export declare const readSecrets: (security?: BrokerSecurity) => BrokerSecrets
/** The URL (without user info) and options (credentials, TLS files read) to give `mqtt.connect`; throws {@link BrokerSecretError}. */
export declare const connectArguments: (
  url: string,
  security: BrokerSecurity | undefined,
  options: IClientOptions
) => { readonly url: string; readonly options: IClientOptions }
/** Reads the secrets again before each reconnect of `client`, and backs its reconnects off while they fail. */
export declare const secureClient: (
  client: MqttClient,
  security: BrokerSecurity | undefined,
  options?: { readonly maxReconnectPeriod?: number; readonly onSecretError?: (error: BrokerSecretError) => void }
) => MqttClient
/** Why a connection failed, as a reason and a line saying what to check. */
export declare const refusal: (error: unknown) => Refusal
/** Every {@link RefusalReason}, in a fixed order. */
export declare const refusalReasons: ReadonlyArray<RefusalReason>
