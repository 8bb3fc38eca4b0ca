/**
 * `pulumi up` and `pulumi destroy` as step plans (see README.md for the semantics and their
 * sources). Pure: prior state + next state in, steps with their ordering out.
 *
 * Ordering, as the real engine produces it:
 *  - a resource registers only after every resource it depends on has registered, and a
 *    resource's step runs at its registration; so a create/update/replace waits for the steps of
 *    its dependencies, through unchanged resources (which register at once but only after their
 *    own dependencies did);
 *  - delete-before-replace deletes the old resource (and first every dependent that is being
 *    replaced too) before creating the new one;
 *  - every other delete (removed resources, the old half of create-before-delete replacements)
 *    runs after the whole program finished, in "antichains": rounds of resources nothing still
 *    condemned depends on, each round finishing before the next starts.
 * A resource `deletedWith` another still gets its delete step, as in the engine (the step removes
 * it from the state); whether its provider runs is decided when the step runs (the applier).
 */
import { diffInputs, parsePath } from "./diff";
import { forceNewPaths } from "./forceNew";
import type { Plan, RecordedResource, StackState, Step } from "./types";

/** The input that the AWS provider autonames; set explicitly, a replacement must delete first. */
const AUTONAMED: Record<string, string> = {
  "aws:ec2/securityGroup:SecurityGroup": "name",
  "aws:lb/loadBalancer:LoadBalancer": "name",
  "aws:lb/targetGroup:TargetGroup": "name",
  "aws:ec2/keyPair:KeyPair": "keyName",
};

export class PlanError extends Error {}

interface Node {
  step: Omit<Step, "after">;
  after: Set<Node>;
}

function byUrn(resources: readonly RecordedResource[]): Map<string, RecordedResource> {
  return new Map(resources.map((r) => [r.urn, r]));
}

function protectedError(op: string, urn: string): PlanError {
  return new PlanError(`unable to ${op} resource "${urn}"\nas it is currently marked for protection. To unprotect the resource, remove the \`protect\` flag from the resource in your Pulumi program and run \`pulumi up\``);
}

/** Rounds of delete nodes: a resource is deleted only once nothing condemned depends on it. */
function scheduleDeletes(deletes: Node[], gate: Set<Node>): void {
  const condemned = new Set(deletes);
  const dependsOnIt = (n: Node): Node[] => {
    const old = n.step.old!;
    return [...condemned].filter((m) => m !== n && (m.step.old!.dependencies.includes(old.urn) || m.step.old!.parent === old.urn));
  };
  let previous = gate;
  while (condemned.size > 0) {
    const round = [...condemned].filter((n) => dependsOnIt(n).length === 0);
    if (round.length === 0) throw new PlanError(`dependency cycle among deletes: ${[...condemned].map((n) => n.step.urn).join(", ")}`);
    for (const n of round) {
      for (const p of previous) n.after.add(p);
      condemned.delete(n);
    }
    previous = new Set(round);
  }
}

function finish(nodes: Node[], next: StackState): Plan {
  // Topological order, stable by creation, so `after` only points backwards.
  const order: Node[] = [];
  const placed = new Set<Node>();
  const visiting = new Set<Node>();
  const visit = (n: Node) => {
    if (placed.has(n)) return;
    if (visiting.has(n)) throw new PlanError(`step cycle at ${n.step.op} ${n.step.urn}`);
    visiting.add(n);
    for (const a of n.after) visit(a);
    visiting.delete(n);
    placed.add(n);
    order.push(n);
  };
  for (const n of nodes) visit(n);
  const index = new Map(order.map((n, i) => [n, i]));
  const steps: Step[] = order.map((n) => ({ ...n.step, after: [...n.after].map((a) => index.get(a)!).sort((a, b) => a - b) }));
  return { steps, next };
}

