import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { makeCa, makeLeaf, replaceAtomically, type TestCa } from "./certs";
import { Cluster, numbered, waitFor } from "../transport/harness";
import type { TlsMaterial } from "../../../node-runtime/server/tls/material";

describe("TLS reload and CA bundles on live peer transports", () => {
  let ca1: TestCa;
  let ca2: TestCa;
  let cluster: Cluster;

  before(async () => {
    ca1 = await makeCa("ca-one");
    ca2 = await makeCa("ca-two");
  });
  beforeEach(() => {
    cluster = new Cluster();
  });
  afterEach(async () => {
    await cluster.close();
  });

  it("accepts peers whose certificates come from either CA of a two-CA bundle", async () => {
    const hub = await cluster.member(1, { ca: ca1, trust: [ca1, ca2] });
    const fromOne = await cluster.member(2, { ca: ca1, trust: [ca1] });
    const fromTwo = await cluster.member(3, { ca: ca2, trust: [ca1, ca2] });
    cluster.mesh(hub, fromOne, fromTwo);
    fromOne.transport.send(1, numbered(1));
    fromTwo.transport.send(1, numbered(2));
    await waitFor("both delivered to the hub", () => hub.received.length === 2);
    assert.deepEqual(hub.received.map((r) => r.from).sort(), [2, 3]);
    assert.equal(hub.log.find("rejected peer connection").length, 0);
  });

  it("rotates to a new CA on reload: new connections use the new files, open ones stay", async () => {
    const a = await cluster.member(1, { ca: ca1 });
    const b = await cluster.member(2, { ca: ca1 });
    cluster.mesh(a, b);
    b.transport.send(1, numbered(1));
    a.transport.send(2, numbered(1));
    await waitFor("a and b connected", () => a.received.length === 1 && b.received.length === 1);

    const changes: TlsMaterial[] = [];
    a.tls.onChange((m) => changes.push(m));
    // The member keeps its name (peers match it to its ID); the certificate and CA are new.
    const newLeaf = await makeLeaf(ca2, "member-1", { member: "member-1" });
    writeFileSync(a.files.certFile, newLeaf.certPem);
    writeFileSync(a.files.keyFile, newLeaf.keyPem);
    writeFileSync(a.files.trustedCaFile, ca2.certPem);
    assert.equal(a.tls.reload(), true);
    assert.equal(changes.length, 1);
    assert.equal(changes[0]!.subject, "O=raftkv\nOU=raftkv peer\nCN=member-1");
    assert.match(String(changes[0]!.caSubjects), /CN=ca-two/);
    assert.equal(a.tls.reload(), false, "unchanged files are not a change");

    // A member that knows only the new CA: a's listener must present the new certificate and
    // accept its client certificate; a's dialer must present the new certificate too.
    const c = await cluster.member(3, { ca: ca2 });
    c.transport.addPeer(1, a.url);
    a.transport.addPeer(3, c.url);
    c.transport.send(1, numbered(7));
    a.transport.send(3, numbered(8));
    await waitFor("new-CA member exchanges with a", () => a.received.some((r) => r.from === 3) && c.received.length === 1);

    // The connections opened before the reload still carry traffic both ways.
    b.transport.send(1, numbered(2));
    a.transport.send(2, numbered(2));
    await waitFor("old connections still work", () => a.received.filter((r) => r.from === 2).length === 2 && b.received.length === 2);
    assert.equal(a.log.find("TLS material reloaded").length, 1);
  });

  it("keeps the current material when the replacement is broken, and logs the error", async () => {
    const a = await cluster.member(1, { ca: ca1 });
    const before = a.tls.current();
    const stranger = await makeLeaf(ca1, "someone-else");
    writeFileSync(a.files.keyFile, stranger.keyPem); // key of another certificate
    assert.equal(a.tls.reload(), false);
    writeFileSync(a.files.certFile, "garbage");
    assert.equal(a.tls.reload(), false);
    assert.equal(a.tls.current(), before);
    const errors = a.log.find("TLS reload failed");
    assert.equal(errors.length, 2);
    assert.match(String(errors[0]!.err), /does not match the certificate/);
    assert.match(String(errors[1]!.err), /no PEM certificate found/);
    // Still serving with the old certificate: a fresh peer of the same CA connects.
    const b = await cluster.member(2, { ca: ca1 });
    cluster.mesh(a, b);
    b.transport.send(1, numbered(1));
    await waitFor("delivery with the kept material", () => a.received.length === 1);
  });

  it("reloads by itself when the files are replaced by rename", async () => {
    const a = await cluster.member(1, { ca: ca1, watch: true });
    const changed = new Promise<TlsMaterial>((resolve) => a.tls.onChange(resolve));
    const newLeaf = await makeLeaf(ca1, "member-1", { member: "member-1" });
    const oldFingerprint = a.tls.current().fingerprint;
    replaceAtomically(a.files.keyFile, newLeaf.keyPem);
    replaceAtomically(a.files.certFile, newLeaf.certPem);
    const m = await changed;
    assert.equal(m.subject, "O=raftkv\nOU=raftkv peer\nCN=member-1");
    assert.notEqual(m.fingerprint, oldFingerprint);
    // The debounce waited for both files, so no reload saw the new key with the old certificate.
    assert.equal(a.log.find("TLS reload failed").length, 0);
  });
});
