/**
 * Process lifecycle of a member: configuration, listeners, signals. Every startup problem ends
 * the process with one line naming it (exit 1); SIGTERM/SIGINT shut down gracefully (leadership
 * is handed over first); SIGHUP reloads certificates.
 */
import * as grpc from "@grpc/grpc-js";
import * as http from "node:http";
import { CommanderError } from "commander";
import { loadEtcdGrpc } from "./proto";
import { MAX_RESPONSE_BYTES } from "../kv/wire-size";
import { ConfigError, parseConfig, type ListenUrl, type ServerConfig } from "./config";
import { createLogger, Metrics, type Logger } from "./obs";
import { ReloadingTls, TlsConfigError } from "./tls";
import { Member } from "./member";
import { createSideServer } from "./http";
import { createGateway } from "./api/gateway";
import { registerBackupMetrics } from "./obs/backup-metrics";
import { AuthGate } from "./api/auth";
import { listenForClients, type ClientListener } from "./api/listener";
import { authService, clusterService, kvService, leaseService, maintenanceService, watchService } from "./api/services";
import { acceptPreEncoded, sendWithoutCopy } from "./api/pre-encoded";

/** A startup failure whose message is the whole story for the operator. */
export class StartupError extends Error {}

export interface RunningMember {
  member: Member;
  shutdown(reason: string): Promise<void>;
  /** Re-reads certificate files (SIGHUP). */
  reload(): void;
}

function listenError(url: string, what: string, e: unknown): StartupError {
  const msg = e instanceof Error ? e.message : String(e);
  const cause = /EADDRINUSE|address already in use|No address added/i.test(msg)
    ? "address already in use"
    : /EACCES|permission/i.test(msg)
      ? "permission denied"
      : /EADDRNOTAVAIL|ENOTFOUND|cannot assign/i.test(msg)
        ? "address not available on this host"
        : msg;
  return new StartupError(`cannot listen on ${url} for ${what}: ${cause}`);
}

async function bindHttp(server: http.Server, u: ListenUrl): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e) => reject(listenError(u.url, "health and metrics", e)));
    server.listen(u.port, u.host, () => resolve());
  });
}

