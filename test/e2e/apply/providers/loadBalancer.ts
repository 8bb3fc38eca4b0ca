/**
 * aws:lb/loadBalancer:LoadBalancer, TargetGroup, Listener and TargetGroupAttachment as one
 * forwarder process per load balancer (forwarder.ts), in a lab namespace holding the
 * subnetMappings' addresses. The four resource types only change the forwarder's
 * configuration, as they only change the NLB's on AWS. The NLB's DNS name (its mock output)
 * resolves on every host to its first subnet address, as VPC DNS would resolve it.
 */
import { createWriteStream, renameSync, writeFileSync } from "node:fs";
import type { ChildProcess } from "node:child_process";
import * as path from "node:path";
import type { LabNetNs, RecordedResource } from "../contract";
import type { ForwarderConfig, ForwarderHealthCheck } from "../forwarder";
import { ProviderError, type ApplyContext, type Provider } from "../provider";
import { tsxNodeArgv } from "../tsxNode";
import { instanceIp } from "./instance";

interface Nlb {
  urn: string;
  arn: string;
  dnsName: string;
  ips: string[];
  ns: LabNetNs;
  proc: ChildProcess;
  configPath: string;
}

interface TargetGroup {
  arn: string;
  port: number;
  healthCheck: ForwarderHealthCheck;
  deregistrationDelaySec: number;
}

const str = (v: unknown, what: string): string => {
  if (typeof v !== "string" || v === "") throw new ProviderError(`${what} is missing`);
  return v;
};

const intOr = (v: unknown, fallback: number): number => {
  const n = typeof v === "string" ? Number(v) : v;
  return typeof n === "number" && Number.isFinite(n) ? n : fallback;
};

function targetGroupOf(r: RecordedResource): TargetGroup {
  const hc = (r.inputs["healthCheck"] ?? {}) as Record<string, unknown>;
  const port = intOr(r.inputs["port"], 0);
  const protocol = String(hc["protocol"] ?? "TCP").toUpperCase();
  if (protocol !== "HTTP") throw new ProviderError(`target group ${r.name}: only HTTP health checks are reproduced (got ${protocol})`);
  return {
    arn: str(r.outputs["arn"] ?? r.id, `target group ${r.name} arn`),
    port,
    healthCheck: {
      port: hc["port"] === undefined || hc["port"] === "traffic-port" ? port : intOr(hc["port"], port),
      path: typeof hc["path"] === "string" ? hc["path"] : "/",
      intervalSec: intOr(hc["interval"], 30),
      // NLB defaults: HTTP checks time out after 6 s; thresholds 5 and 2.
      timeoutSec: intOr(hc["timeout"], 6),
      healthyThreshold: intOr(hc["healthyThreshold"], 5),
      unhealthyThreshold: intOr(hc["unhealthyThreshold"], 2),
      matcher: typeof hc["matcher"] === "string" ? hc["matcher"] : "200-399",
    },
    deregistrationDelaySec: intOr(r.inputs["deregistrationDelay"], 300),
  };
}

/** The live load balancers of one applier, and the four providers that shape them. */
export class LoadBalancers {
  private readonly nlbs = new Map<string, Nlb>();

  constructor(private readonly forwarderScript: string = path.join(__dirname, "..", "forwarder.ts")) {}

