/**
 * How members enter and leave the cluster. Pure: it decides order and flags, the install
 * scripts and the Pulumi dependency chain carry the decisions out.
 *
 * Rule: the first BOOTSTRAP_MASTERS members form a new cluster together (started in parallel;
 * each waits for the others to reach quorum); every later member joins an existing cluster
 * one at a time, after a `member add` through a healthy member. Consequences:
 *  - a member's flags depend only on its own index, never on the current `masters` setting,
 *    so growing or shrinking never restarts the members that stay;
 *  - shrinking and growing again (5 -> 3 -> 5) re-adds members through the same join path,
 *    instead of wrongly bootstrapping a second "new" cluster;
 *  - a fresh 5- or 7-member cluster exercises the same join path a resize does.
 */
import {
  SUPPORTED_MASTER_COUNTS,
  TopologyError,
  assertMasterCount,
  memberName,
  quorum,
  type MemberEndpoint,
} from "./topology";

export const BOOTSTRAP_MASTERS = SUPPORTED_MASTER_COUNTS[0]!;

export interface JoinPlan {
  member: MemberEndpoint;
  index: number;
  clusterState: "new" | "existing";
  /** The member list its `--initial-cluster` names: the bootstrap trio, or everyone up to itself. */
  initialCluster: MemberEndpoint[];
  /** Members that are already running when this one joins (empty for bootstrap members). */
  joinVia: MemberEndpoint[];
}

export function joinPlan(members: readonly MemberEndpoint[]): JoinPlan[] {
  assertMasterCount(members.length);
  return members.map((member, index) => {
    if (index < BOOTSTRAP_MASTERS) {
      return { member, index, clusterState: "new", initialCluster: members.slice(0, BOOTSTRAP_MASTERS), joinVia: [] };
    }
    return {
      member,
      index,
      clusterState: "existing",
      initialCluster: members.slice(0, index + 1),
      joinVia: members.slice(0, index),
    };
  });
}

export type ResizeStep =
  | { action: "add"; member: string; sizeBefore: number; sizeAfter: number; quorumAfter: number }
  | { action: "remove"; member: string; sizeBefore: number; sizeAfter: number; quorumAfter: number };

/**
 * The membership changes that take a cluster of `current` members to `desired`, one change at
 * a time: adds in ascending member order (each new member is started and healthy before the
 * next add), removes from the highest member down (each removed through the membership API
 * before its instance is deleted). The bootstrap members are never removed.
 */
export function planResize(current: number, desired: number, prefix = "raftkv"): ResizeStep[] {
  assertMasterCount(current);
  assertMasterCount(desired);
  const steps: ResizeStep[] = [];
  for (let size = current; size < desired; size++) {
    steps.push({ action: "add", member: memberName(size, prefix), sizeBefore: size, sizeAfter: size + 1, quorumAfter: quorum(size + 1) });
  }
  for (let size = current; size > desired; size--) {
    const index = size - 1;
    if (index < BOOTSTRAP_MASTERS) throw new TopologyError(`member ${memberName(index, prefix)} is a bootstrap member and is never removed`);
    steps.push({ action: "remove", member: memberName(index, prefix), sizeBefore: size, sizeAfter: size - 1, quorumAfter: quorum(size - 1) });
  }
  return steps;
}
