/**
 * What @pulumi/tls 5.x returns, computed for real: keys from node:crypto, CSRs and
 * certificates from @peculiar/x509, following terraform-provider-tls v4
 * (internal/provider/resource_*.go, common_cert.go): ECDSA keys as SEC1 "EC PRIVATE KEY" PEM,
 * RSA as PKCS#1, the certificate's subject and SANs taken from the CSR, key usages from
 * `allowedUses`, validity from `validityPeriodHours`, CA basic constraints when
 * `isCaCertificate`.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, webcrypto, type KeyObject } from "node:crypto";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type Inputs = Record<string, unknown>;
type SignAlg = { name: "ECDSA"; namedCurve: string; hash: string } | { name: "RSASSA-PKCS1-v1_5"; hash: string };

const CURVES: Record<string, { namedCurve: string; hash: string }> = {
  P256: { namedCurve: "P-256", hash: "SHA-256" },
  P384: { namedCurve: "P-384", hash: "SHA-384" },
  P521: { namedCurve: "P-521", hash: "SHA-512" },
};

const KEY_USAGES: Record<string, number> = {
  digital_signature: x509.KeyUsageFlags.digitalSignature,
  content_commitment: x509.KeyUsageFlags.nonRepudiation,
  key_encipherment: x509.KeyUsageFlags.keyEncipherment,
  data_encipherment: x509.KeyUsageFlags.dataEncipherment,
  key_agreement: x509.KeyUsageFlags.keyAgreement,
  cert_signing: x509.KeyUsageFlags.keyCertSign,
  crl_signing: x509.KeyUsageFlags.cRLSign,
  encipher_only: x509.KeyUsageFlags.encipherOnly,
  decipher_only: x509.KeyUsageFlags.decipherOnly,
};
const EXT_USAGES: Record<string, string> = {
  any_extended: "2.5.29.37.0",
  server_auth: x509.ExtendedKeyUsage.serverAuth,
  client_auth: x509.ExtendedKeyUsage.clientAuth,
  code_signing: x509.ExtendedKeyUsage.codeSigning,
  email_protection: x509.ExtendedKeyUsage.emailProtection,
  timestamping: x509.ExtendedKeyUsage.timeStamping,
  ocsp_signing: x509.ExtendedKeyUsage.ocspSigning,
};

function fail(msg: string): never {
  throw new Error(`tls mock: ${msg}`);
}

/** The webcrypto algorithm and key pair of a PEM private key. */
async function importKeyPair(pem: string): Promise<{ alg: SignAlg; keys: webcrypto.CryptoKeyPair; algorithm: string }> {
  const key = createPrivateKey(pem);
  const pkcs8 = key.export({ type: "pkcs8", format: "der" });
  const spki = createPublicKey(key).export({ type: "spki", format: "der" });
  let alg: SignAlg;
  let algorithm: string;
  if (key.asymmetricKeyType === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const hit = Object.values(CURVES).find((c) => c.namedCurve === curve || (curve === "prime256v1" && c.namedCurve === "P-256") || (curve === "secp384r1" && c.namedCurve === "P-384") || (curve === "secp521r1" && c.namedCurve === "P-521"));
    if (!hit) fail(`unsupported EC curve ${String(curve)}`);
    alg = { name: "ECDSA", namedCurve: hit.namedCurve, hash: hit.hash };
    algorithm = "ECDSA";
  } else if (key.asymmetricKeyType === "rsa") {
    alg = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
    algorithm = "RSA";
  } else {
    fail(`unsupported key type ${String(key.asymmetricKeyType)}`);
  }
  const privateKey = await webcrypto.subtle.importKey("pkcs8", pkcs8, alg, true, ["sign"]);
  const publicKey = await webcrypto.subtle.importKey("spki", spki, alg, true, ["verify"]);
  return { alg, keys: { privateKey, publicKey }, algorithm };
}

function privatePem(key: KeyObject): string {
  if (key.asymmetricKeyType === "ec") return key.export({ type: "sec1", format: "pem" }).toString();
  if (key.asymmetricKeyType === "rsa") return key.export({ type: "pkcs1", format: "pem" }).toString();
  return key.export({ type: "pkcs8", format: "pem" }).toString();
}

/** SSH wire encoding: a uint32 length, then the bytes. */
function sshString(b: Buffer | string): Buffer {
  const data = typeof b === "string" ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  return Buffer.concat([len, data]);
}

/**
 * An ED25519 key in OpenSSH's formats, as the provider returns them (ssh.MarshalAuthorizedKey
 * and ssh.MarshalPrivateKey): the public key line and the unencrypted "openssh-key-v1" private
 * key. Only ED25519 is reproduced (the program asks for no other OpenSSH key).
 */
