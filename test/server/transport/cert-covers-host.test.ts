/**
 * certCoversHost decides whether a member not started yet may speak for its peer URL's host. An
 * IPv6 SAN comes out of OpenSSL in full (0:0:0:0:0:0:0:1) while URLs write ::1: compared as
 * addresses, never as text, and never across families.
 */
import { strict as assert } from "node:assert";
import { X509Certificate } from "node:crypto";
import type { PeerCertificate } from "node:tls";
import { memberCertProfiles } from "../../../components/topology";
import { createCa, issueCert } from "../../../node-runtime/pki";
import { certCoversHost } from "../../../node-runtime/server/transport/peer-identity";

describe("peer identity: certificate covers the host of a peer URL", () => {
  it("matches IPv6 IP SANs of our PKI as addresses, IPv4 and DNS names as before", async () => {
    const ca = await createCa("covers-ca", 1);
    const peer = memberCertProfiles({ name: "raftkv-1", host: "2001:db8::7", clientPort: 1, peerPort: 2, metricsPort: 3 })[1]!;
    const pem = (await issueCert(ca, peer, 1)).certPem;
    const cert = { subjectaltname: new X509Certificate(pem).subjectAltName } as PeerCertificate;
    assert.match(cert.subjectaltname!, /IP Address:2001:DB8:0:0:0:0:0:7/i, "OpenSSL prints the address in full");
    assert.equal(certCoversHost(cert, "2001:db8::7"), true);
    assert.equal(certCoversHost(cert, "2001:DB8:0::7"), true);
    assert.equal(certCoversHost(cert, "2001:db8::8"), false);
    assert.equal(certCoversHost(cert, "::1"), false);
    const v4 = { subjectaltname: "DNS:node1.internal, IP Address:10.0.0.1" } as PeerCertificate;
    assert.equal(certCoversHost(v4, "10.0.0.1"), true);
    assert.equal(certCoversHost(v4, "::ffff:10.0.0.1"), false, "no match across families");
    assert.equal(certCoversHost(v4, "NODE1.internal"), true);
    assert.equal(certCoversHost(v4, "10.0.0.2"), false);
  });
});
