/** Reads a member's `/status` JSON from its plain-HTTP metrics port (no client certificate needed). */
import * as http from "node:http";
import type { MemberEndpoint } from "../../components/topology";

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

export function fetchStatus(m: MemberEndpoint, timeoutMs = 800): Promise<MemberStatus | undefined> {
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
