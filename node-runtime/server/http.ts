/**
 * The plain-HTTP side port (--listen-metrics-urls): `/health` for load balancers, `/metrics` for
 * Prometheus and `/status` for the local launcher. No client certificate is needed, so nothing
 * here reveals or changes data.
 */
import * as http from "node:http";
import { hexId } from "./identity";
import type { Member } from "./member";

const HEALTH_TIMEOUT_MS = 1000;

/** Healthy = this member sees a leader and a linearizable read succeeds in time. */
export async function checkHealth(member: Member): Promise<{ ok: boolean; reason?: string }> {
  if (member.leaderId() === 0) return { ok: false, reason: "no leader" };
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      member.readBarrier(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("linearizable read timed out")), HEALTH_TIMEOUT_MS);
      }),
    ]);
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * etcd's /health: unhealthy while any alarm (NOSPACE, CORRUPT) is active, with the reason etcd
 * 3.5 gives ("ALARM NOSPACE"). Alarms are cluster state, applied by every member, so every
 * member reports them, not only the one the alarm names. Otherwise as checkHealth.
 */
export async function checkEtcdHealth(member: Member): Promise<{ ok: boolean; reason?: string }> {
  const alarm = member.alarms().find((a) => a.alarm !== "NONE");
  if (alarm) return { ok: false, reason: `ALARM ${alarm.alarm}` };
  return checkHealth(member);
}

export function createSideServer(member: Member): http.Server {
  return http.createServer((req, res) => {
    const reply = (code: number, body: string, type = "application/json") => {
      res.writeHead(code, { "content-type": type });
      res.end(body);
    };
    const url = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") return reply(405, JSON.stringify({ error: "method not allowed" }));
    if (url === "/health") {
      void checkEtcdHealth(member).then((h) =>
        reply(h.ok ? 200 : 503, JSON.stringify(h.ok ? { health: "true", reason: "" } : { health: "false", reason: h.reason ?? "" })),
      );
    } else if (url === "/metrics") {
      member.metrics.registry.metrics().then(
        (text) => reply(200, text, member.metrics.registry.contentType),
        (e: unknown) => reply(500, String(e), "text/plain"),
      );
    } else if (url === "/status") {
      // `healthy` here means "serving" (a leader and a linearizable read), for the launcher and
      // tests; alarms are listed beside it, and /health combines both as etcd does.
      void checkHealth(member).then((h) => {
        const st = member.status();
        reply(
          200,
          JSON.stringify({
            name: st.name,
            id: hexId(st.id),
            isLeader: st.isLeader,
            leader: st.leader === 0 ? "" : hexId(st.leader),
            term: st.term,
            commitIndex: st.commitIndex,
            appliedIndex: st.appliedIndex,
            healthy: h.ok,
            alarms: member.alarms().filter((a) => a.alarm !== "NONE").map((a) => ({ memberID: hexId(a.memberID), alarm: a.alarm })),
          }),
        );
      });
    } else {
      reply(404, JSON.stringify({ error: "not found" }));
    }
  });
}
