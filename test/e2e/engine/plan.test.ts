import { strict as assert } from "node:assert";
import { planDestroy, planUpdate, PlanError, diffInputs, type RecordedResource, type StackState, type Step } from "./index";

const INSTANCE = "aws:ec2/instance:Instance";
const COMMAND = "command:remote:Command";
const SG = "aws:ec2/securityGroup:SecurityGroup";

function res(name: string, type: string, inputs: Record<string, unknown>, dependencies: string[] = [], extra: Partial<RecordedResource> = {}): RecordedResource {
  return { urn: `urn:${name}`, type, name, custom: true, inputs, secretInputs: [], dependencies: dependencies.map((d) => `urn:${d}`), options: {}, id: `${name}-id`, outputs: { ...inputs }, ...extra };
}
const state = (...resources: RecordedResource[]): StackState => ({ resources, outputs: {} });
const stepFor = (steps: Step[], op: string, name: string) => {
  const i = steps.findIndex((s) => s.op === op && s.urn === `urn:${name}`);
  assert.ok(i >= 0, `no ${op} step for ${name}: ${steps.map((s) => `${s.op} ${s.urn}`).join(", ")}`);
  return i;
};
/** Whether step a (transitively) waits for step b. */
function waitsFor(steps: Step[], a: number, b: number): boolean {
  const seen = new Set<number>();
  const stack = [...steps[a]!.after];
  while (stack.length > 0) {
    const x = stack.pop()!;
    if (x === b) return true;
    if (seen.has(x)) continue;
    seen.add(x);
    stack.push(...steps[x]!.after);
  }
  return false;
}

const sg = () => res("sg", SG, { vpcId: "vpc-1", description: "masters" });
const host = (inputs: Record<string, unknown> = {}, extra: Partial<RecordedResource> = {}) =>
  res("host", INSTANCE, { ami: "ami-1", instanceType: "t3.small", subnetId: "subnet-1", privateIp: "10.0.0.10", userData: "#!/bin/sh", ...inputs }, ["sg"], extra);
const install = (inputs: Record<string, unknown> = {}) => res("install", COMMAND, { create: "install v1", connection: { host: "10.0.0.10" }, ...inputs }, ["host"], { options: { replaceOnChanges: ["triggers[*]"] } });

