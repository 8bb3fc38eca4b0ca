// A caller identified by its client certificate (--client-cert-auth): the CN is read from the
// TLS session only while auth is enabled, as etcd's AuthInfoFromTLS. Reading it parses the
// certificate anew each time, which cost every request ~70 µs when it was read eagerly.
import { strict as assert } from "node:assert";
import * as grpc from "@grpc/grpc-js";
import { AuthGate, grpcCaller } from "../../../node-runtime/server/api/auth";
import { AuthStore } from "../../../node-runtime/kv/auth";
import type { Member } from "../../../node-runtime/server/member";

function certCall(cn: string): { call: Parameters<typeof grpcCaller>[0]; reads: () => number } {
  let reads = 0;
  return {
    call: {
      metadata: new grpc.Metadata(),
      getAuthContext: () => {
        reads++;
        return { sslPeerCertificate: { subject: { CN: cn } } };
      },
    },
    reads: () => reads,
  };
}

function gateOver(store: AuthStore): AuthGate {
  const member = { kv: { auth: store, appliedIndex: 0 } } as unknown as Member;
  return new AuthGate(member, { clientCertAuth: true, bcryptCost: 4 });
}

describe("client-certificate callers", () => {
  it("with auth disabled the certificate is never read and names no user", () => {
    const gate = gateOver(new AuthStore());
    const { call, reads } = certCall("tenant-a");
    assert.equal(gate.identifyNow(grpcCaller(call, true)), undefined);
    assert.equal(reads(), 0);
  });

  it("with auth enabled the CN names the user, read once per call however often it is asked", () => {
    const store = new AuthStore();
    store.apply(1, { op: "userAdd", name: "root", hash: "h", noPassword: false }, undefined);
    store.apply(2, { op: "userGrantRole", user: "root", role: "root" }, undefined);
    store.apply(3, { op: "enable" }, undefined);
    const gate = gateOver(store);
    const { call, reads } = certCall("tenant-a");
    const caller = grpcCaller(call, true);
    assert.deepEqual(gate.identifyNow(caller), { username: "tenant-a", revision: store.revision });
    assert.deepEqual(gate.identifyNow(caller), { username: "tenant-a", revision: store.revision });
    assert.equal(reads(), 1);
  });

  it("without --client-cert-auth a certificate never names a user", () => {
    const { call, reads } = certCall("tenant-a");
    assert.equal(grpcCaller(call, false).cn, undefined);
    assert.equal(reads(), 0);
  });
});
