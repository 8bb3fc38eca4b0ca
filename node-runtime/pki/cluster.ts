/**
 * Writes the certificate files of a whole cluster: one directory per member with the file
 * names the member flags point at (certPaths), plus client certificates for admins and
 * workers. Two CAs: the client CA signs client certificates and the members' server
 * certificates (so a client trusts the CA it was issued from); the peer CA signs member peer
 * certificates and nothing else, so no client certificate verifies on a peer port. Private keys are written mode 0600 and fsync'd, then renamed into place, so a
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
  /** Reuse this client CA instead of creating one (e.g. to add a member to an existing cluster). */
  ca?: CertificateAuthority;
  /** Reuse this peer CA instead of creating one. */
  peerCa?: CertificateAuthority;
  caCommonName?: string;
  peerCaCommonName?: string;
  caValidityDays?: number;
  certValidityDays?: number;
}

export interface ClientCertPaths {
  ca: string;
  cert: string;
  key: string;
}

export interface ClusterPki {
  /** The client CA: signs client certificates and the members' server certificates. */
  ca: CertificateAuthority;
  /** `<dir>/ca.crt` and `<dir>/ca.key`: the client CA. */
  caCertPath: string;
  caKeyPath: string;
  /** The peer CA: signs member peer certificates only. */
  peerCa: CertificateAuthority;
  /** `<dir>/peer-ca.crt` and `<dir>/peer-ca.key`. */
  peerCaCertPath: string;
  peerCaKeyPath: string;
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
  const caDays = opts.caValidityDays ?? DEFAULT_CA_VALIDITY_DAYS;
  const ca = opts.ca ?? (await createCa(opts.caCommonName ?? "raftkv client CA", caDays));
  const peerCa = opts.peerCa ?? (await createCa(opts.peerCaCommonName ?? "raftkv peer CA", caDays));

  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caCertPath = path.join(dir, "ca.crt");
  const caKeyPath = path.join(dir, "ca.key");
  const peerCaCertPath = path.join(dir, "peer-ca.crt");
  const peerCaKeyPath = path.join(dir, "peer-ca.key");
  writeFileDurably(caCertPath, ca.certPem, 0o644);
  writeFileDurably(caKeyPath, ca.keyPem, 0o600);
  writeFileDurably(peerCaCertPath, peerCa.certPem, 0o644);
  writeFileDurably(peerCaKeyPath, peerCa.keyPem, 0o600);

  const memberPaths: Record<string, CertPaths> = {};
  for (const m of members) {
    const memberDir = path.join(dir, m.name);
    mkdirSync(memberDir, { recursive: true, mode: 0o700 });
    const paths = certPaths(memberDir);
    const [serverProfile, peerProfile] = memberCertProfiles(m, opts);
    const server = await issueCert(ca, serverProfile!, certDays);
    const peer = await issueCert(peerCa, peerProfile!, certDays);
    writeFileDurably(paths.ca, ca.certPem, 0o644);
    writeFileDurably(paths.peerCa, peerCa.certPem, 0o644);
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
  return { ca, caCertPath, caKeyPath, peerCa, peerCaCertPath, peerCaKeyPath, members: memberPaths, clients: clientPaths };
}
