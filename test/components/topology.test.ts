import { strict as assert } from "node:assert";
import fc from "fast-check";
import {
  TopologyError,
  assertMasterCount,
  clientCertProfile,
  CERT_OU,
  memberOpsClientName,
  parseMemberIdentityUri,
  faultTolerance,
  masterCountProblem,
  memberCertProfiles,
  parseInitialCluster,
  parsePeerUrl,
  partitionOutcome,
  planHostMembers,
  planLocalMembers,
  quorum,
  renderInitialCluster,
  renderMemberFlags,
  type MemberEndpoint,
} from "../../components/topology";

describe("topology plan", () => {
  describe("quorum and fault tolerance", () => {
    it("matches the etcd table for 1..7 members", () => {
      const table = [1, 2, 3, 4, 5, 6, 7].map((n) => [n, quorum(n), faultTolerance(n)]);
      assert.deepEqual(table, [
        [1, 1, 0],
        [2, 2, 0],
        [3, 2, 1],
        [4, 3, 1],
        [5, 3, 2],
        [6, 4, 2],
        [7, 4, 3],
      ]);
    });
    it("holds the majority invariants for any size", () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 10_000 }), (n) => {
          const q = quorum(n);
          // Two quorums always intersect; a quorum minus one does not have to.
          return 2 * q > n && 2 * (q - 1) <= n && faultTolerance(n) === n - q;
        }),
      );
    });
    it("rejects sizes that are not positive integers", () => {
      assert.throws(() => quorum(0), TopologyError);
      assert.throws(() => quorum(2.5), TopologyError);
    });
  });

  describe("master count validation", () => {
    it("accepts 3, 5 and 7", () => {
      for (const n of [3, 5, 7]) assert.equal(masterCountProblem(n), undefined);
    });
    it("explains why 1 and 2 are rejected", () => {
      assert.match(masterCountProblem(1)!, /tolerates no failure/);
      assert.match(masterCountProblem(2)!, /tolerates no failure/);
    });
    it("explains why even sizes are rejected", () => {
      for (const n of [4, 6, 8]) assert.match(masterCountProblem(n)!, /even size.*split it/);
      assert.match(masterCountProblem(6)!, /3\|3/);
    });
    it("explains why more than 7 is rejected", () => {
      assert.match(masterCountProblem(9)!, /slows every write/);
    });
    it("rejects non-integers and throws a TopologyError from assertMasterCount", () => {
      assert.match(masterCountProblem(Number.NaN)!, /not a positive whole number/);
      assert.throws(() => assertMasterCount(4), (e: unknown) => e instanceof TopologyError && /masters must be 3, 5 or 7/.test(e.message));
    });
  });

  describe("partitions", () => {
    it("6 split 3|3 has no writable side", () => {
      assert.equal(partitionOutcome(6, [3, 3]).writableGroup, undefined);
    });
    it("6 split 4|2 keeps the 4", () => {
      assert.equal(partitionOutcome(6, [4, 2]).writableGroup, 0);
      assert.equal(partitionOutcome(6, [2, 4]).writableGroup, 1);
    });
    it("7 split 4|3 keeps the 4; 5 split 2|2|1 keeps nothing", () => {
      assert.equal(partitionOutcome(7, [3, 4]).writableGroup, 1);
      assert.equal(partitionOutcome(5, [2, 2, 1]).writableGroup, undefined);
    });
    it("at most one side is ever writable", () => {
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 1, maxLength: 5 }), (groups) => {
          const n = groups.reduce((a, b) => a + b, 0);
          fc.pre(n > 0);
          const q = quorum(n);
          const writable = groups.filter((g) => g >= q).length;
          const out = partitionOutcome(n, groups);
          return writable <= 1 && (out.writableGroup === undefined) === (writable === 0);
        }),
      );
    });
    it("rejects groups that do not add up", () => {
      assert.throws(() => partitionOutcome(5, [2, 2]), /add up to 4/);
    });
  });

  describe("--initial-cluster rendering", () => {
    const octet = fc.integer({ min: 0, max: 255 });
    const ipv4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join("."));
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
    const dns = fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => ls.join(".")).filter((h) => !/^[\d.]+$/.test(h));
    const ipv6 = fc.ipV6();
    const port = fc.integer({ min: 1, max: 65535 });
    const member: fc.Arbitrary<MemberEndpoint> = fc.record({
      name: label,
      host: fc.oneof(ipv4, ipv6, dns),
      clientPort: port,
      peerPort: port,
      metricsPort: port,
    });
    const cluster = fc
      .uniqueArray(member, { minLength: 1, maxLength: 7, selector: (m) => m.name })
      .map((ms) => ms.map((m, i) => ({ ...m, host: `${m.host}`, clientPort: 1000 + i * 3, peerPort: 1001 + i * 3, metricsPort: 1002 + i * 3 })));

    it("round-trips through parseInitialCluster", () => {
      fc.assert(
        fc.property(cluster, (ms) => {
          const parsed = parseInitialCluster(renderInitialCluster(ms));
          assert.deepEqual(
            parsed,
            ms.map((m) => ({ name: m.name, peerUrl: `https://${m.host.includes(":") ? `[${m.host}]` : m.host}:${m.peerPort}` })),
          );
        }),
      );
    });
    it("renders the documented form", () => {
      const ms = planHostMembers(["10.0.1.10", "10.0.2.10", "10.0.3.10"]);
      assert.equal(
        renderInitialCluster(ms),
        "raftkv-1=https://10.0.1.10:2380,raftkv-2=https://10.0.2.10:2380,raftkv-3=https://10.0.3.10:2380",
      );
    });
    it("rejects bad names, hosts, ports and duplicates with clear errors", () => {
      const ok = planHostMembers(["10.0.0.1"])[0]!;
      assert.throws(() => renderInitialCluster([{ ...ok, name: "Bad_Name" }]), /invalid member name "Bad_Name"/);
      assert.throws(() => renderInitialCluster([{ ...ok, host: "300.1.1.1" }]), /invalid host "300.1.1.1"/);
      assert.throws(() => renderInitialCluster([{ ...ok, peerPort: 70000 }]), /invalid peer port/);
      assert.throws(() => renderInitialCluster([ok, ok]), /used twice/);
      assert.throws(() => parseInitialCluster("a=http://h:1"), /expected https:\/\/host:port/);
      assert.throws(() => parseInitialCluster("nourl"), /is not name=url/);
      assert.throws(() => parseInitialCluster(""), /is empty/);
      assert.throws(() => parseInitialCluster("a=https://h:1,a=https://g:2"), /twice/);
      assert.throws(() => parseInitialCluster("a=http://[::1]:1"), /expected https:\/\/host:port/);
      assert.throws(() => parseInitialCluster("a=https://[::1]:70000"), /invalid port in/);
      assert.throws(() => parseInitialCluster("a=https://::1:2380"), /expected https:\/\/host:port/);
      assert.throws(() => parseInitialCluster("a=https://[127.0.0.1]:2380"), /only an IPv6 address may be in brackets/);
      assert.throws(() => parseInitialCluster("a=https://[fe80::1%25eth0]:2380"), /only an IPv6 address may be in brackets/);
      assert.throws(() => parseInitialCluster("a=https://[::1:2380"), /expected https:\/\/host:port/);
    });
    it("writes IPv6 hosts in brackets, as etcd does, and reads them back without", () => {
      const ms = planLocalMembers(3, "::1", 21000);
      assert.equal(renderInitialCluster(ms), "raftkv-1=https://[::1]:21001,raftkv-2=https://[::1]:21011,raftkv-3=https://[::1]:21021");
      assert.deepEqual(parsePeerUrl("https://[2001:db8::7]:2380"), { host: "2001:db8::7", port: 2380 });
      const flags = renderMemberFlags(ms[0]!, ms, { dataDir: "/d", certDir: "/c", clusterToken: "t", clusterState: "new", listenHost: "::" });
      assert.ok(flags.includes("--listen-peer-urls=https://[::]:21001"), flags.join(" "));
      assert.ok(flags.includes("--advertise-client-urls=https://[::1]:21000"), flags.join(" "));
      const [server, peer] = memberCertProfiles(ms[0]!);
      assert.deepEqual(server!.ipAddresses, ["::1", "127.0.0.1"]);
      assert.deepEqual(peer!.ipAddresses, ["::1"]);
      assert.deepEqual(peer!.dnsNames, []);
    });
    it("rejects arbitrary garbage with a TopologyError, never another exception", () => {
      fc.assert(
        fc.property(fc.string(), (s) => {
          try {
            parseInitialCluster(s);
          } catch (e) {
            return e instanceof TopologyError;
          }
          return true;
        }),
      );
    });
  });

  describe("member flags", () => {
    it("renders the full flag set of one member", () => {
      const ms = planLocalMembers(3);
      const flags = renderMemberFlags(ms[1]!, ms, {
        dataDir: "/var/lib/raftkv",
        certDir: "/etc/raftkv/pki",
        clusterToken: "tok-1",
        clusterState: "new",
        listenHost: "127.0.0.1",
      });
      assert.deepEqual(flags, [
        "--name=raftkv-2",
        "--data-dir=/var/lib/raftkv",
        "--listen-peer-urls=https://127.0.0.1:2390",
        "--listen-client-urls=https://127.0.0.1:2389",
        "--listen-metrics-urls=http://127.0.0.1:2391",
        "--initial-advertise-peer-urls=https://127.0.0.1:2390",
        "--advertise-client-urls=https://127.0.0.1:2389",
        "--initial-cluster=raftkv-1=https://127.0.0.1:2380,raftkv-2=https://127.0.0.1:2390,raftkv-3=https://127.0.0.1:2400",
        "--initial-cluster-state=new",
        "--initial-cluster-token=tok-1",
        "--cert-file=/etc/raftkv/pki/server.crt",
        "--key-file=/etc/raftkv/pki/server.key",
        "--trusted-ca-file=/etc/raftkv/pki/ca.crt",
        "--client-cert-auth=true",
        "--peer-cert-file=/etc/raftkv/pki/peer.crt",
        "--peer-key-file=/etc/raftkv/pki/peer.key",
        "--peer-trusted-ca-file=/etc/raftkv/pki/peer-ca.crt",
        "--peer-client-cert-auth=true",
      ]);
    });
    it("refuses a member outside the cluster and a bad token", () => {
      const ms = planLocalMembers(3);
      const base = { dataDir: "/d", certDir: "/c", clusterToken: "t", clusterState: "new" as const, listenHost: "0.0.0.0" };
      assert.throws(() => renderMemberFlags({ ...ms[0]!, name: "other" }, ms, base), /not in the cluster/);
      assert.throws(() => renderMemberFlags(ms[0]!, ms, { ...base, clusterToken: "a b" }), /invalid cluster token/);
    });
    it("local plans reject unsupported sizes with the plan's reason", () => {
      assert.throws(() => planLocalMembers(4), /even size/);
    });
  });

  describe("certificate profiles", () => {
    it("gives a member a server cert for its address and localhost, and a dual-use peer cert", () => {
      const [m] = planHostMembers(["10.0.1.10"]);
      const [server, peer] = memberCertProfiles(m!, { extraDnsNames: ["nlb.example.com"] });
      assert.deepEqual(server!.ipAddresses, ["10.0.1.10", "127.0.0.1"]);
      assert.deepEqual(server!.dnsNames, ["localhost", "nlb.example.com"]);
      assert.ok(server!.usages.includes("server_auth") && !server!.usages.includes("client_auth"));
      assert.deepEqual(peer!.ipAddresses, ["10.0.1.10"]);
      assert.ok(peer!.usages.includes("server_auth") && peer!.usages.includes("client_auth"));
    });
    it("names the member in its peer certificate (CN, OU and a URI SAN); other profiles carry no member URI", () => {
      const [m] = planHostMembers(["10.0.1.10"]);
      const [server, peer] = memberCertProfiles(m!);
      assert.equal(peer!.commonName, "raftkv-1");
      assert.equal(peer!.organizationalUnit, CERT_OU.peer);
      assert.deepEqual(peer!.uris, ["urn:raftkv:member:raftkv-1"]);
      assert.equal(parseMemberIdentityUri(peer!.uris[0]!), "raftkv-1");
      assert.deepEqual(server!.uris, []);
      assert.equal(server!.organizationalUnit, CERT_OU.server);
      assert.deepEqual(clientCertProfile("admin").uris, []);
      assert.equal(clientCertProfile("admin").organizationalUnit, CERT_OU.client);
      assert.equal(parseMemberIdentityUri("urn:raftkv:member:Bad Name"), undefined);
      assert.equal(parseMemberIdentityUri("https://raftkv-1"), undefined);
      assert.equal(memberOpsClientName("raftkv-2"), "raftkv-2-ops");
    });
    it("puts DNS hosts into DNS SANs", () => {
      const [m] = planHostMembers(["node1.internal"]);
      const [server, peer] = memberCertProfiles(m!);
      assert.deepEqual(server!.dnsNames, ["node1.internal", "localhost"]);
      assert.deepEqual(peer!.dnsNames, ["node1.internal"]);
      assert.deepEqual(peer!.ipAddresses, []);
    });
    it("client certs authenticate clients only", () => {
      const c = clientCertProfile("admin");
      assert.deepEqual(c.usages, ["digital_signature", "key_encipherment", "client_auth"]);
      assert.throws(() => clientCertProfile("Admin!"), /invalid member name/);
    });
  });
});
