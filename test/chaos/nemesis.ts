/**
 * Nemeses: each one injects a fault and returns how to heal it. The suite measures what happens
 * after the heal (recovery time, term bumps), so "heal" is the moment the fault ends: the
 * partition is lifted, the killed member restarted, the paused one continued, the removed
 * member re-added or replaced.
 */
import type { ChaosCluster, Incarnation } from "./cluster";
import type { ChaosNet, Slot } from "./net";

export interface NemesisContext {
  cluster: ChaosCluster;
  net: ChaosNet;
  rng: () => number;
  log: (line: string) => void;
}

export type Heal = () => Promise<void>;

export interface Nemesis {
  name: string;
  description: string;
  fault(ctx: NemesisContext): Promise<Heal>;
}

function shuffle<T>(xs: readonly T[], rng: () => number): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

const memberSlots = (c: ChaosCluster): Slot[] => [...c.members.values()].map((m) => m.slot);
const names = (c: ChaosCluster, slots: readonly Slot[]): string => slots.map((s) => c.members.get(s.index)?.endpoint.name ?? `slot${s.index}`).join(",");

async function leaderOrRandom(ctx: NemesisContext): Promise<Incarnation> {
  const l = await ctx.cluster.leader();
  if (l !== undefined) return ctx.cluster.members.get(l.slot)!;
  const all = [...ctx.cluster.members.values()];
  return all[Math.floor(ctx.rng() * all.length)]!;
}

function randomMember(ctx: NemesisContext): Incarnation {
  const all = [...ctx.cluster.members.values()];
  return all[Math.floor(ctx.rng() * all.length)]!;
}

export const partitionHalves: Nemesis = {
  name: "partition-majority-minority",
  description: "random split into a minority and a majority (iptables DROP between them)",
  async fault(ctx) {
    const s = shuffle(memberSlots(ctx.cluster), ctx.rng);
    const minority = s.slice(0, Math.floor(s.length / 2));
    const majority = s.slice(minority.length);
    ctx.log(`partition ${names(ctx.cluster, minority)} | ${names(ctx.cluster, majority)}`);
    await ctx.net.partition([minority, majority]);
    return () => ctx.net.heal();
  },
};

export const partitionBridge: Nemesis = {
  name: "partition-bridge",
  description: "two halves that cannot see each other, one bridge member that sees both",
  async fault(ctx) {
    const s = shuffle(memberSlots(ctx.cluster), ctx.rng);
    const half = Math.floor((s.length - 1) / 2);
    const left = s.slice(0, half);
    const bridge = s[half]!;
    const right = s.slice(half + 1);
    ctx.log(`bridge ${names(ctx.cluster, left)} | ${names(ctx.cluster, [bridge])} | ${names(ctx.cluster, right)}`);
    for (const a of left) for (const b of right) await ctx.net.cut(a, b);
    return () => ctx.net.heal();
  },
};

export const isolateLeader: Nemesis = {
  name: "isolate-leader",
  description: "the leader cut off from every other member (clients still reach it)",
  async fault(ctx) {
    const l = await leaderOrRandom(ctx);
    const rest = memberSlots(ctx.cluster).filter((s) => s !== l.slot);
    ctx.log(`isolate leader ${l.endpoint.name}`);
    await ctx.net.partition([[l.slot], rest]);
    return () => ctx.net.heal();
  },
};

export const killRestart: Nemesis = {
  name: "kill-9-restart",
  description: "SIGKILL one member (the leader every other time), restart it on heal",
  async fault(ctx) {
    const victim = ctx.rng() < 0.5 ? await leaderOrRandom(ctx) : randomMember(ctx);
    ctx.log(`kill -9 ${victim.endpoint.name}`);
    await ctx.cluster.kill(victim);
    return async () => {
      if (ctx.cluster.members.get(victim.slot.index) === victim) ctx.cluster.start(victim);
    };
  },
};

export const pauseResume: Nemesis = {
  name: "sigstop-sigcont",
  description: "SIGSTOP one member (the leader every other time), SIGCONT on heal",
  async fault(ctx) {
    const victim = ctx.rng() < 0.5 ? await leaderOrRandom(ctx) : randomMember(ctx);
    ctx.log(`SIGSTOP ${victim.endpoint.name}`);
    ctx.cluster.pause(victim);
    return async () => ctx.cluster.resume(victim);
  },
};

function viaOtherThan(ctx: NemesisContext, slot: number): number {
  const others = [...ctx.cluster.members.keys()].filter((s) => s !== slot);
  return others[Math.floor(ctx.rng() * others.length)]!;
}

export const removeReadd: Nemesis = {
  name: "member-remove-readd",
  description: "MemberRemove a member, wipe it, MemberAdd it again under its old name and peer URL",
  async fault(ctx) {
    const victim = randomMember(ctx);
    const slot = victim.slot.index;
    ctx.log(`remove ${victim.endpoint.name} (re-add at the same URL)`);
    await ctx.cluster.remove(slot, viaOtherThan(ctx, slot));
    return async () => {
      await ctx.cluster.add(slot, viaOtherThan(ctx, slot), victim.endpoint.name);
    };
  },
};

export const replaceMember: Nemesis = {
  name: "member-replace",
  description: "MemberRemove a member, MemberAdd a new one (new name, new address) in a spare namespace",
  async fault(ctx) {
    const victim = randomMember(ctx);
    const slot = victim.slot.index;
    ctx.log(`remove ${victim.endpoint.name} (replace with a new member)`);
    await ctx.cluster.remove(slot, viaOtherThan(ctx, slot));
    return async () => {
      const free = ctx.cluster.freeSlots().filter((s) => s !== slot);
      const target = free.length > 0 ? free[Math.floor(ctx.rng() * free.length)]! : slot;
      const inc = await ctx.cluster.add(target, viaOtherThan(ctx, target));
      ctx.log(`added ${inc.endpoint.name} at ${inc.slot.ip}`);
    };
  },
};

const MIXABLE = [partitionHalves, partitionBridge, isolateLeader, killRestart, pauseResume, removeReadd, replaceMember];

export const randomMix: Nemesis = {
  name: "random-mix",
  description: "each cycle one of the nemeses above, chosen at random",
  async fault(ctx) {
    const n = MIXABLE[Math.floor(ctx.rng() * MIXABLE.length)]!;
    ctx.log(`mix → ${n.name}`);
    return n.fault(ctx);
  },
};

export const NEMESES: readonly Nemesis[] = [...MIXABLE, randomMix];

export function nemesisByName(name: string): Nemesis {
  const n = NEMESES.find((x) => x.name === name);
  if (n === undefined) throw new Error(`unknown nemesis ${JSON.stringify(name)} (known: ${NEMESES.map((x) => x.name).join(", ")})`);
  return n;
}