  /** name -> address of every load balancer, for the hosts' /etc/hosts. */
  dnsEntries(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const n of this.nlbs.values()) out[n.dnsName] = n.ips[0]!;
    return out;
  }

  /** The NLB addresses and DNS name (for clients that run in a host's namespace). */
  list(): Array<{ dnsName: string; ips: string[] }> {
    return [...this.nlbs.values()].map((n) => ({ dnsName: n.dnsName, ips: [...n.ips] }));
  }

  async close(): Promise<void> {
    for (const n of this.nlbs.values()) await this.stop(n);
    this.nlbs.clear();
  }

  private async stop(n: Nlb): Promise<void> {
    if (n.proc.exitCode === null && n.proc.signalCode === null) {
      const gone = new Promise((r) => n.proc.once("exit", r));
      n.proc.kill("SIGTERM");
      await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
    }
    await n.ns.close();
  }

  /** Recomputes every forwarder's configuration from the live resources. */
  private reconfigure(ctx: ApplyContext): void {
    const live = ctx.live();
    const groups = new Map<string, TargetGroup>();
    for (const r of live) if (r.type === "aws:lb/targetGroup:TargetGroup") groups.set(String(r.outputs["arn"] ?? r.id), targetGroupOf(r));
    const instances = live.filter((r) => r.type === "aws:ec2/instance:Instance");
    for (const n of this.nlbs.values()) {
      const cfg: ForwarderConfig = { listeners: [] };
      for (const l of live.filter((r) => r.type === "aws:lb/listener:Listener" && r.inputs["loadBalancerArn"] === n.arn)) {
        const actions = (l.inputs["defaultActions"] ?? []) as Array<Record<string, unknown>>;
        const tgArn = actions.find((a) => a["type"] === "forward")?.["targetGroupArn"];
        const tg = typeof tgArn === "string" ? groups.get(tgArn) : undefined;
        if (tg === undefined) continue;
        const targets = live
          .filter((a) => a.type === "aws:lb/targetGroupAttachment:TargetGroupAttachment" && a.inputs["targetGroupArn"] === tg.arn)
          .flatMap((a) => {
            const inst = instances.find((i) => i.id === a.inputs["targetId"]);
            return inst === undefined ? [] : [{ ip: instanceIp(inst), port: intOr(a.inputs["port"], tg.port) }];
          });
        cfg.listeners.push({ port: intOr(l.inputs["port"], tg.port), targets, healthCheck: tg.healthCheck, deregistrationDelaySec: tg.deregistrationDelaySec });
      }
      const tmp = `${n.configPath}.tmp`;
      writeFileSync(tmp, JSON.stringify(cfg, null, 2));
      renameSync(tmp, n.configPath);
    }
  }

  readonly loadBalancer: Provider = {
    create: async (r, ctx) => {
      const arn = str(r.outputs["arn"] ?? r.id, `load balancer ${r.name} arn`);
      const dnsName = str(r.outputs["dnsName"], `load balancer ${r.name} dnsName (mock output)`);
      const mappings = (r.inputs["subnetMappings"] ?? []) as Array<Record<string, unknown>>;
      const ips = mappings.map((m) => m["privateIpv4Address"]).filter((x): x is string => typeof x === "string");
      if (ips.length === 0) throw new ProviderError(`load balancer ${r.name}: only subnetMappings with privateIpv4Address are reproduced`);
      const ns = await ctx.lab.addNamespace(`nlb${this.nlbs.size}`, ips);
      const configPath = path.join(ctx.workDir, `${r.name}.forwarder.json`);
      writeFileSync(configPath, JSON.stringify({ listeners: [] }));
      const proc = ns.spawn(tsxNodeArgv(this.forwarderScript, configPath, String(process.pid)));
      const logFile = createWriteStream(path.join(ctx.workDir, `${r.name}.forwarder.log`), { flags: "a" });
      proc.stdout?.pipe(logFile);
      // Target state changes also go to the applier's log (shown with RAFTKV_E2E_VERBOSE).
      proc.stdout?.on("data", (d: Buffer) => {
        for (const line of d.toString().split("\n")) if (line !== "") ctx.log(`${r.name}: ${line}`);
      });
      proc.stderr?.pipe(logFile);
      this.nlbs.set(r.urn, { urn: r.urn, arn, dnsName, ips, ns, proc, configPath });
      this.reconfigure(ctx);
      await ctx.syncDns();
      ctx.log(`load balancer ${r.name} (${dnsName}) forwarding from ${ips.join(", ")}`);
      return r.outputs;
    },
    update: async (_old, next, _keys, ctx) => {
      this.reconfigure(ctx);
      return next.outputs;
    },
    delete: async (old, ctx) => {
      const n = this.nlbs.get(old.urn);
      if (n === undefined) return;
      this.nlbs.delete(old.urn);
      await this.stop(n);
      await ctx.syncDns();
    },
  };

  /** TargetGroup, Listener and TargetGroupAttachment: configuration of the forwarders. */
  readonly configuration: Provider = {
    create: async (r, ctx) => {
      this.reconfigure(ctx);
      return r.outputs;
    },
    update: async (_old, next, _keys, ctx) => {
      this.reconfigure(ctx);
      return next.outputs;
    },
    delete: async (_old, ctx) => {
      this.reconfigure(ctx);
    },
  };
}
