// Loading and validating one set of TLS files (certificate, key, trusted CA bundle) into options
// for node:tls. Every problem becomes a single line naming the flag and the file, because that
// is what an operator sees when a member refuses to start.
import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import type { SecureContextOptions } from "node:tls";

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  trustedCaFile: string;
  /** Flag prefix used in error messages: "peer-" gives --peer-cert-file etc.; "" gives --cert-file. */
  flagPrefix?: string;
}

export class TlsConfigError extends Error {
  override name = "TlsConfigError";
}

export interface TlsMaterial {
  /** Ready for tls.createServer / tls.connect / server.setSecureContext. */
  readonly options: SecureContextOptions & { cert: string; key: string; ca: string[] };
  /** SHA-256 fingerprint of the own certificate, for logs and change detection. */
  readonly fingerprint: string;
  readonly subject: string;
  readonly validTo: Date;
  /** Every CA in the trusted file, in file order. */
  readonly caSubjects: string[];
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case "ENOENT":
      return "no such file";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory";
    default:
      return code ?? (err instanceof Error ? err.message : String(err));
  }
}

function readText(flag: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new TlsConfigError(`cannot read ${flag} ${path}: ${describeFsError(err)}`);
  }
}

/** Splits a bundle of concatenated PEM certificates; each one must parse. */
export function splitPemCertificates(text: string, flag: string, path: string): string[] {
  const blocks = text.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new TlsConfigError(`invalid ${flag} ${path}: no PEM certificate found`);
  for (const [i, pem] of blocks.entries()) {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new TlsConfigError(
        `invalid ${flag} ${path}: certificate ${i + 1} does not parse (${(err as Error).message})`,
      );
    }
  }
  return blocks.map((b) => b + "\n");
}

export function loadTlsMaterial(files: TlsFiles): TlsMaterial {
  const prefix = files.flagPrefix ?? "";
  const certFlag = `--${prefix}cert-file`;
  const keyFlag = `--${prefix}key-file`;
  const caFlag = `--${prefix}trusted-ca-file`;
  const certText = readText(certFlag, files.certFile);
  const keyText = readText(keyFlag, files.keyFile);
  const caText = readText(caFlag, files.trustedCaFile);

  // The first certificate is ours; any following ones are intermediates sent along with it.
  const chain = splitPemCertificates(certText, certFlag, files.certFile);
  const leaf = new X509Certificate(chain[0]!);
  let key: KeyObject;
  try {
    key = createPrivateKey(keyText);
  } catch (err) {
    throw new TlsConfigError(`invalid ${keyFlag} ${files.keyFile}: not a PEM private key (${(err as Error).message})`);
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new TlsConfigError(`${keyFlag} ${files.keyFile} does not match the certificate in ${certFlag} ${files.certFile}`);
  }
  const cas = splitPemCertificates(caText, caFlag, files.trustedCaFile);
  return {
    // One array element per CA: each one of the bundle is a trust anchor on its own, whatever
    // text (comments, blank lines) sits between the PEM blocks in the file.
    options: { cert: chain.join(""), key: keyText, ca: cas, minVersion: "TLSv1.2" },
    fingerprint: leaf.fingerprint256,
    subject: leaf.subject,
    validTo: new Date(leaf.validTo),
    caSubjects: cas.map((pem) => new X509Certificate(pem).subject),
  };
}

/** Two materials are the same when every file's content is; used to ignore spurious events. */
export function sameMaterial(a: TlsMaterial, b: TlsMaterial): boolean {
  return (
    a.options.cert === b.options.cert &&
    a.options.key === b.options.key &&
    a.options.ca.length === b.options.ca.length &&
    a.options.ca.every((pem, i) => pem === b.options.ca[i])
  );
}