function ed25519Openssh(key: KeyObject): { publicKeyOpenssh: string; privateKeyOpenssh: string } {
  const jwk = key.export({ format: "jwk" });
  const pub = Buffer.from(String(jwk.x), "base64url");
  const seed = Buffer.from(String(jwk.d), "base64url");
  const blob = Buffer.concat([sshString("ssh-ed25519"), sshString(pub)]);
  const check = randomBytes(4);
  let body = Buffer.concat([check, check, sshString("ssh-ed25519"), sshString(pub), sshString(Buffer.concat([seed, pub])), sshString("")]);
  const pad: number[] = [];
  for (let i = 1; (body.length + pad.length) % 8 !== 0; i++) pad.push(i);
  body = Buffer.concat([body, Buffer.from(pad)]);
  const one = Buffer.alloc(4);
  one.writeUInt32BE(1);
  const whole = Buffer.concat([Buffer.from("openssh-key-v1\0"), sshString("none"), sshString("none"), sshString(""), one, sshString(blob), sshString(body)]);
  const b64 = whole.toString("base64").replace(/(.{70})/g, "$1\n").replace(/\n$/, "");
  return {
    publicKeyOpenssh: `ssh-ed25519 ${blob.toString("base64")}\n`,
    privateKeyOpenssh: `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}\n-----END OPENSSH PRIVATE KEY-----\n`,
  };
}

export function privateKey(inputs: Inputs): Record<string, unknown> {
  const algorithm = String(inputs["algorithm"] ?? fail("algorithm is required"));
  let key: KeyObject;
  if (algorithm === "ECDSA") {
    const curve = CURVES[String(inputs["ecdsaCurve"] ?? "P224")] ?? fail(`ecdsaCurve ${String(inputs["ecdsaCurve"] ?? "P224")} not supported by the mock`);
    key = generateKeyPairSync("ec", { namedCurve: curve.namedCurve }).privateKey;
  } else if (algorithm === "RSA") {
    key = generateKeyPairSync("rsa", { modulusLength: Number(inputs["rsaBits"] ?? 2048) }).privateKey;
  } else if (algorithm === "ED25519") {
    key = generateKeyPairSync("ed25519").privateKey;
  } else fail(`algorithm ${algorithm} not supported by the mock`);
  const pub = createPublicKey(key);
  const spki = pub.export({ type: "spki", format: "der" });
  return {
    id: createHash("sha1").update(spki).digest("hex"),
    privateKeyPem: privatePem(key),
    privateKeyPemPkcs8: key.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKeyPem: pub.export({ type: "spki", format: "pem" }).toString(),
    publicKeyFingerprintSha256: `SHA256:${createHash("sha256").update(spki).digest("base64").replace(/=+$/, "")}`,
    ...(algorithm === "ED25519" ? ed25519Openssh(key) : {}),
  };
}

function subjectName(subject: unknown): string {
  const s = (Array.isArray(subject) ? subject[0] : subject) as Record<string, unknown> | undefined;
  if (!s) return "";
  const parts: string[] = [];
  const add = (k: string, v: unknown) => {
    if (typeof v === "string" && v !== "") parts.push(`${k}=${v.replace(/([,+"\\<>;=])/g, "\\$1")}`);
  };
  add("CN", s["commonName"]);
  add("OU", s["organizationalUnit"]);
  add("O", s["organization"]);
  add("L", s["locality"]);
  add("ST", s["province"]);
  add("C", s["country"]);
  return parts.join(", ");
}

function sanExtension(inputs: Inputs): x509.SubjectAlternativeNameExtension | undefined {
  const names: x509.JsonGeneralName[] = [];
  for (const d of (inputs["dnsNames"] as string[] | undefined) ?? []) names.push({ type: "dns", value: d });
  for (const ip of (inputs["ipAddresses"] as string[] | undefined) ?? []) names.push({ type: "ip", value: ip });
  for (const u of (inputs["uris"] as string[] | undefined) ?? []) names.push({ type: "url", value: u });
  return names.length > 0 ? new x509.SubjectAlternativeNameExtension(names) : undefined;
}

export async function certRequest(inputs: Inputs): Promise<Record<string, unknown>> {
  const { alg, keys, algorithm } = await importKeyPair(String(inputs["privateKeyPem"] ?? fail("privateKeyPem is required")));
  const san = sanExtension(inputs);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: subjectName(inputs["subject"]), keys, signingAlgorithm: alg, extensions: san ? [san] : [] });
  const pem = csr.toString("pem") + "\n";
  return { id: createHash("sha1").update(pem).digest("hex"), certRequestPem: pem, keyAlgorithm: algorithm };
}

