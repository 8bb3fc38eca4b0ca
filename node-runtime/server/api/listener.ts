/**
 * One client URL, two protocols on one port, as etcd serves them: gRPC (HTTP/2) and the
 * HTTP/JSON gateway (HTTP/1.1).
 *
 * For https URLs we terminate TLS ourselves, with the member's reloading client certificate
 * material, and pick the protocol by ALPN: a client offering "http/1.1" (curl, browsers) gets
 * the gateway, one offering only "h2" (every gRPC client) gets gRPC. Without ALPN, and on plain
 * http URLs, the first bytes decide: the HTTP/2 connection preface means gRPC, anything else
 * is HTTP/1.1. gRPC connections are handed to the grpc-js server through a connection injector
 * with insecure credentials (the TLS is already ours); HTTP/1.1 ones to the gateway's server.
 */
import * as grpc from "@grpc/grpc-js";
import { constants as cryptoConstants } from "node:crypto";
import { readFileSync } from "node:fs";
import type * as http from "node:http";
import * as net from "node:net";
import * as tls from "node:tls";
import type { ListenUrl } from "../config";
import type { Logger } from "../obs";
import { onFirstBytes, PendingHandshakes, type PendingLimits, type ReloadingTls, type TlsMaterial } from "../tls";
import { grpcHttp2Servers, serveAfterClientGoaway } from "./client-goaway";

export interface ClientListenerOptions {
  url: ListenUrl;
  grpc: grpc.Server;
  gateway: http.Server;
  /** Required for https URLs. */
  tls?: { material: ReloadingTls; clientCertAuth: boolean };
  log: Logger;
  /** How long a new connection may stay silent before its protocol is known (default 10 s). */
  sniffTimeoutMs?: number;
  /** How long a TLS handshake may take, from accept (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Connections still in their TLS handshake (or protocol sniff) at once (default 1024). */
  maxPendingHandshakes?: number;
  /** The same, from one remote address (default 256). */
  maxPendingPerAddress?: number;
  /** How long an HTTP/1.1 connection may stay silent (default 60 s; streams are exempt). */
  idleTimeoutMs?: number;
  /** Open connections at most (default: derived from the open-file limit, see connectionCap). */
  maxConnections?: number;
}

/**
 * Open files kept out of the client port's reach: WAL segments, snapshots, peer links and the
 * thread pool need descriptors too, and running out of them must never stop the member.
 */
const RESERVED_FDS = 256;
const DEFAULT_MAX_CONNECTIONS = 10_000;
const DEFAULT_MAX_PENDING = 1024;
const DEFAULT_MAX_PENDING_PER_ADDRESS = 256;

/** The soft limit on open files of this process (from /proc), or undefined where unknown. */
function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    if (!m || m[1] === "unlimited") return undefined;
    return Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Client connections we accept at most: 10,000, or fewer when the open-file limit is low. */
export function connectionCap(limit = openFileLimit()): number {
  if (limit === undefined) return DEFAULT_MAX_CONNECTIONS;
  return Math.max(16, Math.min(DEFAULT_MAX_CONNECTIONS, Math.floor((limit - RESERVED_FDS) / 2)));
}

/**
 * TLS 1.2 suites as Go (and so etcd) prefers them, without the CBC-SHA1 ones: ECDHE key
 * exchange with AES-GCM or ChaCha20-Poly1305 only. TLS 1.3 suites are all AEAD already.
 */
export const CLIENT_CIPHERS = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

export interface ClientListener {
  readonly address: net.AddressInfo;
  /** Stops accepting connections; open ones continue. */
  close(): void;
  /** Stops accepting and drops every open connection. */
  destroy(): void;
}

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Offered protocols → ours: HTTP/1.1 if the client speaks it, else h2; none in common fails the handshake. */
export function chooseAlpn(offered: readonly string[]): string | undefined {
  if (offered.includes("http/1.1")) return "http/1.1";
  if (offered.includes("h2")) return "h2";
  return undefined;
}

