/**
 * What the local launcher knows about a running cluster: each member's `/status` JSON from its
 * plain-HTTP metrics port (no client certificate needed), the one-line summary of all of them,
 * and the wait for a healthy cluster.
 */
import * as http from "node:http";
import { quorum, type MemberEndpoint } from "../../components/topology";

export interface MemberStatus {
  name: string;
  id: string;
  isLeader: boolean;
  leader: string;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  healthy: boolean;
}

/** The member's own health check may take up to a second (a linearizable read), so wait longer than that. */
export function fetchStatus(m: MemberEndpoint, timeoutMs = 1500): Promise<MemberStatus | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ host: m.host, port: m.metricsPort, path: "/status", timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as MemberStatus);
        } catch {
          resolve(undefined);
        }
      });
      res.on("error", () => resolve(undefined));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(undefined));
  });
}

export function fetchAll(members: readonly MemberEndpoint[]): Promise<Array<MemberStatus | undefined>> {
  return Promise.all(members.map((m) => fetchStatus(m)));
}

/** `healthy · leader raftkv-2 · term 3 · commit 12 · members up 3/3` (no clock, so lines compare). */
export function renderStatusLine(members: readonly MemberEndpoint[], statuses: ReadonlyArray<MemberStatus | undefined>): string {
  const up = statuses.filter((s) => s !== undefined).length;
  const leader = statuses.find((s) => s !== undefined && s.isLeader);
  const term = Math.max(0, ...statuses.map((s) => s?.term ?? 0));
  const commit = Math.max(0, ...statuses.map((s) => s?.commitIndex ?? 0));
  const q = quorum(members.length);
  const health = leader !== undefined ? (up === members.length ? "healthy" : "degraded") : up >= q ? "electing" : "NO QUORUM";
  return `${health} · leader ${leader?.name ?? "none"} · term ${term} · commit ${commit} · members up ${up}/${members.length}`;
}

export class NotHealthyError extends Error {}

/**
 * Resolves with every member's status once all of them are healthy (each sees the leader and
 * serves a linearizable read). `stillRunning` lets the caller give up early when the processes
 * it waits for are gone.
 */
export async function waitHealthy(
  members: readonly MemberEndpoint[],
  timeoutMs: number,
  stillRunning: () => boolean,
): Promise<MemberStatus[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await fetchAll(members);
    const ok = st.filter((s): s is MemberStatus => s !== undefined && s.healthy);
    if (ok.length === members.length) return ok;
    if (!stillRunning()) throw new NotHealthyError("the cluster stopped before it became healthy");
    if (Date.now() > deadline) {
      throw new NotHealthyError(
        `the cluster did not become healthy within ${timeoutMs / 1000} s (${ok.length}/${members.length} members healthy)`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
