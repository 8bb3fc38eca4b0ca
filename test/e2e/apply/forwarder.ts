/**
 * The network load balancer of a lab: a TCP forwarder run inside the netns that holds the NLB's
 * subnet addresses. Behaves like an AWS NLB with default attributes, never kinder:
 *  - a new connection goes to a healthy target of the listener's target group; when no target
 *    is healthy the NLB fails open and uses every registered target;
 *  - targets start "initial" and need healthyThreshold passing checks to become healthy, and
 *    unhealthyThreshold failing ones to become unhealthy (HTTP GET port/path every interval s,
 *    matcher status code); connections to a target that turns unhealthy are closed
 *    (target_health_state.unhealthy.connection_termination, default on);
 *  - a deregistered target takes no new connections; its open ones are closed when the
 *    deregistration delay ends.
 * Configuration: a JSON file (argv[2]) re-read when it changes; state changes go to stdout.
 * Exits when the process that started it (argv[3]) is gone.
 */
import { existsSync, readFileSync } from "node:fs";
import * as http from "node:http";
import * as net from "node:net";

export interface ForwarderHealthCheck {
  port: number;
  path: string;
  intervalSec: number;
  timeoutSec: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  matcher: string;
}

export interface ForwarderListener {
  port: number;
  targets: Array<{ ip: string; port: number }>;
  healthCheck: ForwarderHealthCheck;
  deregistrationDelaySec: number;
}

export interface ForwarderConfig {
  listeners: ForwarderListener[];
  /** Default 0.0.0.0 (every address of the namespace); tests use loopback. */
  listenHost?: string;
}

type TargetState = "initial" | "healthy" | "unhealthy" | "draining";

interface Target {
  key: string;
  ip: string;
  port: number;
  state: TargetState;
  passes: number;
  fails: number;
  sockets: Set<net.Socket>;
  timer: NodeJS.Timeout | undefined;
  hc: ForwarderHealthCheck;
}

interface Listener {
  port: number;
  server: net.Server;
  targets: Map<string, Target>;
  deregistrationDelaySec: number;
  next: number;
}

const listeners = new Map<number, Listener>();

function log(msg: string): void {
  process.stdout.write(`${new Date().toISOString()} ${msg}\n`);
}

function matches(status: number, matcher: string): boolean {
  return matcher.split(",").some((part) => {
    const [lo, hi] = part.split("-").map((x) => Number(x.trim()));
    return hi === undefined ? status === lo : status >= lo! && status <= hi;
  });
}

function check(t: Target): void {
  const hc = t.hc;
  const req = http.get({ host: t.ip, port: hc.port, path: hc.path, timeout: hc.timeoutSec * 1000 }, (res) => {
    res.resume();
    res.on("end", () => record(t, res.statusCode !== undefined && matches(res.statusCode, hc.matcher)));
  });
  req.on("timeout", () => req.destroy(new Error("timeout")));
  req.on("error", () => record(t, false));
}

function record(t: Target, ok: boolean): void {
  if (t.state === "draining") return;
  if (ok) {
    t.fails = 0;
    t.passes++;
    if (t.state !== "healthy" && t.passes >= t.hc.healthyThreshold) setState(t, "healthy");
  } else {
    t.passes = 0;
    t.fails++;
    if (t.state !== "unhealthy" && t.fails >= t.hc.unhealthyThreshold) {
      setState(t, "unhealthy");
      for (const s of t.sockets) s.destroy();
    }
  }
}

function setState(t: Target, s: TargetState): void {
  log(`target ${t.key} ${t.state} -> ${s}`);
  t.state = s;
}

function pick(l: Listener): Target | undefined {
  const registered = [...l.targets.values()].filter((t) => t.state !== "draining");
  const healthy = registered.filter((t) => t.state === "healthy");
  const pool = healthy.length > 0 ? healthy : registered; // fail open
  if (pool.length === 0) return undefined;
  l.next = (l.next + 1) % pool.length;
  return pool[l.next];
}

function onConnection(l: Listener, client: net.Socket): void {
  const t = pick(l);
  if (t === undefined) {
    client.destroy();
    return;
  }
  const upstream = net.connect({ host: t.ip, port: t.port });
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  t.sockets.add(client);
  const done = () => {
    t.sockets.delete(client);
    client.destroy();
    upstream.destroy();
  };
  client.on("error", done).on("close", done);
  upstream.on("error", done).on("close", done);
  client.pipe(upstream);
  upstream.pipe(client);
}

function startTarget(key: string, ip: string, port: number, hc: ForwarderHealthCheck): Target {
  const t: Target = { key, ip, port, state: "initial", passes: 0, fails: 0, sockets: new Set(), timer: undefined, hc };
  check(t);
  t.timer = setInterval(() => check(t), hc.intervalSec * 1000);
  log(`target ${key} registered`);
  return t;
}

function drain(l: Listener, t: Target): void {
  if (t.timer !== undefined) clearInterval(t.timer);
  setState(t, "draining");
  setTimeout(() => {
    for (const s of t.sockets) s.destroy();
    if (l.targets.get(t.key) === t) l.targets.delete(t.key);
    log(`target ${t.key} deregistered`);
  }, l.deregistrationDelaySec * 1000).unref();
}

function apply(cfg: ForwarderConfig): void {
  const wanted = new Map(cfg.listeners.map((l) => [l.port, l]));
  for (const [port, l] of listeners) {
    if (!wanted.has(port)) {
      l.server.close();
      for (const t of l.targets.values()) drain(l, t);
      listeners.delete(port);
    }
  }
  for (const want of cfg.listeners) {
    let l = listeners.get(want.port);
    if (l === undefined) {
      const created: Listener = { port: want.port, server: net.createServer(), targets: new Map(), deregistrationDelaySec: want.deregistrationDelaySec, next: 0 };
      created.server.on("connection", (s) => onConnection(created, s));
      created.server.listen(want.port, cfg.listenHost ?? "0.0.0.0");
      log(`listening on ${want.port}`);
      listeners.set(want.port, created);
      l = created;
    }
    l.deregistrationDelaySec = want.deregistrationDelaySec;
    const keys = new Set(want.targets.map((t) => `${t.ip}:${t.port}`));
    for (const t of [...l.targets.values()]) if (!keys.has(t.key) && t.state !== "draining") drain(l, t);
    for (const t of want.targets) {
      const key = `${t.ip}:${t.port}`;
      const existing = l.targets.get(key);
      if (existing === undefined || existing.state === "draining") l.targets.set(key, startTarget(key, t.ip, t.port, want.healthCheck));
      else existing.hc = want.healthCheck;
    }
  }
}

function main(): void {
  const configPath = process.argv[2];
  const parentPid = Number(process.argv[3]);
  if (configPath === undefined || !Number.isInteger(parentPid)) {
    process.stderr.write("usage: forwarder CONFIG.json PARENT_PID\n");
    process.exit(2);
  }
  let current = "";
  const reload = () => {
    if (!existsSync(configPath)) return;
    const text = readFileSync(configPath, "utf8");
    if (text === current) return;
    current = text;
    try {
      apply(JSON.parse(text) as ForwarderConfig);
    } catch (e) {
      log(`bad config: ${(e as Error).message}`);
    }
  };
  reload();
  setInterval(() => {
    try {
      process.kill(parentPid, 0);
    } catch {
      process.exit(0);
    }
    reload();
  }, 200);
}

if (require.main === module) main();
