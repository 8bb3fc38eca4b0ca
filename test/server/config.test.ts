import { strict as assert } from "node:assert";
import { envName, parseConfig } from "../../node-runtime/server/config";
import { assertRefused, BASE_FLAGS } from "./config-fixtures";

describe("member configuration", () => {
  it("parses the flags the topology plan renders, with etcd's defaults", () => {
    const c = parseConfig(BASE_FLAGS, {});
    assert.equal(c.name, "raftkv-1");
    assert.equal(c.dataDir, "raftkv-1.raftkv");
    assert.equal(c.initialCluster.length, 3);
    assert.equal(c.heartbeatIntervalMs, 100);
    assert.equal(c.electionTimeoutMs, 1000);
    assert.equal(c.maxRequestBytes, 1.5 * 1024 * 1024);
    assert.equal(c.clientCertAuth, true);
    assert.deepEqual(c.listenMetrics.map((u) => u.port), [2381]);
  });

  it("takes --peer-cert-allowed-cn and --peer-cert-allowed-hostname as comma-separated lists (flag or env)", () => {
    const none = parseConfig(BASE_FLAGS, {});
    assert.deepEqual([none.peerCertAllowedCn, none.peerCertAllowedHostname], [[], []]);
    const c = parseConfig([...BASE_FLAGS, "--peer-cert-allowed-cn=raftkv-1, raftkv-2"], { RAFTKV_PEER_CERT_ALLOWED_HOSTNAME: "10.0.0.1,peer.example" });
    assert.deepEqual(c.peerCertAllowedCn, ["raftkv-1", "raftkv-2"]);
    assert.deepEqual(c.peerCertAllowedHostname, ["10.0.0.1", "peer.example"]);
  });

  it("takes every flag from RAFTKV_* env too, flags winning", () => {
    const c = parseConfig(BASE_FLAGS, { [envName("heartbeat-interval")]: "50", [envName("election-timeout")]: "500", RAFTKV_DATA_DIR: "/data" });
    assert.equal(c.heartbeatIntervalMs, 50);
    assert.equal(c.electionTimeoutMs, 500);
    assert.equal(c.dataDir, "/data");
    assert.equal(parseConfig([...BASE_FLAGS, "--data-dir=/flag"], { RAFTKV_DATA_DIR: "/env" }).dataDir, "/flag");
  });

  it("takes etcd's boolean flags bare, as etcd unit files write them (issue 14 #6)", () => {
    // Kubernetes The Hard Way's etcd unit, with space-separated values and bare booleans.
    const unit = [
      "--name", "controller-0",
      "--cert-file=/etc/etcd/kubernetes.pem",
      "--key-file=/etc/etcd/kubernetes-key.pem",
      "--peer-cert-file=/etc/etcd/kubernetes.pem",
      "--peer-key-file=/etc/etcd/kubernetes-key.pem",
      "--trusted-ca-file=/etc/etcd/ca.pem",
      "--peer-trusted-ca-file=/etc/etcd/ca.pem",
      "--peer-client-cert-auth",
      "--client-cert-auth",
      "--initial-advertise-peer-urls", "https://10.240.0.10:2380",
      "--listen-peer-urls", "https://10.240.0.10:2380",
      "--listen-client-urls", "https://10.240.0.10:2379,https://127.0.0.1:2379",
      "--advertise-client-urls", "https://10.240.0.10:2379",
      "--initial-cluster-token", "etcd-cluster-0",
      "--initial-cluster", "controller-0=https://10.240.0.10:2380,controller-1=https://10.240.0.11:2380,controller-2=https://10.240.0.12:2380",
      "--initial-cluster-state", "new",
      "--data-dir=/var/lib/etcd",
    ];
    const c = parseConfig(unit, {});
    assert.equal(c.clientCertAuth, true);
    assert.equal(c.name, "controller-0");
    assert.deepEqual(c.listenClient.map((u) => u.url), ["https://10.240.0.10:2379", "https://127.0.0.1:2379"]);
    // The bare flag last on the line, and the explicit forms, still work.
    const noAuth = BASE_FLAGS.filter((a) => !a.startsWith("--client-cert-auth"));
    assert.equal(parseConfig([...noAuth, "--client-cert-auth"], {}).clientCertAuth, true);
    assert.equal(parseConfig([...noAuth, "--client-cert-auth=false"], {}).clientCertAuth, false);
    assert.equal(parseConfig(noAuth, {}).clientCertAuth, false);
    assertRefused([...noAuth, "--client-cert-auth=maybe"], /--client-cert-auth must be true or false/);
    assertRefused([...BASE_FLAGS, "--peer-client-cert-auth=false"], /not supported/);
  });

  it("takes etcd's corruption-check flags: a bare boolean and a Go duration", () => {
    const d = parseConfig(BASE_FLAGS, {});
    assert.deepEqual([d.initialCorruptCheck, d.corruptCheckTimeMs], [false, 0]);
    const c = parseConfig([...BASE_FLAGS, "--experimental-initial-corrupt-check", "--experimental-corrupt-check-time=1m30s"], {});
    assert.deepEqual([c.initialCorruptCheck, c.corruptCheckTimeMs], [true, 90_000]);
    assert.equal(parseConfig([...BASE_FLAGS, "--experimental-corrupt-check-time", "500ms"], {}).corruptCheckTimeMs, 500);
    assertRefused([...BASE_FLAGS, "--experimental-corrupt-check-time=5 minutes"], /must be a duration such as 5m or 30s/);
    assertRefused([...BASE_FLAGS, "--experimental-corrupt-check-time=10"], /must be a duration/);
  });

  it("takes the client-port deadlines as Go durations, defaulting to the production values", () => {
    const d = parseConfig(BASE_FLAGS, {});
    assert.deepEqual([d.clientHandshakeTimeoutMs, d.gatewayHeaderTimeoutMs, d.gatewayBodyTimeoutMs], [10_000, 10_000, 30_000]);
    const c = parseConfig([...BASE_FLAGS, "--client-handshake-timeout=2s", "--gateway-header-timeout=1500ms", "--gateway-body-timeout", "1m"], {});
    assert.deepEqual([c.clientHandshakeTimeoutMs, c.gatewayHeaderTimeoutMs, c.gatewayBodyTimeoutMs], [2_000, 1_500, 60_000]);
    assert.equal(parseConfig(BASE_FLAGS, { RAFTKV_GATEWAY_BODY_TIMEOUT: "3s" }).gatewayBodyTimeoutMs, 3_000);
    assertRefused([...BASE_FLAGS, "--gateway-body-timeout=0s"], /--gateway-body-timeout must be at least 1ms/);
    assertRefused([...BASE_FLAGS, "--client-handshake-timeout=10"], /--client-handshake-timeout must be a duration/);
  });

  it("rejects a name missing from --initial-cluster in one line", () => {
    assertRefused([...BASE_FLAGS, "--name=raftkv-9"], /no member named "raftkv-9"/);
  });
  it("rejects mismatched advertise URLs, plain-HTTP peers and bad numbers", () => {
    assertRefused([...BASE_FLAGS, "--initial-advertise-peer-urls=https://127.0.0.1:9999"], /gives raftkv-1 the peer URL/);
    assertRefused([...BASE_FLAGS, "--listen-peer-urls=http://127.0.0.1:2380"], /must use https/);
    assertRefused([...BASE_FLAGS, "--heartbeat-interval=abc"], /--heartbeat-interval must be a positive integer/);
    assertRefused([...BASE_FLAGS, "--election-timeout=200"], /at least 5 times/);
    assertRefused([...BASE_FLAGS, "--initial-cluster-state=maybe"], /'new' or 'existing'/);
    assertRefused([...BASE_FLAGS, "--initial-cluster=raftkv-1=https://h:1,raftkv-1=https://g:2"], /twice/);
  });
  it("takes IPv6 literal URLs in brackets, as etcd does, and refuses other bracketed hosts", () => {
    const v6 = BASE_FLAGS.map((a) => a.replace(/127\.0\.0\.1/g, "[::1]"));
    const c = parseConfig(v6, {});
    assert.deepEqual([c.listenPeer.host, c.listenPeer.port], ["::1", 2380]);
    assert.deepEqual(c.listenClient.map((u) => u.host), ["::1"]);
    assert.deepEqual(c.initialCluster[1], { name: "raftkv-2", peerUrl: "https://[::1]:2390" });
    assert.deepEqual(c.advertiseClientUrls, ["https://[::1]:2379"]);
    assert.equal(parseConfig([...v6, "--listen-peer-urls=https://[::]:2380"], {}).listenPeer.host, "::");
    assertRefused([...v6, "--listen-client-urls=https://[localhost]:2379"], /only an IPv6 address may be in brackets/);
    assertRefused([...v6, "--listen-peer-urls=https://[::1]:70000"], /out of range/);
    assertRefused([...v6, "--listen-peer-urls=http://[::1]:2380"], /must use https/);
    assertRefused([...v6, "--initial-cluster=raftkv-1=https://[::1]:2380,raftkv-2=https://[::1:2390"], /--initial-cluster/);
  });
  it("rejects unknown flags and https without certificates", () => {
    assertRefused([...BASE_FLAGS, "--no-such-flag=1"], /unknown option/);
    assertRefused(BASE_FLAGS.filter((a) => !a.startsWith("--cert-file")), /--cert-file and --key-file are required/);
  });
});