export async function startMember(cfg: ServerConfig, log: Logger): Promise<RunningMember> {
  const metrics = new Metrics();
  const peerTls = new ReloadingTls(
    { certFile: cfg.peerCertFile, keyFile: cfg.peerKeyFile, trustedCaFile: cfg.peerTrustedCaFile, flagPrefix: "peer-" },
    { logger: log.child({ component: "peer-tls" }) },
  );
  const httpsClient = cfg.listenClient.some((u) => u.scheme === "https");
  const clientTls = httpsClient
    ? new ReloadingTls(
        { certFile: cfg.certFile!, keyFile: cfg.keyFile!, trustedCaFile: cfg.trustedCaFile!, flagPrefix: "" },
        { logger: log.child({ component: "client-tls" }) },
      )
    : undefined;

  // Listen for clients first: a port conflict should be reported before any data is touched.
  const grpcServer = new grpc.Server({
    "grpc.max_receive_message_length": cfg.maxRequestBytes + 512 * 1024,
    "grpc.max_send_message_length": MAX_RESPONSE_BYTES,
    // Session limits: streams per connection, connections idle (no call) for 10 min are
    // closed with GOAWAY (clients reconnect on their next call), and etcd's keepalive
    // (--grpc-keepalive-interval 2h, --grpc-keepalive-timeout 20s) finds dead peers.
    "grpc.max_concurrent_streams": 1000,
    "grpc.max_connection_idle_ms": 600_000,
    "grpc.keepalive_time_ms": 7_200_000,
    "grpc.keepalive_timeout_ms": 20_000,
  });
  if (cfg.backupStateDir !== undefined) registerBackupMetrics(metrics.registry, cfg.backupStateDir);
  const member = new Member(cfg, peerTls, log, metrics);
  const auth = new AuthGate(member, { clientCertAuth: cfg.clientCertAuth, bcryptCost: cfg.bcryptCost ?? 10 });
  const ctx = { member, maxRequestBytes: cfg.maxRequestBytes, maxTxnOps: cfg.maxTxnOps, auth };
  const { services } = loadEtcdGrpc();
  // Large pre-encoded answers (read-only txns) go out without one more synchronous copy.
  if (!sendWithoutCopy()) log.warn("this grpc-js cannot send pre-encoded answers without copying them");
  const impl = {
    KV: kvService(ctx),
    Watch: watchService(ctx),
    Lease: leaseService(ctx),
    Cluster: clusterService(ctx),
    Maintenance: maintenanceService(ctx),
    Auth: authService(ctx),
  };
  for (const k of Object.keys(impl) as Array<keyof typeof impl>) grpcServer.addService(acceptPreEncoded(services[k]), impl[k]);
  // gRPC and the HTTP/JSON gateway share each client port, as in etcd.
  const gateway = createGateway(member, impl, {
    maxBodyBytes: 2 * (cfg.maxRequestBytes + 512 * 1024),
    auth,
    ...(cfg.gatewayHeaderTimeoutMs !== undefined ? { headerTimeoutMs: cfg.gatewayHeaderTimeoutMs } : {}),
    ...(cfg.gatewayBodyTimeoutMs !== undefined ? { bodyTimeoutMs: cfg.gatewayBodyTimeoutMs } : {}),
  });
  const clientListeners: ClientListener[] = [];
  const dropClients = () => {
    for (const l of clientListeners) l.destroy();
    gateway.closeAllConnections();
  };
  for (const u of cfg.listenClient) {
    const tls = u.scheme === "https" ? { tls: { material: clientTls!, clientCertAuth: cfg.clientCertAuth } } : {};
    try {
      const handshake = cfg.clientHandshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: cfg.clientHandshakeTimeoutMs, sniffTimeoutMs: cfg.clientHandshakeTimeoutMs } : {};
      clientListeners.push(await listenForClients({ url: u, grpc: grpcServer, gateway, log: log.child({ component: "client-listener" }), ...tls, ...handshake }));
    } catch (e) {
      dropClients();
      throw listenError(u.url, "clients", e);
    }
  }
  const side: http.Server[] = [];
  for (const u of cfg.listenMetrics) {
    const s = createSideServer(member);
    await bindHttp(s, u);
    side.push(s);
  }
  try {
    await member.start();
  } catch (e) {
    dropClients();
    grpcServer.forceShutdown();
    for (const s of side) s.close();
    const msg = e instanceof Error ? e.message : String(e);
    if (/EADDRINUSE|address already in use/.test(msg)) throw listenError(cfg.listenPeer.url, "peers", e);
    throw e;
  }
  log.info(
    { id: member.id.toString(16), cluster: member.clusterId.toString(16), clientUrls: cfg.listenClient.map((u) => u.url), peerUrl: cfg.listenPeer.url },
    "member started",
  );

  let down: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    down ??= (async () => {
      log.info({ reason }, "shutting down");
      await member.stop();
      for (const l of clientListeners) l.close();
      await new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve()));
      gateway.closeAllConnections();
      await Promise.all(side.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      peerTls.close();
      clientTls?.close();
      log.info("stopped");
    })();
    return down;
  };
  member.on("removed", () => void shutdown("removed from the cluster"));
  const reload = () => {
    peerTls.reload();
    clientTls?.reload();
  };
  return { member, shutdown, reload };
}

/** Entry point of the `raftkv` executable. */
export async function main(argv: readonly string[]): Promise<number> {
  let cfg: ServerConfig;
  try {
    cfg = parseConfig(argv);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof ConfigError) {
      process.stderr.write(`raftkv: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  const log = createLogger({ level: cfg.logLevel, base: { member: cfg.name } });
  let running: RunningMember | undefined;
  try {
    running = await startMember(cfg, log);
  } catch (e) {
    if (e instanceof StartupError || e instanceof ConfigError || e instanceof TlsConfigError) {
      // The operator's problem, said once in plain words (no JSON duplicate of the same line).
      process.stderr.write(`raftkv: ${e.message}\n`);
      return 1;
    }
    const msg = e instanceof Error ? e.message : String(e);
    log.fatal({ err: e }, "startup failed");
    process.stderr.write(`raftkv: startup failed: ${msg}\n`);
    return 1;
  }
  const r = running;
  return new Promise<number>((resolve) => {
    const stop = (sig: string) => {
      r.shutdown(`received ${sig}`).then(
        () => resolve(0),
        (e: unknown) => {
          log.error({ err: e }, "error during shutdown");
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGHUP", () => r.reload());
    r.member.on("fatal", (e: Error) => {
      process.stderr.write(`raftkv: fatal: ${e.message}\n`);
      resolve(1);
    });
    r.member.on("removed", () => setTimeout(() => resolve(0), 500));
  });
}