function usageExtensions(inputs: Inputs): x509.Extension[] {
  const uses = (inputs["allowedUses"] as string[] | undefined) ?? [];
  let ku = 0;
  const eku: string[] = [];
  for (const u of uses) {
    if (KEY_USAGES[u] !== undefined) ku |= KEY_USAGES[u]!;
    else if (EXT_USAGES[u] !== undefined) eku.push(EXT_USAGES[u]!);
    else fail(`unknown allowed use ${u}`);
  }
  const isCa = inputs["isCaCertificate"] === true;
  const ext: x509.Extension[] = [new x509.BasicConstraintsExtension(isCa, undefined, true)];
  if (ku !== 0) ext.push(new x509.KeyUsagesExtension(ku, true));
  if (eku.length > 0) ext.push(new x509.ExtendedKeyUsageExtension(eku));
  return ext;
}

function validity(inputs: Inputs): { notBefore: Date; notAfter: Date } {
  const hours = Number(inputs["validityPeriodHours"] ?? fail("validityPeriodHours is required"));
  const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000);
  return { notBefore, notAfter: new Date(notBefore.getTime() + hours * 3_600_000) };
}

function certOutputs(cert: x509.X509Certificate, inputs: Inputs): Record<string, unknown> {
  return {
    id: BigInt(`0x${cert.serialNumber}`).toString(10),
    certPem: cert.toString("pem") + "\n",
    validityStartTime: cert.notBefore.toISOString().replace(/\.000Z$/, "Z"),
    validityEndTime: cert.notAfter.toISOString().replace(/\.000Z$/, "Z"),
    readyForRenewal: false,
    earlyRenewalHours: inputs["earlyRenewalHours"] ?? 0,
  };
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString("hex");
}

export async function selfSignedCert(inputs: Inputs): Promise<Record<string, unknown>> {
  const { alg, keys, algorithm } = await importKeyPair(String(inputs["privateKeyPem"] ?? fail("privateKeyPem is required")));
  const san = sanExtension(inputs);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: subjectName(inputs["subject"]),
    ...validity(inputs),
    signingAlgorithm: alg,
    keys,
    extensions: [...usageExtensions(inputs), ...(san ? [san] : []), await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)],
  });
  return { ...certOutputs(cert, inputs), keyAlgorithm: algorithm };
}

export async function locallySignedCert(inputs: Inputs, opts: { forged?: boolean } = {}): Promise<Record<string, unknown>> {
  const csr = new x509.Pkcs10CertificateRequest(String(inputs["certRequestPem"] ?? fail("certRequestPem is required")));
  if (!(await csr.verify())) fail("the CSR's signature does not verify");
  const ca = new x509.X509Certificate(String(inputs["caCertPem"] ?? fail("caCertPem is required")));
  const signer = await importKeyPair(String(inputs["caPrivateKeyPem"] ?? fail("caPrivateKeyPem is required")));
  const caSpki = Buffer.from(await webcrypto.subtle.exportKey("spki", signer.keys.publicKey));
  if (!caSpki.equals(Buffer.from(ca.publicKey.rawData))) fail("caPrivateKeyPem does not match caCertPem");
  const san = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
  // A forger names the real CA as issuer (subject and key ID) but can only sign with its own key.
  const signingKey = opts.forged ? (await webcrypto.subtle.generateKey(signer.alg as webcrypto.EcKeyGenParams, true, ["sign", "verify"])).privateKey : signer.keys.privateKey;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: csr.subject,
    issuer: ca.subject,
    ...validity(inputs),
    signingAlgorithm: signer.alg,
    publicKey: csr.publicKey,
    signingKey,
    extensions: [...usageExtensions(inputs), ...(san ? [san] : []), await x509.AuthorityKeyIdentifierExtension.create(ca)],
  });
  return { ...certOutputs(cert, inputs), caKeyAlgorithm: signer.algorithm };
}

/** terraform-provider-tls common_cert.go: a certificate past validityEnd - earlyRenewalHours is replaced. */
export function readyForRenewal(outputs: Record<string, unknown>, earlyRenewalHours: unknown, now = Date.now()): boolean {
  const end = Date.parse(String(outputs["validityEndTime"] ?? ""));
  if (Number.isNaN(end)) return false;
  return end - Number(earlyRenewalHours ?? 0) * 3_600_000 <= now;
}