describe("e2e engine planner", () => {
  it("a first up creates everything in dependency order, independent resources in parallel", () => {
    const other = res("other", SG, { vpcId: "vpc-1", description: "workers" });
    const { steps } = planUpdate(undefined, state(sg(), other, host(), install()));
    assert.deepEqual(steps.map((s) => s.op), ["create", "create", "create", "create"]);
    const [iSg, iOther, iHost, iInstall] = ["sg", "other", "host", "install"].map((n) => stepFor(steps, "create", n));
    assert.deepEqual(steps[iHost!]!.after, [iSg]);
    assert.deepEqual(steps[iInstall!]!.after, [iHost]);
    assert.deepEqual(steps[iOther!]!.after, []);
    assert.deepEqual(steps[iSg!]!.after, []);
  });

  it("an unchanged program plans nothing", () => {
    const s = state(sg(), host(), install());
    assert.deepEqual(planUpdate(s, structuredClone(s)).steps, []);
  });

  it("a non-force-new change updates in place (instance type, user data: stop/start)", () => {
    const prior = state(sg(), host(), install());
    const { steps } = planUpdate(prior, state(sg(), host({ instanceType: "t3.large", userData: "#!/bin/sh\necho 2" }), install()));
    assert.deepEqual(steps.map((s) => [s.op, s.urn, s.diffKeys]), [["update", "urn:host", ["instanceType", "userData"]]]);
  });

  it("userData replaces when userDataReplaceOnChange is set", () => {
    const prior = state(sg(), host({ userDataReplaceOnChange: true }));
    const { steps } = planUpdate(prior, state(sg(), host({ userDataReplaceOnChange: true, userData: "#!/bin/sh\necho 2" }, { id: "host-id2" })));
    assert.deepEqual(steps.map((s) => s.op), ["replace", "delete"]);
  });

  it("a force-new change replaces create-before-delete: the old one is deleted after everything else", () => {
    const prior = state(sg(), host(), install());
    const next = state(sg(), host({ ami: "ami-2" }, { id: "host-id2" }), install());
    const { steps } = planUpdate(prior, next);
    assert.deepEqual(steps.map((s) => `${s.op} ${s.urn}`), ["replace urn:host", "delete urn:host"]);
    assert.equal(steps[0]!.deleteBeforeReplace, false);
    assert.deepEqual(steps[0]!.diffKeys, ["ami"]);
    assert.equal(steps[1]!.old!.id, "host-id");
    assert.deepEqual(steps[1]!.after, [0]);
    // The install has no triggers: nothing re-provisions the new host (as with the real engine).
    assert.ok(!steps.some((s) => s.urn === "urn:install"));
  });

  it("the create-before-delete replacement's delete waits for every other step, even unrelated ones", () => {
    const prior = state(sg(), host(), install());
    const next = state(sg(), host({ ami: "ami-2" }, { id: "host-id2" }), install({ create: "install v2" }));
    const { steps } = planUpdate(prior, next);
    const del = stepFor(steps, "delete", "host");
    assert.ok(waitsFor(steps, del, stepFor(steps, "update", "install")));
    assert.ok(waitsFor(steps, stepFor(steps, "update", "install"), stepFor(steps, "replace", "host")));
  });

  it("deleteBeforeReplace deletes first, and first of all the replaced resources that depend on it", () => {
    const cmd = (v: string, id = "install-id") => res("install", COMMAND, { create: "install", triggers: [v] }, ["host"], { options: { replaceOnChanges: ["triggers[*]"] }, id });
    const prior = state(sg(), host({}, { options: { deleteBeforeReplace: true } }), cmd("host-id"));
    const next = state(sg(), host({ privateIp: "10.0.0.11" }, { options: { deleteBeforeReplace: true }, id: "host-id2" }), cmd("host-id2", "install-id2"));
    const { steps } = planUpdate(prior, next);
    const delInstall = stepFor(steps, "delete", "install");
    const delHost = stepFor(steps, "delete", "host");
    const repHost = stepFor(steps, "replace", "host");
    const repInstall = stepFor(steps, "replace", "install");
    assert.ok(waitsFor(steps, delHost, delInstall), "dependent deleted before the host");
    assert.ok(waitsFor(steps, repHost, delHost), "old host deleted before the new one is created");
    assert.ok(waitsFor(steps, repInstall, repHost));
    assert.ok(steps[repInstall]!.deleteBeforeReplace && steps[repHost]!.deleteBeforeReplace);
  });

  it("deleteBeforeReplace takes along only what is replaced because of it (property dependencies), not dependsOn-only dependents", () => {
    // host -> gate (updated, script text carries the host id) <- next (dependsOn gate, replaced on its own).
    const opts = { options: { deleteBeforeReplace: true } };
    const h = (ip: string, id: string) => res("host", INSTANCE, { ami: "ami-1", privateIp: ip, subnetId: "s" }, [], { ...opts, id });
    const gate = (hostId: string) => res("gate", COMMAND, { create: `gate ${hostId}` }, ["host"], { propertyDependencies: { create: ["urn:host"] } });
    const nextHost = (ami: string, id: string) => res("next", INSTANCE, { ami, privateIp: "10.0.0.12", subnetId: "s" }, ["gate"], { ...opts, id });
    const prior = state(h("10.0.0.11", "h1"), gate("h1"), nextHost("ami-1", "n1"));
    const { steps } = planUpdate(prior, state(h("10.0.0.21", "h2"), gate("h2"), nextHost("ami-2", "n2")));
    const delNext = stepFor(steps, "delete", "next");
    const updGate = stepFor(steps, "update", "gate");
    assert.ok(waitsFor(steps, delNext, updGate), "the next host goes only after the gate ran (it registers after it)");
    assert.ok(waitsFor(steps, updGate, stepFor(steps, "replace", "host")));
  });

  it("a command that reaches its host through a replaced jump host is not deleted with the jump host (no cycle)", () => {
    // Two hosts replaced one after the other (h2 waits for gate1), each with a command replaced
    // because of its host (triggers) that connects through the jump host j, replaced too.
    const dbr = (id: string) => ({ options: { deleteBeforeReplace: true }, id });
    const j = (ami: string, id: string) => res("j", INSTANCE, { ami, privateIp: "10.0.255.10" }, [], dbr(id));
    const h = (n: string, ami: string, id: string, deps: string[]) => res(n, INSTANCE, { ami, privateIp: `10.0.0.1${n.slice(1)}` }, deps, dbr(id));
    const cmd = (n: string, hostId: string, id: string) =>
      res(`${n}-cmd`, COMMAND, { create: "x", triggers: [hostId], connection: { proxy: "j" } }, [n, "j"], {
        options: { replaceOnChanges: ["triggers[*]"] },
        propertyDependencies: { triggers: [`urn:${n}`], connection: ["urn:j"] },
        id,
      });
    const gate = (hostId: string) => res("gate1", COMMAND, { create: `gate ${hostId}` }, ["h1-cmd", "h1"], { propertyDependencies: { create: ["urn:h1"] } });
    const prior = state(j("a1", "j1"), h("h1", "a1", "x1", []), cmd("h1", "x1", "c1"), gate("x1"), h("h2", "a1", "y1", ["gate1"]), cmd("h2", "y1", "d1"));
    const next = state(j("a2", "j2"), h("h1", "a2", "x2", []), cmd("h1", "x2", "c2"), gate("x2"), h("h2", "a2", "y2", ["gate1"]), cmd("h2", "y2", "d2"));
    const { steps } = planUpdate(prior, next);
    assert.ok(waitsFor(steps, stepFor(steps, "delete", "h2"), stepFor(steps, "update", "gate1")));
    assert.ok(waitsFor(steps, stepFor(steps, "delete", "h2-cmd"), stepFor(steps, "update", "gate1")), "h2's command goes with h2, not with the jump host");
    assert.ok(!waitsFor(steps, stepFor(steps, "replace", "j"), stepFor(steps, "delete", "h2-cmd")));
  });

  it("triggers replace a command (replaceOnChanges from the SDK, force-new in the provider)", () => {
    const withTriggers = (t: string, id: string) => res("install", COMMAND, { create: "x", triggers: [t] }, [], { id });
    assert.equal(diffInputs(COMMAND, { create: "x", triggers: ["a"] }, { create: "x", triggers: ["b"] }, {}).kind, "replace");
    const { steps } = planUpdate(state(withTriggers("a", "c1")), state(withTriggers("b", "c2")));
    assert.deepEqual(steps.map((s) => s.op), ["replace", "delete"]);
    // Any other change of a command is an update (it runs `update`, or `create` when unset).
    assert.equal(diffInputs(COMMAND, { create: "x", stdin: "a" }, { create: "y", stdin: "b" }, {}).kind, "update");
    assert.equal(diffInputs("command:remote:CopyToRemote", { source: { $asset: "file", hash: "1" } }, { source: { $asset: "file", hash: "2" } }, {}).kind, "update");
  });

  it("nested force-new paths: root volume size updates, root volume encryption replaces", () => {
    const a = { rootBlockDevice: { encrypted: true, volumeSize: 10 } };
    assert.equal(diffInputs(INSTANCE, a, { rootBlockDevice: { encrypted: true, volumeSize: 20 } }, {}).kind, "update");
    assert.equal(diffInputs(INSTANCE, a, { rootBlockDevice: { encrypted: false, volumeSize: 10 } }, {}).kind, "replace");
    assert.equal(diffInputs(INSTANCE, { ebsBlockDevices: [{ volumeSize: 20 }] }, { ebsBlockDevices: [{ volumeSize: 30 }] }, {}).kind, "replace");
  });

  it("ignoreChanges hides a change; replaceOnChanges turns an update into a replacement", () => {
    assert.equal(diffInputs(INSTANCE, { ami: "a", tags: { x: "1" } }, { ami: "b", tags: { x: "2" } }, { ignoreChanges: ["ami", "tags.x"] }).kind, "same");
    assert.equal(diffInputs(INSTANCE, { instanceType: "a" }, { instanceType: "b" }, { replaceOnChanges: ["instanceType"] }).kind, "replace");
  });

  it("a type without a force-new list is refused rather than guessed", () => {
    assert.throws(() => diffInputs("aws:rds/instance:Instance", { a: 1 }, { a: 2 }, {}), /no force-new list/);
  });

  it("steps wait through unchanged resources: C after A's update when C -> B (unchanged) -> A", () => {
    const a = (v: string) => res("a", SG, { vpcId: "vpc-1", description: "d", tags: { v } });
    const b = res("b", COMMAND, { create: "b" }, ["a"]);
    const c = (v: string) => res("c", COMMAND, { create: v }, ["b"]);
    const { steps } = planUpdate(state(a("1"), b, c("1")), state(a("2"), b, c("2")));
    assert.ok(waitsFor(steps, stepFor(steps, "update", "c"), stepFor(steps, "update", "a")));
  });

  it("removed resources are deleted last, in reverse dependency order, one antichain at a time", () => {
    const prior = state(sg(), host(), install(), res("unrelated", SG, { vpcId: "vpc-1", description: "u" }, ["sg"]));
    const { steps } = planUpdate(prior, state(sg()));
    const [dInstall, dHost, dUnrelated] = ["install", "host", "unrelated"].map((n) => stepFor(steps, "delete", n));
    assert.ok(waitsFor(steps, dHost!, dInstall!));
    // Round 1 = install and unrelated (nothing depends on them), round 2 = host.
    assert.ok(waitsFor(steps, dHost!, dUnrelated!));
    assert.ok(!waitsFor(steps, dInstall!, dUnrelated!) && !waitsFor(steps, dUnrelated!, dInstall!));
  });

  it("destroy deletes everything in reverse dependency order", () => {
    const { steps, next } = planDestroy(state(sg(), host(), install()));
    assert.deepEqual(steps.map((s) => `${s.op} ${s.urn}`), ["delete urn:install", "delete urn:host", "delete urn:sg"]);
    assert.deepEqual(steps.map((s) => s.after), [[], [0], [1]]);
    assert.deepEqual(next.resources, []);
  });

  it("protected resources cannot be replaced or deleted; retainOnDelete still plans the delete step", () => {
    const p = host({}, { options: { protect: true } });
    assert.throws(() => planUpdate(state(sg(), p), state(sg(), host({ ami: "ami-2" }, { id: "x", options: { protect: true } }))), PlanError);
    assert.throws(() => planDestroy(state(sg(), p)), /marked for protection/);
    const kept = host({}, { options: { retainOnDelete: true } });
    const { steps } = planDestroy(state(sg(), kept));
    assert.equal(steps.find((s) => s.urn === "urn:host")!.old!.options.retainOnDelete, true);
  });

  it("deletedWith: the delete step stays in the plan (it removes the resource from the state; the applier skips the provider)", () => {
    const agent = res("agent", COMMAND, { create: "install agent", delete: "remove agent", connection: { host: "10.0.0.10" } }, ["host"], { options: { deletedWith: "urn:host" } });
    const prior = state(sg(), host(), agent);
    assert.deepEqual(planUpdate(prior, state(sg())).steps.map((s) => `${s.op} ${s.urn}`), ["delete urn:agent", "delete urn:host"]);
    assert.deepEqual(planDestroy(prior).steps.map((s) => `${s.op} ${s.urn}`), ["delete urn:agent", "delete urn:host", "delete urn:sg"]);
  });

  it("components are recorded but get no steps", () => {
    const comp: RecordedResource = { ...res("comp", "raftkv:index:Cluster", {}), custom: false, id: "" };
    assert.deepEqual(planUpdate(undefined, state(comp)).steps, []);
  });
});
