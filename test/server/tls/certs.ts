// Test-only certificate issuer: an ECDSA P-256 CA and leaves with the loopback IP SAN, usable as
// both TLS server and client. With `member`, a leaf has the peer profile the peer port accepts
// (OU "raftkv peer", CN and URI SAN naming the member); without, it is a plain dual-use leaf.
// The product PKI lives elsewhere (node-runtime/pki).
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";
import { mkdirSync, writeFileSync, renameSync } from "node:fs";
import { join } from "node:path";

type KeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

export interface TestCa {
  name: string;
  certPem: string;
  keys: KeyPair;
  cert: x509.X509Certificate;
}

export interface TestLeaf {
  certPem: string;
  keyPem: string;
}

let serial = 1;
function nextSerial(): string {
  return (serial++).toString(16).padStart(4, "0");
}

function pemKey(der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n");
  return `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
}

export async function makeCa(name: string): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as KeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: nextSerial(),
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  return { name, certPem: cert.toString("pem") + "\n", keys, cert };
}

export interface LeafOptions {
  /** Give the leaf the peer profile of this member (OU, URI SAN; the CN should be the name). */
  member?: string;
  /** Override the subject OU (e.g. to make a look-alike that is not a peer certificate). */
  ou?: string;
  /** Extended key usages; default server and client auth. */
  ekus?: string[];
  /** Extra URI SANs. */
  uris?: string[];
}

export async function makeLeaf(ca: TestCa, cn: string, opts: LeafOptions = {}): Promise<TestLeaf> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as KeyPair;
  const ou = opts.ou ?? (opts.member !== undefined ? "raftkv peer" : undefined);
  const uris = [...(opts.member !== undefined ? [`urn:raftkv:member:${opts.member}`] : []), ...(opts.uris ?? [])];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: nextSerial(),
    subject: ou !== undefined ? [{ O: ["raftkv"] }, { OU: [ou] }, { CN: [cn] }] : [{ CN: [cn] }],
    issuer: ca.cert.subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(opts.ekus ?? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: "ip", value: "127.0.0.1" },
        { type: "dns", value: "localhost" },
        ...uris.map((value) => ({ type: "url" as const, value })),
      ]),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey("pkcs8", keys.privateKey);
  return { certPem: cert.toString("pem") + "\n", keyPem: pemKey(pkcs8) };
}

export interface MemberFiles {
  certFile: string;
  keyFile: string;
  trustedCaFile: string;
  flagPrefix: string;
}

/** Writes peer.crt / peer.key / ca.crt for one member into `dir`; `cas` become the trust bundle. */
export function writeMemberFiles(dir: string, leaf: TestLeaf, cas: readonly TestCa[]): MemberFiles {
  mkdirSync(dir, { recursive: true });
  const files = {
    certFile: join(dir, "peer.crt"),
    keyFile: join(dir, "peer.key"),
    trustedCaFile: join(dir, "ca.crt"),
    flagPrefix: "peer-",
  };
  writeFileSync(files.certFile, leaf.certPem);
  writeFileSync(files.keyFile, leaf.keyPem, { mode: 0o600 });
  writeFileSync(files.trustedCaFile, cas.map((c) => c.certPem).join(""));
  return files;
}

/** Replaces a file the way rotation tools do: write a temporary file, then rename it over. */
export function replaceAtomically(path: string, content: string): void {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  writeFileSync(tmp, content);
  renameSync(tmp, path);
}