export function planUpdate(prior: StackState | undefined, next: StackState): Plan {
  const olds = byUrn(prior?.resources ?? []);
  const news = byUrn(next.resources);
  const nodes: Node[] = [];
  /** The create/update/replace node of each next URN that has one. */
  const mainStep = new Map<string, Node>();
  const replaced = new Map<string, Node>();

  for (const r of next.resources) {
    if (!r.custom) continue;
    const old = olds.get(r.urn);
    let step: Omit<Step, "after"> | undefined;
    if (old === undefined) {
      step = { op: "create", urn: r.urn, new: r, diffKeys: Object.keys(r.inputs).sort(), deleteBeforeReplace: false };
    } else {
      const d = diffInputs(r.type, old.inputs, r.inputs, r.options);
      const idChanged = old.id !== r.id;
      if (d.kind === "replace" || idChanged) {
        if (old.options.protect) throw protectedError("replace", r.urn);
        const nameKey = AUTONAMED[r.type];
        const fixedName = nameKey !== undefined && r.inputs[nameKey] !== undefined && r.inputs[nameKey] === old.inputs[nameKey];
        step = { op: "replace", urn: r.urn, old, new: r, diffKeys: d.diffKeys, deleteBeforeReplace: r.options.deleteBeforeReplace === true || fixedName };
      } else if (d.kind === "update") {
        step = { op: "update", urn: r.urn, old, new: r, diffKeys: d.diffKeys, deleteBeforeReplace: false };
      }
    }
    if (step) {
      const n: Node = { step, after: new Set() };
      nodes.push(n);
      mainStep.set(r.urn, n);
      if (step.op === "replace") replaced.set(r.urn, n);
    }
  }

  // What a resource's registration waits for: the steps of its dependencies, through
  // resources that have no step (`skip` hides steps).
  const gates = (urn: string, skip: ReadonlySet<string>, seen = new Set<string>()): Set<Node> => {
    const out = new Set<Node>();
    const r = news.get(urn);
    if (r === undefined) return out;
    const deps = [...r.dependencies, ...(r.parent !== undefined && news.get(r.parent)?.custom ? [r.parent] : [])];
    for (const d of deps) {
      if (seen.has(d)) continue;
      seen.add(d);
      const n = mainStep.get(d);
      if (n && !skip.has(d)) out.add(n);
      else for (const g of gates(d, skip, seen)) out.add(g);
    }
    return out;
  };
  const none = new Set<string>();
  for (const n of nodes) for (const g of gates(n.step.urn, none)) n.after.add(g);

  // Delete-before-replace as the engine's step generator does it (calculateDependentReplacements):
  // when X is replaced delete-before-replace, every replaced resource that must be replaced
  // *because of* X (one of its force-new inputs has a property dependency on X or on another
  // such resource) is deleted first, dependents first, then X, all when X registers; each
  // replacement is created at its own registration. A resource that depends on X only through
  // dependsOn, or through inputs that update in place, is not part of it.
  const forceNewKeys = (r: RecordedResource): string[] | "all" => {
    const paths = [...forceNewPaths(r.type, r.inputs), ...(r.options.replaceOnChanges ?? [])];
    if (paths.includes("*")) return "all";
    return paths.map((p) => String(parsePath(p)[0]));
  };
  const causes = (r: RecordedResource, set: ReadonlySet<string>): boolean => {
    const keys = forceNewKeys(r);
    const deps = (k: string) => (r.propertyDependencies === undefined ? r.dependencies : (r.propertyDependencies[k] ?? []));
    const candidates = keys === "all" ? Object.keys(r.inputs) : keys;
    return candidates.some((k) => deps(k).some((x) => set.has(x)));
  };
  const dbr = new Set<string>();
  const dbrDelete = new Map<string, Node>();
  for (const r of next.resources) {
    const root = replaced.get(r.urn);
    if (root === undefined || !root.step.deleteBeforeReplace || dbr.has(r.urn)) continue;
    const set = new Set([r.urn]);
    for (let grew = true; grew; ) {
      grew = false;
      for (const [urn, n] of replaced) {
        if (set.has(urn) || dbr.has(urn)) continue;
        if (causes(n.step.old!, set)) {
          set.add(urn);
          grew = true;
        }
      }
    }
    const registered = gates(r.urn, none);
    for (const urn of set) {
      dbr.add(urn);
      const rep = replaced.get(urn)!;
      rep.step = { ...rep.step, deleteBeforeReplace: true };
      const del: Node = { step: { op: "delete", urn, old: rep.step.old!, diffKeys: [], deleteBeforeReplace: true }, after: new Set(registered) };
      dbrDelete.set(urn, del);
      nodes.push(del);
      rep.after.add(del);
    }
    // Dependents first: a member is deleted after every member that depends on it.
    for (const x of set) {
      for (const y of set) {
        if (x !== y && dbrDelete.get(y)!.step.old!.dependencies.includes(x)) dbrDelete.get(x)!.after.add(dbrDelete.get(y)!);
      }
    }
  }

  // Final phase: removed resources and the old halves of create-before-delete replacements.
  const everyEarlier = new Set(nodes);
  const deletes: Node[] = [];
  for (const old of prior?.resources ?? []) {
    if (!old.custom) continue;
    const gone = !news.has(old.urn);
    const cbd = replaced.has(old.urn) && !dbr.has(old.urn);
    if (!gone && !cbd) continue;
    if (gone && old.options.protect) throw protectedError("delete", old.urn);
    deletes.push({ step: { op: "delete", urn: old.urn, old, diffKeys: [], deleteBeforeReplace: false }, after: new Set() });
  }
  scheduleDeletes(deletes, everyEarlier);
  nodes.push(...deletes);
  return finish(nodes, next);
}

export function planDestroy(prior: StackState): Plan {
  const deletes: Node[] = [];
  for (const old of prior.resources) {
    if (!old.custom) continue;
    if (old.options.protect) throw protectedError("delete", old.urn);
    deletes.push({ step: { op: "delete", urn: old.urn, old, diffKeys: [], deleteBeforeReplace: false }, after: new Set() });
  }
  scheduleDeletes(deletes, new Set());
  return finish(deletes, { resources: [], outputs: {} });
}

/** A plan as `pulumi up` summarises it: "3 create, 1 replace", or "no changes". */
export function summarizePlan(plan: Plan): string {
  const n: Record<string, number> = {};
  for (const s of plan.steps) n[s.op] = (n[s.op] ?? 0) + 1;
  return Object.entries(n).map(([op, k]) => `${k} ${op}`).join(", ") || "no changes";
}
