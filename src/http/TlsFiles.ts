/**
 * The node's own TLS certificate (`TLS_CERT_FILE`, `TLS_KEY_FILE`): read from PEM files,
 * checked to be a pair, and read again on a reload (SIGHUP) without dropping a connection.
 *
 * A `TlsCertificate` holds the pair in use. Servers (the listener, the stop channel's thread)
 * take `current()` when they start and `subscribe` to later ones, which they install with
 * `setSecureContext`: connections open keep their session, new handshakes see the new
 * certificate. A reload that cannot read a file, or reads a certificate and key that do not
 * match, keeps the pair in use and fails with `TlsFilesInvalid`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as tls from "node:tls"

/** Paths of a PEM certificate (with its chain) and of its private key. */
export interface TlsFiles {
  readonly certFile: string
  readonly keyFile: string
}

/** A certificate and its key, read from their files and checked to be a pair. */
export interface TlsPair {
  readonly cert: Buffer
  readonly key: Buffer
  /** SHA-256 fingerprint of the leaf certificate, `AA:BB:…`. */
  readonly fingerprint256: string
  readonly subject: string
  /** When the leaf certificate expires, as the certificate says it. */
  readonly validTo: string
}

/** The files could not be read, or do not hold a certificate and its matching key. */
export class TlsFilesInvalid extends Data.TaggedError("TlsFilesInvalid")<{ readonly message: string }> {}

const readFile = (path: string, what: string) =>
  Effect.tryPromise({
    try: () => fs.promises.readFile(path),
    catch: (error) =>
      new TlsFilesInvalid({
        message: `cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`
      })
  })

/** Reads both files and checks that they are a certificate and its key. */
export const read = (files: TlsFiles): Effect.Effect<TlsPair, TlsFilesInvalid> =>
  Effect.gen(function*() {
    const [cert, key] = yield* Effect.all(
      [readFile(files.certFile, "TLS_CERT_FILE"), readFile(files.keyFile, "TLS_KEY_FILE")],
      { concurrency: 2 }
    )
    return yield* Effect.try({
      try: () => {
        const leaf = new crypto.X509Certificate(cert)
        if (!leaf.checkPrivateKey(crypto.createPrivateKey(key))) throw new Error("the key is not the certificate's")
        // What a server would do with them: fails on what the checks above let through.
        tls.createSecureContext({ cert, key })
        return { cert, key, fingerprint256: leaf.fingerprint256, subject: leaf.subject.replaceAll("\n", ", "), validTo: leaf.validTo }
      },
      catch: (error) =>
        new TlsFilesInvalid({
          message: `${files.certFile} and ${files.keyFile} are not a PEM certificate and its key: ${(error as Error).message}`
        })
    })
  })

/** A server's view of the certificate: the pair in use, and the next ones. */
export interface TlsSource {
  readonly current: () => TlsPair
  /** Calls `onChange` with each pair a reload installs; returns how to stop. */
  readonly subscribe: (onChange: (pair: TlsPair) => void) => () => void
}

/** The node's certificate: a source for servers, and its reload. */
export interface TlsCertificate extends TlsSource {
  readonly files: TlsFiles
  /** Reads the files again and hands the new pair to every subscriber; on failure the pair in use stays. */
  readonly reload: Effect.Effect<TlsPair, TlsFilesInvalid>
}

/** Reads the files (failing as `read` does) and keeps the pair for servers to use. */
export const make = (files: TlsFiles): Effect.Effect<TlsCertificate, TlsFilesInvalid> =>
  Effect.map(read(files), (first) => {
    let pair = first
    const subscribers = new Set<(pair: TlsPair) => void>()
    return {
      files,
      current: () => pair,
      subscribe: (onChange) => {
        subscribers.add(onChange)
        return () => void subscribers.delete(onChange)
      },
      reload: Effect.tap(read(files), (next) =>
        Effect.sync(() => {
          pair = next
          for (const onChange of subscribers) onChange(next)
        }))
    }
  })

/** The options a Node TLS server takes for a pair. */
export const secureContextOptions = (pair: TlsPair): tls.SecureContextOptions => ({ cert: pair.cert, key: pair.key })

/**
 * What SIGHUP does: reads the certificate and key again (new handshakes get them) and logs what
 * it did; a reload that fails keeps the certificate in use. Without a certificate, says so.
 */
export const reloadLogged = (certificate: TlsCertificate | undefined): Effect.Effect<void> =>
  certificate === undefined
    ? Effect.logInfo("reload (SIGHUP): nothing to reload (no TLS_CERT_FILE)")
    : certificate.reload.pipe(
      Effect.flatMap((pair) =>
        Effect.annotateLogs(Effect.logInfo("TLS certificate reloaded"), {
          subject: pair.subject,
          fingerprint256: pair.fingerprint256,
          validTo: pair.validTo
        })
      ),
      Effect.catchTag("TlsFilesInvalid", (error) =>
        Effect.logError(`TLS certificate not reloaded, the one in use stays: ${error.message}`))
    )
