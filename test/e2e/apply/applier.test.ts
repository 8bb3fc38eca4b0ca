import { strict as assert } from "node:assert";
import type { LabLike, Plan, RecordedResource, Step } from "./contract";
import { Applier, ApplyError, ProviderError, type Provider } from "./index";

const TYPE = "test:index:Thing";

function res(name: string, extra: Partial<RecordedResource> = {}): RecordedResource {
  return {
    urn: `urn:pulumi:s::p::${TYPE}::${name}`,
    type: TYPE,
    name,
    custom: true,
    inputs: {},
    secretInputs: [],
    dependencies: [],
    options: {},
    id: `${name}-id`,
    outputs: { mock: name },
    ...extra,
  };
}

function step(op: Step["op"], r: RecordedResource, after: number[] = [], old?: RecordedResource, deleteBeforeReplace = false): Step {
  return { op, urn: r.urn, ...(op === "delete" ? { old: r } : { new: r }), ...(old ? { old } : {}), diffKeys: [], deleteBeforeReplace, after };
}

const noLab = {} as LabLike;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A provider that records what ran when, sleeping `ms` per operation, failing on demand. */
function recorder(ms: number, failOn: Set<string> = new Set()) {
  const events: string[] = [];
  const p: Provider = {
    async create(r) {
      events.push(`start create ${r.name}`);
      await sleep(ms);
      if (failOn.has(r.name)) throw new ProviderError(`create of ${r.name}: process exited with status 1`, "line 1\nfatal: disk on fire");
      events.push(`end create ${r.name}`);
      return { ...r.outputs, stdout: `real ${r.name}` };
    },
    async update(_o, n) {
      events.push(`update ${n.name}`);
      return n.outputs;
    },
    async delete(o) {
      events.push(`delete ${o.name}`);
    },
  };
  return { events, p };
}

