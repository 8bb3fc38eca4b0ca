import { InvalidConfChangeError } from "./errors";
import type { ConfChange, ConfState, NodeId } from "./types";

/** Why `cc` cannot apply to `cs`, or undefined if it can. */
export function confChangeProblem(cs: ConfState, cc: ConfChange): string | undefined {
  if (!Number.isSafeInteger(cc.nodeId) || cc.nodeId <= 0) return `invalid node id ${cc.nodeId}`;
  const isVoter = cs.voters.includes(cc.nodeId);
  const isLearner = cs.learners.includes(cc.nodeId);
  switch (cc.type) {
    case "addNode":
      return isVoter ? `node ${cc.nodeId} is already a voter` : undefined;
    case "addLearner":
      if (isVoter) return `node ${cc.nodeId} is a voter; demotion is not supported`;
      return isLearner ? `node ${cc.nodeId} is already a learner` : undefined;
    case "removeNode":
      if (!isVoter && !isLearner) return `node ${cc.nodeId} is not a member`;
      if (isVoter && cs.voters.length === 1) return "cannot remove the last voter";
      return undefined;
  }
}

/**
 * The configuration after `cc`. Invalid changes leave it unchanged: a committed entry must apply
 * identically on every member, so refusing is done at proposal time and tolerated here.
 */
export function applyChange(cs: ConfState, cc: ConfChange): ConfState {
  if (confChangeProblem(cs, cc) !== undefined) return cs;
  const id = cc.nodeId;
  const voters = cs.voters.filter((v) => v !== id);
  const learners = cs.learners.filter((v) => v !== id);
  if (cc.type === "addNode") voters.push(id);
  else if (cc.type === "addLearner") learners.push(id);
  voters.sort((a, b) => a - b);
  learners.sort((a, b) => a - b);
  return { voters, learners };
}

export function assertValid(cs: ConfState, cc: ConfChange): void {
  const p = confChangeProblem(cs, cc);
  if (p !== undefined) throw new InvalidConfChangeError(p);
}

export function sameConf(a: ConfState, b: ConfState): boolean {
  return sameIds(a.voters, b.voters) && sameIds(a.learners, b.learners);
}

function sameIds(a: NodeId[], b: NodeId[]): boolean {
  if (a.length !== b.length) return false;
  const sa = [...a].sort((x, y) => x - y);
  const sb = [...b].sort((x, y) => x - y);
  return sa.every((v, i) => v === sb[i]);
}
