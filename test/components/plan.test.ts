import { strict as assert } from "node:assert";
import { TopologyError, masterCountProblem, memberName, planHostMembers, quorum } from "../../components/topology";
import { BOOTSTRAP_MASTERS, joinPlan, planResize } from "../../components/membership";
import { carveSubnets, hostAddress, placeMasters, placeWorkers, privateDnsName, publicSubnetCidr } from "../../components/addressing";
import { pickZones, resolveSettings, type RawSettings } from "../../components/settings";

const ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];

describe("resize plan", () => {
  it("grows one member at a time in ascending order, each step keeping a quorum", () => {
    assert.deepEqual(
      planResize(3, 7).map((s) => [s.action, s.member, s.sizeBefore, s.sizeAfter, s.quorumAfter]),
      [
        ["add", "raftkv-4", 3, 4, 3],
        ["add", "raftkv-5", 4, 5, 3],
        ["add", "raftkv-6", 5, 6, 4],
        ["add", "raftkv-7", 6, 7, 4],
      ],
    );
  });
  it("shrinks one member at a time from the highest member down", () => {
    assert.deepEqual(
      planResize(7, 3).map((s) => `${s.action} ${s.member}`),
      ["remove raftkv-7", "remove raftkv-6", "remove raftkv-5", "remove raftkv-4"],
    );
    assert.deepEqual(planResize(5, 3).map((s) => s.member), ["raftkv-5", "raftkv-4"]);
  });
  it("every step changes the size by exactly one and chains to the next", () => {
    for (const [a, b] of [[3, 5], [3, 7], [5, 7], [7, 5], [7, 3], [5, 3], [5, 5]] as const) {
      const steps = planResize(a, b);
      assert.equal(steps.length, Math.abs(b - a));
      let size: number = a;
      for (const s of steps) {
        assert.equal(s.sizeBefore, size);
        assert.equal(Math.abs(s.sizeAfter - s.sizeBefore), 1);
        assert.equal(s.quorumAfter, quorum(s.sizeAfter));
        size = s.sizeAfter;
      }
      assert.equal(size, b);
    }
  });
  it("refuses unsupported sizes with the plan's reason", () => {
    assert.throws(() => planResize(3, 4), (e: Error) => e instanceof TopologyError && e.message === masterCountProblem(4));
    assert.throws(() => planResize(9, 3), (e: Error) => e.message === masterCountProblem(9));
  });
});

describe("join plan", () => {
  const members = planHostMembers(["10.0.0.10", "10.0.1.10", "10.0.2.10", "10.0.0.11", "10.0.1.11", "10.0.2.11", "10.0.0.12"]);
  it("bootstraps the first three together and joins the rest one by one", () => {
    const plans = joinPlan(members);
    for (const p of plans.slice(0, BOOTSTRAP_MASTERS)) {
      assert.equal(p.clusterState, "new");
      assert.deepEqual(p.initialCluster.map((m) => m.name), ["raftkv-1", "raftkv-2", "raftkv-3"]);
      assert.deepEqual(p.joinVia, []);
    }
    for (const p of plans.slice(BOOTSTRAP_MASTERS)) {
      assert.equal(p.clusterState, "existing");
      assert.deepEqual(p.initialCluster.map((m) => m.name), members.slice(0, p.index + 1).map((m) => m.name));
      assert.deepEqual(p.joinVia.map((m) => m.name), members.slice(0, p.index).map((m) => m.name));
    }
  });
  it("a member's plan does not depend on the cluster size (resizing never re-renders survivors)", () => {
    const of7 = joinPlan(members);
    const of5 = joinPlan(members.slice(0, 5));
    assert.deepEqual(of5, of7.slice(0, 5));
  });
});

describe("address plan", () => {
  const subnets = carveSubnets("10.42.0.0/16", ZONES);
  it("carves one /24 per zone and keeps the last /24 for the NAT subnet", () => {
    assert.deepEqual(subnets.map((s) => s.cidr), ["10.42.0.0/24", "10.42.1.0/24", "10.42.2.0/24"]);
    assert.equal(publicSubnetCidr("10.42.0.0/16"), "10.42.255.0/24");
    assert.throws(() => carveSubnets("10.42.0.0/24", ZONES), /use a \/22 or larger/);
    assert.throws(() => carveSubnets("10.42.0.1/16", ZONES), /host bits are set/);
  });
  it("deals masters round-robin so losing any one zone keeps quorum for 3, 5 and 7", () => {
    for (const n of [3, 5, 7]) {
      const names = Array.from({ length: n }, (_, i) => memberName(i));
      const placed = placeMasters(names, subnets);
      const perZone = ZONES.map((z) => placed.filter((p) => p.availabilityZone === z).length);
      assert.ok(Math.max(...perZone) - Math.min(...perZone) <= 1, `${n}: ${perZone.join("|")}`);
      for (const lost of perZone) assert.ok(n - lost >= quorum(n), `${n} members, losing a zone of ${lost}`);
      assert.equal(new Set(placed.map((p) => p.privateIp)).size, n);
    }
  });
  it("never hands a master, a worker and the load balancer the same address", () => {
    const masters = placeMasters(Array.from({ length: 7 }, (_, i) => memberName(i)), subnets).map((p) => p.privateIp);
    const workers = placeWorkers(["w-1", "w-2", "w-3", "w-4"], subnets).map((p) => p.privateIp);
    const lbs = subnets.map((s) => hostAddress(s.cidr, 4));
    const all = [...masters, ...workers, ...lbs];
    assert.equal(new Set(all).size, all.length);
    assert.deepEqual(masters.slice(0, 4), ["10.42.0.10", "10.42.1.10", "10.42.2.10", "10.42.0.11"]);
  });
  it("refuses AWS-reserved and out-of-subnet offsets", () => {
    assert.throws(() => hostAddress("10.0.0.0/24", 3), /usable offsets are 4\.\.254/);
    assert.throws(() => hostAddress("10.0.0.0/28", 15), /use a larger subnet/);
  });
  it("names hosts as EC2's private DNS does", () => {
    assert.equal(privateDnsName("10.42.0.10", "eu-west-1"), "ip-10-42-0-10.eu-west-1.compute.internal");
    assert.equal(privateDnsName("10.42.0.10", "us-east-1"), "ip-10-42-0-10.ec2.internal");
  });
});