describe("e2e applier: scheduling a plan like the Pulumi engine", () => {
  it("starts independent steps together and a step only after its `after` steps", async () => {
    const { events, p } = recorder(50);
    const a = res("a"), b = res("b"), c = res("c");
    const plan: Plan = { steps: [step("create", a), step("create", b), step("create", c, [0, 1])], next: { resources: [a, b, c], outputs: { x: 1 } } };
    const applier = new Applier({ lab: noLab, providers: { [TYPE]: p } });
    try {
      const state = await applier.apply(plan, undefined);
      assert.deepEqual(events.slice(0, 2).sort(), ["start create a", "start create b"]);
      assert.ok(events.indexOf("start create c") > events.indexOf("end create a"));
      assert.ok(events.indexOf("start create c") > events.indexOf("end create b"));
      assert.deepEqual(state.resources.map((r) => r.outputs["stdout"]), ["real a", "real b", "real c"]);
      assert.deepEqual(state.outputs, { x: 1 });
    } finally {
      await applier.close();
    }
  });

  it("stops at the first failure: running steps finish, nothing new starts, the state keeps what completed", async () => {
    const { events, p } = recorder(30, new Set(["bad"]));
    const prior = res("kept");
    const ok = res("ok"), bad = res("bad"), dependent = res("dependent");
    const slow: Provider = { ...p, create: async (r) => (await sleep(120), events.push(`end create ${r.name}`), r.outputs) };
    const plan: Plan = {
      steps: [step("create", bad), step("create", { ...ok, type: "slow" }), step("create", dependent, [0])],
      next: { resources: [prior, ok, bad, dependent], outputs: { new: true } },
    };
    const applier = new Applier({ lab: noLab, providers: { [TYPE]: p, slow } });
    try {
      await assert.rejects(applier.apply(plan, { resources: [prior], outputs: { old: true } }), (e: unknown) => {
        assert.ok(e instanceof ApplyError);
        assert.match(e.message, /^step 0 \(create urn:pulumi:s::p::test:index:Thing::bad\) failed: create of bad: process exited with status 1/);
        assert.match(e.message, /--- stderr \(tail\) ---\nline 1\nfatal: disk on fire/);
        assert.deepEqual(e.state.resources.map((r) => r.name), ["kept", "ok"]);
        assert.deepEqual(e.state.outputs, { old: true });
        return true;
      });
      assert.ok(events.includes("end create ok"), "the step already running finished");
      assert.ok(!events.some((x) => x.includes("dependent")), "the dependent step never started");
    } finally {
      await applier.close();
    }
  });

  it("replaces create-before-delete with the old deletion after every other step, or delete-first when asked", async () => {
    const { events, p } = recorder(5);
    const oldA = res("a", { outputs: { v: 1 } }), newA = res("a", { id: "a-id2", outputs: { v: 2 } });
    const oldB = res("b"), newB = res("b", { id: "b-id2" });
    const other = res("other");
    // As the engine plans them: a replace step creates, the old half is its own delete step.
    const plan: Plan = {
      steps: [
        step("replace", newA, [], oldA),
        step("create", other, [0]),
        step("delete", oldB, []),
        step("replace", newB, [2], oldB, true),
        step("delete", oldA, [0, 1, 2, 3]),
      ],
      next: { resources: [newA, other, newB], outputs: {} },
    };
    const applier = new Applier({ lab: noLab, providers: { [TYPE]: p } });
    try {
      const state = await applier.apply(plan, { resources: [oldA, oldB], outputs: {} });
      assert.ok(events.indexOf("delete a") > events.indexOf("end create other"), events.join(" | "));
      assert.ok(events.indexOf("delete b") < events.indexOf("start create b"), events.join(" | "));
      assert.equal(state.resources.find((r) => r.name === "a")?.outputs["v"], 2);
      assert.deepEqual(state.resources.map((r) => r.id).sort(), ["a-id2", "b-id2", "other-id"]);
    } finally {
      await applier.close();
    }
  });

  it("a deleted resource is gone from what the providers see when its delete runs (a target group attachment's delete deregisters its target)", async () => {
    const seen: Record<string, string[]> = {};
    const p: Provider = {
      create: async (r) => r.outputs,
      update: async (_o, n) => n.outputs,
      async delete(o, ctx) {
        seen[o.name] = ctx.live().map((r) => `${r.name} ${r.id}`).sort();
      },
    };
    const gone = res("gone"), kept = res("kept");
    const oldRep = res("rep"), newRep = res("rep", { id: "rep-id2" });
    const plan: Plan = {
      steps: [step("delete", gone), step("replace", newRep, [], oldRep), step("delete", oldRep, [1])],
      next: { resources: [kept, newRep], outputs: {} },
    };
    const applier = new Applier({ lab: noLab, providers: { [TYPE]: p } });
    try {
      await applier.apply(plan, { resources: [gone, kept, oldRep], outputs: {} });
      assert.ok(!seen["gone"]!.includes("gone gone-id"), `live at its delete: ${seen["gone"]!.join(", ")}`);
      // The old half of a create-before-delete replacement: the replacement stays visible.
      assert.ok(seen["rep"]!.includes("rep rep-id2") && !seen["rep"]!.includes("rep rep-id"), `live at the old half's delete: ${seen["rep"]!.join(", ")}`);
    } finally {
      await applier.close();
    }
  });

  it("deletedWith: no provider delete when the named resource is deleted in the same run (removed or replaced), one when it stays; gone from the state either way", async () => {
    const host = res("host");
    const agent = res("agent", { options: { deletedWith: host.urn } });
    for (const [plan, expected] of [
      // Both removed (a shrink): the agent's delete is skipped, the host's runs.
      [{ steps: [step("delete", agent), step("delete", host, [0])], next: { resources: [], outputs: {} } }, ["delete host"]],
      // The host replaced, create-before-delete: its old half is deleted in this run too.
      [{ steps: [step("replace", res("host", { id: "host-2" }), [], host), step("delete", agent, [0]), step("delete", host, [1])], next: { resources: [res("host", { id: "host-2" })], outputs: {} } }, ["delete host"]],
      // Only the agent goes (the host stays): its delete runs.
      [{ steps: [step("delete", agent)], next: { resources: [host], outputs: {} } }, ["delete agent"]],
    ] as Array<[Plan, string[]]>) {
      const { events, p } = recorder(1);
      const applier = new Applier({ lab: noLab, providers: { [TYPE]: p } });
      try {
        const state = await applier.apply(plan, { resources: [host, agent], outputs: {} });
        assert.deepEqual(events.filter((e) => e.startsWith("delete")), expected);
        assert.ok(!state.resources.some((r) => r.name === "agent"), "the agent is gone from the state");
      } finally {
        await applier.close();
      }
    }
  });

  it("records types it does not reproduce and refuses plans whose steps can never start", async () => {
    const vpc = res("vpc", { type: "aws:ec2/vpc:Vpc" });
    const applier = new Applier({ lab: noLab });
    try {
      const state = await applier.apply({ steps: [step("create", vpc)], next: { resources: [vpc], outputs: {} } }, undefined);
      assert.deepEqual(state.resources[0]?.outputs, { mock: "vpc" });
      await assert.rejects(
        applier.apply({ steps: [step("create", res("x", { type: "aws:ec2/vpc:Vpc" }), [1]), step("create", res("y", { type: "aws:ec2/vpc:Vpc" }), [0])], next: { resources: [], outputs: {} } }, state),
        /steps 0, 1 never became ready/,
      );
    } finally {
      await applier.close();
    }
  });
});