/** Reads until the first bytes tell HTTP/2 from HTTP/1.x, then puts them back (the socket stays paused). */
function sniff(socket: net.Socket, timeoutMs: number, decide: (h2: boolean) => void): void {
  let seen = Buffer.alloc(0);
  const cleanup = () => {
    socket.off("data", onData);
    socket.off("end", onEnd);
    socket.setTimeout(0);
  };
  const settle = (h2: boolean) => {
    cleanup();
    socket.pause();
    if (seen.length > 0) socket.unshift(seen);
    decide(h2);
  };
  const onData = (chunk: Buffer) => {
    seen = Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, H2_PREFACE.length);
    if (!seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) settle(false);
    else if (n === H2_PREFACE.length) settle(true);
  };
  const onEnd = () => {
    cleanup();
    socket.destroy();
  };
  socket.on("data", onData);
  socket.once("end", onEnd);
  socket.setTimeout(timeoutMs, () => {
    cleanup();
    socket.destroy();
  });
}

function contextOptions(m: TlsMaterial): tls.SecureContextOptions {
  // Renegotiation is refused outright (Go's servers never renegotiate either).
  return { ...m.options, ciphers: CLIENT_CIPHERS, secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION };
}

export function listenForClients(opts: ClientListenerOptions): Promise<ClientListener> {
  const { url, log } = opts;
  const before = new Set(grpcHttp2Servers(opts.grpc));
  const injector = opts.grpc.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  // A client's GOAWAY does not refuse the streams it opens right after (see client-goaway.ts).
  for (const h2 of grpcHttp2Servers(opts.grpc)) if (!before.has(h2)) h2.on("session", serveAfterClientGoaway);
  const sockets = new Set<net.Socket>();
  const sniffTimeoutMs = opts.sniffTimeoutMs ?? 10_000;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
  const maxConnections = opts.maxConnections ?? connectionCap();
  const limits: PendingLimits = {
    deadlineMs: opts.handshakeTimeoutMs ?? 10_000,
    maxPending: opts.maxPendingHandshakes ?? DEFAULT_MAX_PENDING,
    maxPendingPerAddress: opts.maxPendingPerAddress ?? DEFAULT_MAX_PENDING_PER_ADDRESS,
  };
  let refusedSince = 0;
  let evictedSince = 0;
  // Connections before their protocol is known: a deadline from accept and caps, see PendingHandshakes.
  const pending = new PendingHandshakes(limits, (reason, address) => {
    // Logged at most once a minute, like refusals: a flood must not become a flood of lines.
    const now = Date.now();
    if (now - evictedSince < 60_000) return;
    evictedSince = now;
    log.warn({ url: url.url, reason, remote: address, ...limits }, "closing client connections that did not finish their handshake");
  });

  const track = (s: net.Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
    // A socket error (reset, EPIPE) ends that connection only.
    s.on("error", () => undefined);
    pending.admit(s);
  };
  const onDrop = () => {
    // Logged at most once a minute: a flood of connections must not become a flood of lines.
    const now = Date.now();
    if (now - refusedSince < 60_000) return;
    refusedSince = now;
    log.warn({ url: url.url, maxConnections }, "client connection limit reached; refusing new connections");
  };
  const toGrpc = (s: net.Socket) => {
    pending.done(s);
    injector.injectConnection(s);
  };
  // Node's HTTP/2 session takes the bytes already read and then reads the socket natively; the
  // HTTP/1.1 server reads through the stream and so needs a paused socket resumed.
  const toGateway = (s: net.Socket) => {
    pending.done(s);
    // Idle HTTP/1.1 connections are closed; the gateway lifts this for streaming requests.
    s.setTimeout(idleTimeoutMs, () => s.destroy());
    opts.gateway.emit("connection", s);
    s.resume();
  };

  // The port is always a plain TCP server: each connection is admitted (deadline, caps) before
  // any TLS state exists, and handed to the TLS server only once its first bytes arrive.
  const server = net.createServer({ noDelay: true });
  let unsubscribe = () => {};
  if (url.scheme === "https") {
    const t = opts.tls;
    if (!t) throw new Error(`${url.url}: https client URL without client TLS material`);
    const tlsServer = tls.createServer({
      ...contextOptions(t.material.current()),
      requestCert: t.clientCertAuth,
      rejectUnauthorized: t.clientCertAuth,
      ALPNCallback: ({ protocols }) => chooseAlpn(protocols),
      // Small request/response pairs: Nagle plus delayed ACKs would stall them for ~40 ms.
      noDelay: true,
      handshakeTimeout: limits.deadlineMs,
    });
    unsubscribe = t.material.onChange((m) => tlsServer.setSecureContext(contextOptions(m)));
    tlsServer.on("secureConnection", (s: tls.TLSSocket) => {
      if (t.clientCertAuth) parsePeerCertificateOnce(s);
      if (s.alpnProtocol === "h2") return toGrpc(s);
      if (s.alpnProtocol === "http/1.1") return toGateway(s);
      sniff(s, sniffTimeoutMs, (h2) => {
        if (!h2) return toGateway(s);
        // Node's HTTP/2 server treats a TLS socket without ALPN as HTTP/1; the preface says otherwise.
        s.alpnProtocol = "h2";
        toGrpc(s);
      });
    });
    tlsServer.on("tlsClientError", (err, s) => {
      log.debug({ err: err.message, remote: s.remoteAddress }, "client TLS handshake failed");
      // Node leaves a timed-out handshake's socket open; a failed handshake ends the connection.
      s.destroy();
    });
    server.on("connection", (s: net.Socket) => {
      track(s);
      onFirstBytes(s, () => tlsServer.emit("connection", s));
    });
  } else {
    server.on("connection", (s: net.Socket) => {
      track(s);
      sniff(s, sniffTimeoutMs, (h2) => (h2 ? toGrpc(s) : toGateway(s)));
    });
  }

  server.maxConnections = maxConnections;
  server.on("drop", onDrop);

  return new Promise((resolve, reject) => {
    server.once("error", (e) => {
      unsubscribe();
      pending.close();
      injector.destroy();
      reject(e);
    });
    server.listen(url.port, url.host, () => {
      server.removeAllListeners("error");
      server.on("error", (e) => log.error({ err: e.message, url: url.url }, "client listener error"));
      const address = server.address() as net.AddressInfo;
      const close = () => {
        unsubscribe();
        server.close();
      };
      resolve({
        address,
        close,
        destroy: () => {
          close();
          pending.close();
          injector.destroy();
          for (const s of sockets) s.destroy();
        },
      });
    });
  });
}

/**
 * A client's certificate is parsed once per connection: with auth enabled, every call that needs
 * its caller asks grpc-js for it, and each getPeerCertificate() builds the certificate object
 * anew (about 70 µs). It cannot change on the connection: the client port's TLS context refuses
 * renegotiation (SSL_OP_NO_RENEGOTIATION in contextOptions).
 */
export function parsePeerCertificateOnce(s: tls.TLSSocket): void {
  const parse = s.getPeerCertificate.bind(s) as (detailed?: boolean) => tls.PeerCertificate | tls.DetailedPeerCertificate;
  const parsed = new Map<boolean, tls.PeerCertificate | tls.DetailedPeerCertificate>();
  const once = (detailed?: boolean): tls.PeerCertificate | tls.DetailedPeerCertificate => {
    const key = detailed === true;
    let cert = parsed.get(key);
    if (cert === undefined) {
      cert = parse(key);
      // Nothing to keep before the handshake has produced a certificate.
      if (Object.keys(cert).length > 0) parsed.set(key, cert);
    }
    return cert;
  };
  s.getPeerCertificate = once as tls.TLSSocket["getPeerCertificate"];
}
