/**
 * Certificates for TLS tests, made with `openssl` in a temp folder: a CA of the test's own, and
 * server certificates it signs for `127.0.0.1` and `localhost` (subjectAltName), EC P-256.
 */
import { execFileSync } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"

/** A certificate signed by the test CA, and its key, as files and PEM. */
export interface ServerCertificate {
  readonly certFile: string
  readonly keyFile: string
  readonly cert: string
  readonly key: string
  /** SHA-256 fingerprint, as `X509Certificate.fingerprint256` writes it. */
  readonly fingerprint256: string
}

/** A CA in `dir`, and a way to issue server certificates under it. */
export interface TestCa {
  /** The CA certificate (PEM), for clients to trust. */
  readonly ca: string
  readonly caFile: string
  /** Issues a certificate for 127.0.0.1 and localhost, written to `<name>.crt` and `<name>.key` in `dir`. */
  readonly issue: (name: string) => ServerCertificate
}

const openssl = (dir: string, args: ReadonlyArray<string>) =>
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"], timeout: 20_000 })

const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

/** Makes a CA in `dir` (which must exist). */
export const makeCa = (dir: string): TestCa => {
  openssl(dir, [
    "req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
    "-subj", "/CN=fleetvisor test CA",
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign"
  ])
  fs.writeFileSync(
    path.join(dir, "server.ext"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
  )
  return {
    ca: fs.readFileSync(path.join(dir, "ca.crt"), "utf8"),
    caFile: path.join(dir, "ca.crt"),
    issue: (name) => {
      openssl(dir, ["req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`])
      openssl(dir, [
        "x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", `${name}.crt`, "-days", "2", "-extfile", "server.ext"
      ])
      const cert = fs.readFileSync(path.join(dir, `${name}.crt`), "utf8")
      return {
        certFile: path.join(dir, `${name}.crt`),
        keyFile: path.join(dir, `${name}.key`),
        cert,
        key: fs.readFileSync(path.join(dir, `${name}.key`), "utf8"),
        fingerprint256: new crypto.X509Certificate(cert).fingerprint256
      }
    }
  }
}
