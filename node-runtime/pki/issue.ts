/**
 * Certificate issuance with ECDSA P-256: a self-signed CA and leaf certificates made from the
 * topology plan's CertProfiles. Keys never leave this process except as the PEM we return.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { KeyObject, randomBytes, webcrypto } from "node:crypto";
import type { CertProfile, KeyUsage } from "../../components/topology";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC_ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
/** Certificates start a little in the past so a member whose clock lags still accepts them. */
const BACKDATE_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

/** A CA as plain PEM text, so it can be stored, passed around and reloaded. */
export interface CertificateAuthority {
  certPem: string;
  /** PKCS#8 private key. */
  keyPem: string;
}

export interface IssuedCert {
  certPem: string;
  /** PKCS#8 private key. */
  keyPem: string;
}

function validity(validityDays: number): { notBefore: Date; notAfter: Date } {
  if (!Number.isInteger(validityDays) || validityDays < 1) {
    throw new RangeError(`validityDays must be a positive integer, got ${String(validityDays)}`);
  }
  const now = Date.now();
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + validityDays * DAY_MS) };
}

/** A positive 128-bit serial number, hex; random so reissued certificates never collide. */
function serialNumber(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString("hex");
}

function keyToPem(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: "pkcs8", format: "pem" }).toString();
}

async function newKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_ALGORITHM, true, ["sign", "verify"]);
}

/** Distinguished names are built from parts so a comma or '=' in a name cannot inject RDNs. */
function commonNameDn(commonName: string, organizationalUnit?: string): x509.JsonName {
  if (commonName === "") throw new RangeError("commonName must not be empty");
  const dn: x509.JsonName = [{ O: ["raftkv"] }];
  if (organizationalUnit !== undefined) dn.push({ OU: [organizationalUnit] });
  dn.push({ CN: [commonName] });
  return dn;
}

export async function createCa(commonName: string, validityDays: number): Promise<CertificateAuthority> {
  const keys = await newKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: commonNameDn(commonName),
    ...validity(validityDays),
    signingAlgorithm: EC_ALGORITHM,
    keys: keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString("pem"), keyPem: keyToPem(keys.privateKey) };
}

async function importCaKey(ca: CertificateAuthority): Promise<webcrypto.CryptoKey> {
  const der = x509.PemConverter.decode(ca.keyPem)[0];
  if (!der) throw new Error("CA key is not PEM");
  return (await webcrypto.subtle.importKey("pkcs8", der, EC_ALGORITHM, false, ["sign"]));
}

function keyUsageFlags(usages: readonly KeyUsage[]): number {
  let flags = 0;
  if (usages.includes("digital_signature")) flags |= x509.KeyUsageFlags.digitalSignature;
  if (usages.includes("key_encipherment")) flags |= x509.KeyUsageFlags.keyEncipherment;
  return flags;
}

function extendedKeyUsages(usages: readonly KeyUsage[]): string[] {
  const ekus: string[] = [];
  if (usages.includes("server_auth")) ekus.push(x509.ExtendedKeyUsage.serverAuth);
  if (usages.includes("client_auth")) ekus.push(x509.ExtendedKeyUsage.clientAuth);
  return ekus;
}

/** Issues a leaf certificate for one profile (server, peer or client), signed by the CA. */
export async function issueCert(ca: CertificateAuthority, profile: CertProfile, validityDays: number): Promise<IssuedCert> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importCaKey(ca);
  const keys = await newKeyPair();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(keyUsageFlags(profile.usages), true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(caCert),
  ];
  const ekus = extendedKeyUsages(profile.usages);
  if (ekus.length > 0) extensions.push(new x509.ExtendedKeyUsageExtension(ekus, false));
  const names: x509.JsonGeneralName[] = [
    ...profile.dnsNames.map((value) => ({ type: "dns" as const, value })),
    ...profile.ipAddresses.map((value) => ({ type: "ip" as const, value })),
    ...profile.uris.map((value) => ({ type: "url" as const, value })),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: commonNameDn(profile.commonName, profile.organizationalUnit),
    issuer: caCert.subject,
    ...validity(validityDays),
    signingAlgorithm: EC_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions,
  });
  return { certPem: cert.toString("pem"), keyPem: keyToPem(keys.privateKey) };
}
