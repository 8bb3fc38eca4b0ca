/**
 * Writes the certificate files of a whole cluster: one directory per member with the file
 * names the member flags point at (certPaths), plus client certificates for admins and
 * workers. Private keys are written mode 0600 and fsync'd, then renamed into place, so a
 * crash never leaves a half-written key behind a valid name.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from "node:fs";
import * as path from "node:path";
import {
  certPaths,
  clientCertProfile,
  memberCertProfiles,
  validateMembers,
  type CertPaths,
  type MemberCertOptions,
  type MemberEndpoint,
} from "../../components/topology";
import { createCa, issueCert, type CertificateAuthority } from "./issue";

export const DEFAULT_CA_VALIDITY_DAYS = 3650;
export const DEFAULT_CERT_VALIDITY_DAYS = 825;

export interface ClusterPkiOptions extends MemberCertOptions {
  /** Reuse this CA instead of creating one (e.g. to add a member to an existing cluster). */
  ca?: CertificateAuthority;
  caCommonName?: string;
  caValidityDays?: number;
  certValidityDays?: number;
}

export interface ClientCertPaths {
  ca: string;
  cert: string;
  key: string;
}

export interface ClusterPki {
  ca: CertificateAuthority;
  /** `<dir>/ca.crt` and `<dir>/ca.key`. */
  caCertPath: string;
  caKeyPath: string;
  /** Per member name: the files in `<dir>/<name>/`. */
  members: Record<string, CertPaths>;
  /** Per client name: `<dir>/clients/<name>.crt` and `.key`, with the CA path. */
  clients: Record<string, ClientCertPaths>;
}

function writeFileDurably(file: string, content: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w", mode);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export async function writeClusterPki(
  dir: string,
  members: readonly MemberEndpoint[],
  clients: readonly string[],
  opts: ClusterPkiOptions = {},
): Promise<ClusterPki> {
  validateMembers(members);
  const certDays = opts.certValidityDays ?? DEFAULT_CERT_VALIDITY_DAYS;
  const clientProfiles = clients.map((name) => clientCertProfile(name));
  const ca = opts.ca ?? (await createCa(opts.caCommonName ?? "raftkv CA", opts.caValidityDays ?? DEFAULT_CA_VALIDITY_DAYS));

  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caCertPath = path.join(dir, "ca.crt");
  const caKeyPath = path.join(dir, "ca.key");
  writeFileDurably(caCertPath, ca.certPem, 0o644);
  writeFileDurably(caKeyPath, ca.keyPem, 0o600);

  const memberPaths: Record<string, CertPaths> = {};
  for (const m of members) {
    const memberDir = path.join(dir, m.name);
    mkdirSync(memberDir, { recursive: true, mode: 0o700 });
    const paths = certPaths(memberDir);
    const [serverProfile, peerProfile] = memberCertProfiles(m, opts);
    const server = await issueCert(ca, serverProfile!, certDays);
    const peer = await issueCert(ca, peerProfile!, certDays);
    writeFileDurably(paths.ca, ca.certPem, 0o644);
    writeFileDurably(paths.serverCert, server.certPem, 0o644);
    writeFileDurably(paths.serverKey, server.keyPem, 0o600);
    writeFileDurably(paths.peerCert, peer.certPem, 0o644);
    writeFileDurably(paths.peerKey, peer.keyPem, 0o600);
    fsyncDir(memberDir);
    memberPaths[m.name] = paths;
  }

  const clientPaths: Record<string, ClientCertPaths> = {};
  if (clientProfiles.length > 0) {
    const clientDir = path.join(dir, "clients");
    mkdirSync(clientDir, { recursive: true, mode: 0o700 });
    for (const profile of clientProfiles) {
      const issued = await issueCert(ca, profile, certDays);
      const name = profile.commonName;
      const cert = path.join(clientDir, `${name}.crt`);
      const key = path.join(clientDir, `${name}.key`);
      writeFileDurably(cert, issued.certPem, 0o644);
      writeFileDurably(key, issued.keyPem, 0o600);
      clientPaths[name] = { ca: caCertPath, cert, key };
    }
    fsyncDir(clientDir);
  }
  fsyncDir(dir);
  return { ca, caCertPath, caKeyPath, members: memberPaths, clients: clientPaths };
}
