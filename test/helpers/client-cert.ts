/**
 * An extra client certificate (CN = name) from an existing client CA, written next to the
 * other test files: what a tenant or a worker of a deployment is handed.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { clientCertProfile } from "../../components/topology";
import { issueCert, type CertificateAuthority, type ClientCertPaths } from "../../node-runtime/pki";

export async function writeClientCert(dir: string, ca: CertificateAuthority, caPath: string, name: string): Promise<ClientCertPaths> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const issued = await issueCert(ca, clientCertProfile(name), 30);
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  writeFileSync(cert, issued.certPem, { mode: 0o644 });
  writeFileSync(key, issued.keyPem, { mode: 0o600 });
  return { ca: caPath, cert, key };
}
