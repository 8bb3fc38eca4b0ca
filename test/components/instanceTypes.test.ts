import { strict as assert } from "node:assert";
import { archOf, memberBudget, memoryMiB } from "../../components/instanceTypes";
import { resolveSettings, type RawSettings } from "../../components/settings";

const BASE: RawSettings = { adminCidrs: ["10.99.0.0/16"], sshPublicKey: "ssh-ed25519 AAAAC3Nza test" };
const ctx = { region: "eu-west-1", stack: "test", regionZones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"] };

describe("instance types: architecture and the member's memory budget", () => {
  it("Graviton types are arm64, everything else x86_64", () => {
    for (const t of ["t4g.small", "m7g.large", "c6gn.xlarge", "r6gd.2xlarge", "im4gn.large", "is4gen.xlarge", "x2gd.large", "g5g.xlarge", "a1.large"]) assert.equal(archOf(t), "arm64", t);
    for (const t of ["t3.small", "t3a.micro", "m5.large", "m6i.xlarge", "c5n.large", "g4dn.xlarge", "m7i-flex.large", "r5dn.large", "z1d.large"]) assert.equal(archOf(t), "x86_64", t);
    assert.throws(() => archOf("small"), /not an EC2 instance type/);
  });

  it("memory of known types; unknown types are not guessed", () => {
    assert.equal(memoryMiB("t3.small"), 2048);
    assert.equal(memoryMiB("t4g.micro"), 1024);
    assert.equal(memoryMiB("m5.large"), 8192);
    assert.equal(memoryMiB("c6g.2xlarge"), 16384);
    assert.equal(memoryMiB("r7g.xlarge"), 32768);
    assert.equal(memoryMiB("x2iedn.xlarge"), undefined);
    assert.equal(memoryMiB("t3.huge"), undefined);
  });

  it("the quota fits the heap of the instance type; a larger one is refused with the reason", () => {
    // t3.small: (2048 - 256) * 3/4 = 1344 MiB heap; 1344 / 1.5 = 896 MiB of data.
    assert.deepEqual(memberBudget("t3.small"), { heapMiB: 1344, quotaBackendBytes: 896 * 1024 * 1024 });
    assert.ok(memberBudget("t3.small").quotaBackendBytes < 2 * 1024 ** 3, "etcd's 2 GiB default does not fit 2 GiB of RAM");
    assert.equal(memberBudget("r5.4xlarge").quotaBackendBytes, 8 * 1024 ** 3, "at most etcd's 8 GiB");
    assert.throws(() => memberBudget("t3.small", { quotaBackendBytes: 2 * 1024 ** 3 }), /does not fit t3\.small \(2048 MiB\).*heap is 1344 MiB/);
    assert.throws(() => memberBudget("t3.nano"), /needs at least 1024 MiB/);
    assert.throws(() => memberBudget("x2iedn.xlarge"), /set raftkv:masterMemoryMiB/);
    assert.equal(memberBudget("x2iedn.xlarge", { memoryMiB: 131072 }).quotaBackendBytes, 8 * 1024 ** 3);
  });

  it("settings: tuning flags as config, checked like the runtime checks them; one image cannot serve two architectures", () => {
    const s = resolveSettings({ ...BASE, heartbeatIntervalMs: 250, electionTimeoutMs: 2500 }, ctx);
    assert.deepEqual([s.heartbeatIntervalMs, s.electionTimeoutMs], [250, 2500]);
    assert.throws(() => resolveSettings({ ...BASE, heartbeatIntervalMs: 300 }, ctx), /electionTimeoutMs \(1000\) must be at least 5 times raftkv:heartbeatIntervalMs \(300\)/);
    assert.deepEqual(resolveSettings({ ...BASE, masterInstanceType: "t4g.medium" }, ctx).arch, { master: "arm64", worker: "x86_64", bastion: "x86_64" });
    assert.throws(() => resolveSettings({ ...BASE, masterInstanceType: "t4g.medium", amiId: "ami-1" }, ctx), /needs? .*arm64 and x86_64|arm64 and x86_64/);
    assert.equal(resolveSettings({ ...BASE, masterInstanceType: "t4g.medium", workerInstanceType: "t4g.micro", bastionInstanceType: "t4g.nano", amiId: "ami-1" }, ctx).amiId, "ami-1");
  });
});
