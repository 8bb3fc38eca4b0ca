// Who is on the other end of a peer connection. The TLS layer only proves that a certificate
// chains to the peer CA; this module decides which member the certificate names and whether
// that member may speak as the member ID claimed in the handshake. A peer certificate (the
// profile components/topology.ts defines and the PKI issues) carries OU "raftkv peer", both
// TLS EKUs, and its member name twice: as the CN and as a URI SAN urn:raftkv:member:<name>.
import { BlockList, isIP } from "node:net";
import type { PeerCertificate, TLSSocket } from "node:tls";
import { CERT_OU, parseMemberIdentityUri, parsePeerUrl } from "../../../components/topology";

const EKU_SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const EKU_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

/** A member as the membership knows it; `name` is "" for a member added but not yet started. */
export interface PeerRecord {
  id: number;
  name: string;
  peerURLs: readonly string[];
}

/** What the local operator may narrow further, as etcd's --peer-cert-allowed-cn/-hostname. */
export interface PeerCertPolicy {
  /** When set, the certificate's CN must be one of these. */
  allowedCn?: readonly string[];
  /** When set, the certificate must be valid for one of these host names or IP addresses. */
  allowedHostnames?: readonly string[];
}

/** The member a verified peer certificate names. */
export interface PeerCertIdentity {
  name: string;
  /** Kept to check host names against the certificate's SANs. */
  cert: PeerCertificate;
}

function values(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/**
 * The member name a certificate was issued to, or why it is not a peer certificate. Returns a
 * reason meant for the local log only (never sent to the remote side).
 */
export function peerCertIdentity(cert: PeerCertificate | undefined): PeerCertIdentity | string {
  if (cert === undefined || cert.subject === undefined) return "no certificate";
  if (!values(cert.subject.OU).includes(CERT_OU.peer)) return `certificate is not a peer certificate (OU is not "${CERT_OU.peer}")`;
  const ekus = (cert as PeerCertificate & { ext_key_usage?: string[] }).ext_key_usage ?? [];
  if (!ekus.includes(EKU_SERVER_AUTH) || !ekus.includes(EKU_CLIENT_AUTH)) return "peer certificate lacks server or client auth usage";
  // Node lists SANs as "TYPE:value, TYPE:value"; a value containing ", " is quoted, and then no
  // longer matches the strict member-name syntax below.
  const names = (cert.subjectaltname ?? "")
    .split(", ")
    .filter((s) => s.startsWith("URI:"))
    .map((s) => parseMemberIdentityUri(s.slice(4)))
    .filter((n): n is string => n !== undefined);
  if (names.length !== 1) return `peer certificate must name exactly one member in a URI SAN (found ${names.length})`;
  const name = names[0]!;
  const cns = values(cert.subject.CN);
  if (cns.length !== 1 || cns[0] !== name) return "peer certificate CN does not match its member URI";
  return { name, cert };
}

/** The identity of the certificate a socket's other end presented (authorized by TLS already). */
export function socketPeerIdentity(socket: TLSSocket): PeerCertIdentity | string {
  const cert = socket.getPeerCertificate(false);
  return peerCertIdentity(cert && Object.keys(cert).length > 0 ? cert : undefined);
}

/** Whether the certificate is valid for a host name or IP address, as TLS would check it. */
export function certCoversHost(cert: PeerCertificate, host: string): boolean {
  const sans = (cert.subjectaltname ?? "").split(", ");
  const family = isIP(host);
  if (family !== 0) {
    // Compared as addresses, not text: OpenSSL prints an IPv6 SAN in full (0:0:0:0:0:0:0:1)
    // where a URL has ::1.
    const wanted = new BlockList();
    wanted.addAddress(host, family === 6 ? "ipv6" : "ipv4");
    return sans.some((s) => {
      if (!s.startsWith("IP Address:")) return false;
      const ip = s.slice("IP Address:".length);
      const f = isIP(ip);
      return f === family && wanted.check(ip, f === 6 ? "ipv6" : "ipv4");
    });
  }
  const h = host.toLowerCase();
  return sans.some((s) => s.startsWith("DNS:") && s.slice(4).toLowerCase() === h);
}

/** Why the operator's policy refuses this certificate, or undefined. */
export function checkPolicy(id: PeerCertIdentity, policy: PeerCertPolicy): string | undefined {
  if (policy.allowedCn && policy.allowedCn.length > 0 && !policy.allowedCn.includes(id.name)) {
    return "certificate CN is not in --peer-cert-allowed-cn";
  }
  if (policy.allowedHostnames && policy.allowedHostnames.length > 0 && !policy.allowedHostnames.some((h) => certCoversHost(id.cert, h))) {
    return "certificate is not valid for any --peer-cert-allowed-hostname";
  }
  return undefined;
}

/**
 * Why the certificate may not speak as member `claimed`, or undefined when it may. A started
 * member is known by name: the certificate must name it. A member added but not started yet has
 * no name in the membership; its certificate must be valid for the host of its peer URL and must
 * not name any other member.
 */
export function checkClaim(id: PeerCertIdentity, claimed: number, directory: readonly PeerRecord[]): string | undefined {
  const record = directory.find((r) => r.id === claimed);
  if (record === undefined) return "claimed member is not in the membership";
  if (record.name !== "") return record.name === id.name ? undefined : `certificate names member ${id.name}, not the claimed member`;
  if (directory.some((r) => r.id !== claimed && r.name === id.name)) return `certificate names member ${id.name}, not the claimed member`;
  const hosts = record.peerURLs.flatMap((u) => {
    try {
      return [parsePeerUrl(u).host];
    } catch {
      return [];
    }
  });
  if (!hosts.some((h) => certCoversHost(id.cert, h))) return "certificate is not valid for the claimed member's peer URL";
  return undefined;
}