describe("stack settings", () => {
  const base: RawSettings = { adminCidrs: ["10.0.0.0/8"], sshPublicKey: "ssh-ed25519 AAAAC3Nza test" };
  const ctx = { region: "eu-west-1", stack: "dev", regionZones: ZONES };
  it("fills defaults: 3 masters over the region's zones, token from the stack", () => {
    const s = resolveSettings(base, ctx);
    assert.equal(s.masters, 3);
    assert.equal(s.clusterToken, "raftkv-dev");
    assert.deepEqual(s.network.subnets.map((x) => x.availabilityZone), ZONES);
  });
  it("zones: the region's list sorted, the first three; fewer are spread over; raftkv:availabilityZones overrides; none is refused", () => {
    const zonesOf = (regionZones: string[], raw: RawSettings = {}) => resolveSettings({ ...base, masters: 5, ...raw }, { ...ctx, regionZones }).network.subnets.map((x) => x.availabilityZone);
    assert.deepEqual(zonesOf(["us-east-1f", "us-east-1c", "us-east-1a", "us-east-1d", "us-east-1b", "us-east-1e"]), ["us-east-1a", "us-east-1b", "us-east-1c"]);
    // A zone added later sorts after the ones in use: nothing moves.
    assert.deepEqual(zonesOf(["eu-west-1a", "eu-west-1b", "eu-west-1c", "eu-west-1d"]), ZONES);
    const two = resolveSettings({ ...base, masters: 5 }, { ...ctx, region: "us-west-1", regionZones: ["us-west-1c", "us-west-1b"] });
    assert.deepEqual(two.network.subnets.map((x) => x.availabilityZone), ["us-west-1b", "us-west-1c"]);
    assert.deepEqual(placeMasters(["m1", "m2", "m3", "m4", "m5"], two.network.subnets).map((p) => p.availabilityZone), ["us-west-1b", "us-west-1c", "us-west-1b", "us-west-1c", "us-west-1b"]);
    assert.deepEqual(zonesOf(["eu-west-1a", "eu-west-1b", "eu-west-1c"], { availabilityZones: ["eu-west-1c", "eu-west-1a"] }), ["eu-west-1c", "eu-west-1a"]);
    assert.throws(() => zonesOf([]), /region eu-west-1 lists no availability zone for this account; set raftkv:availabilityZones/);
    assert.deepEqual(pickZones(["b", "a", "a"], "r"), ["a", "b"]);
  });
  it("fails 4 and 9 masters with the plan's message", () => {
    for (const n of [4, 9]) {
      assert.throws(() => resolveSettings({ ...base, masters: n }, ctx), (e: Error) => e instanceof TopologyError && e.message === masterCountProblem(n));
    }
  });
  it("never accepts 0.0.0.0/0 as an admin network, and needs some way in", () => {
    assert.throws(() => resolveSettings({ ...base, adminCidrs: ["0.0.0.0/0"] }, ctx), /never opened to the whole internet/);
    assert.throws(() => resolveSettings({ ...base, adminCidrs: [] }, ctx), /adminCidrs/);
  });
  it("parses existing subnets and rejects malformed ones", () => {
    const s = resolveSettings({ ...base, existingVpcId: "vpc-1", existingSubnets: ["subnet-a:10.1.0.0/24:eu-west-1a", "subnet-b:10.1.1.0/24:eu-west-1b"] }, ctx);
    assert.equal(s.network.kind, "existing");
    assert.deepEqual(s.network.subnets[1], { id: "subnet-b", cidr: "10.1.1.0/24", availabilityZone: "eu-west-1b" });
    assert.throws(() => resolveSettings({ ...base, existingVpcId: "vpc-1", existingSubnets: ["10.1.0.0/24"] }, ctx), /subnet-id:cidr:availability-zone/);
    assert.throws(() => resolveSettings({ ...base, existingVpcId: "vpc-1" }, ctx), /existingSubnets/);
  });
  it("checks CA rotation and certificate lifetimes", () => {
    assert.throws(() => resolveSettings({ ...base, caGeneration: 2, retiredCaGenerations: [2] }, ctx), /earlier CA generations/);
    assert.deepEqual(resolveSettings({ ...base, caGeneration: 2, retiredCaGenerations: [1, 1] }, ctx).retiredCaGenerations, [1]);
    assert.throws(() => resolveSettings({ ...base, peerCaGeneration: 2, retiredPeerCaGenerations: [2] }, ctx), /retiredPeerCaGenerations must be a list of earlier CA generations/);
    const peer = resolveSettings({ ...base, peerCaGeneration: 3, retiredPeerCaGenerations: [2, 1, 2] }, ctx);
    assert.deepEqual([peer.peerCaGeneration, peer.retiredPeerCaGenerations, peer.caGeneration, peer.retiredCaGenerations], [3, [1, 2], 1, []]);
    assert.throws(() => resolveSettings({ ...base, certValidityHours: 100, certEarlyRenewalHours: 100 }, ctx), /less than/);
  });
});
