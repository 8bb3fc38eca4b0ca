/**
 * SSH as @pulumi/command 1.x's remote provider does it, with the `ssh2` client:
 *  - connection.proxy: dial the proxy first, then open a direct-tcpip channel from it to the
 *    host and run the SSH handshake over that channel (the runner never reaches a private host
 *    directly; the lab's network model makes sure of it);
 *  - dialErrorLimit (default 10, -1 unlimited) failed dials are tolerated per hop, each dial
 *    bounded by perDialTimeout seconds (default 15, 0 = no bound);
 *  - host keys: connection.hostKey (and proxy.hostKey), an OpenSSH public key line, is the only
 *    key the hop accepts (the provider pins it: a host presenting another key fails the
 *    handshake, which counts as a failed dial); without it any key is accepted, as the provider does;
 *  - `environment` is sent as SSH "env" requests, which sshd drops unless AcceptEnv allows the
 *    name: nothing here makes it kinder than that;
 *  - the command's stdin is written and closed; stdout and stderr are captured separately.
 */
import { Client, type ClientChannel, type ConnectConfig, type SFTPWrapper } from "ssh2";
import { createHash } from "node:crypto";
import type { Duplex } from "node:stream";
import * as path from "node:path";

export interface SshHop {
  host: string;
  port: number;
  user: string;
  privateKey?: string;
  password?: string;
  dialErrorLimit: number;
  perDialTimeoutSec: number;
  /** The pinned host key (`ssh-ed25519 AAAA...`); any key is accepted when undefined. */
  hostKey?: string;
}

export interface SshTarget extends SshHop {
  proxy?: SshHop;
}

const DEFAULT_DIAL_ERROR_LIMIT = 10;
const DEFAULT_PER_DIAL_TIMEOUT_SEC = 15;

function str(v: unknown, what: string): string {
  if (typeof v !== "string" || v === "") throw new Error(`connection.${what} must be a non-empty string`);
  return v;
}

function optStr(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

function num(v: unknown, fallback: number): number {
  return typeof v === "number" && Number.isFinite(v) ? v : fallback;
}

function hop(c: Record<string, unknown>, what: string): SshHop {
  const privateKey = optStr(c["privateKey"]);
  const password = optStr(c["password"]);
  const hostKey = optStr(c["hostKey"]);
  return {
    ...(hostKey !== undefined ? { hostKey } : {}),
    host: str(c["host"], `${what}host`),
    port: num(c["port"], 22),
    user: optStr(c["user"]) ?? "root",
    ...(privateKey !== undefined ? { privateKey } : {}),
    ...(password !== undefined ? { password } : {}),
    dialErrorLimit: num(c["dialErrorLimit"], DEFAULT_DIAL_ERROR_LIMIT),
    perDialTimeoutSec: num(c["perDialTimeout"], DEFAULT_PER_DIAL_TIMEOUT_SEC),
  };
}

/** A command:remote:* resource's `connection` input, with the provider's defaults. */
export function sshTargetFromInputs(connection: unknown): SshTarget {
  if (connection === null || typeof connection !== "object") throw new Error("the resource has no connection");
  const c = connection as Record<string, unknown>;
  const target: SshTarget = hop(c, "");
  const proxy = c["proxy"];
  if (proxy !== undefined && proxy !== null) {
    if (typeof proxy !== "object") throw new Error("connection.proxy must be an object");
    target.proxy = hop(proxy as Record<string, unknown>, "proxy.");
  }
  return target;
}

export function describeTarget(t: SshTarget): string {
  const one = (h: SshHop) => `${h.user}@${h.host}:${h.port}`;
  return t.proxy !== undefined ? `${one(t)} via ${one(t.proxy)}` : one(t);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The key blob of an OpenSSH public key line, as the server sends it in the handshake. */
function keyBlob(line: string): Buffer {
  const [type, b64] = line.trim().split(/\s+/);
  const blob = Buffer.from(b64 ?? "", "base64");
  if (type === undefined || blob.length < 4 || blob.subarray(4, 4 + blob.readUInt32BE(0)).toString() !== type) throw new Error(`connection.hostKey is not an OpenSSH public key: ${JSON.stringify(line)}`);
  return blob;
}

const fingerprint = (blob: Buffer) => `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;

function handshake(h: SshHop, sock: Duplex | undefined): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    const pinned = h.hostKey !== undefined ? keyBlob(h.hostKey) : undefined;
    let presented: Buffer | undefined;
    const cfg: ConnectConfig = {
      host: h.host,
      port: h.port,
      username: h.user,
      // 0 means no bound in the provider; ssh2 needs a number, a day is unbounded enough.
      readyTimeout: h.perDialTimeoutSec > 0 ? h.perDialTimeoutSec * 1000 : 86_400_000,
      keepaliveInterval: 10_000,
      ...(h.privateKey !== undefined ? { privateKey: h.privateKey } : {}),
      ...(h.password !== undefined ? { password: h.password } : {}),
      ...(sock !== undefined ? { sock } : {}),
      ...(pinned !== undefined
        ? {
            // The server's key must be the pinned one (ssh2 hands the raw key blob without hostHash).
            hostVerifier: (key: Buffer) => {
              presented = key;
              return key.equals(pinned);
            },
          }
        : {}),
    };
    let settled = false;
    client.once("ready", () => {
      settled = true;
      resolve(client);
    });
    client.on("error", (err: Error) => {
      if (!settled) {
        settled = true;
        client.end();
        if (pinned !== undefined && presented !== undefined && !presented.equals(pinned)) {
          reject(new Error(`host key mismatch: ${h.host} presented ${fingerprint(presented)}, the pinned key is ${fingerprint(pinned)}`));
        } else reject(err);
      }
    });
    client.connect(cfg);
  });
}

/** Dials one hop, retrying failed dials up to its dialErrorLimit, as the provider does. */
async function dialWithRetry(h: SshHop, open: () => Promise<Duplex | undefined>, label: string): Promise<Client> {
  let failures = 0;
  let delay = 500;
  for (;;) {
    try {
      return await handshake(h, await open());
    } catch (e) {
      failures++;
      if (h.dialErrorLimit !== -1 && failures > h.dialErrorLimit) {
        throw new Error(`ssh: ${label}: dial failed ${failures} times, giving up (dialErrorLimit ${h.dialErrorLimit}): ${(e as Error).message}`);
      }
      await sleep(delay);
      delay = Math.min(delay * 1.5, 5000);
    }
  }
}

function forward(proxy: Client, host: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    proxy.forwardOut("127.0.0.1", 0, host, port, (err, ch) => (err ? reject(err) : resolve(ch)));
  });
}

/** Opens a session to the target (through its proxy when set), runs fn, always closes. */
export async function withSsh<T>(t: SshTarget, fn: (c: Client) => Promise<T>): Promise<T> {
  let proxyClient: Client | undefined;
  let client: Client | undefined;
  try {
    if (t.proxy !== undefined) {
      const p = t.proxy;
      proxyClient = await dialWithRetry(p, async () => undefined, `proxy ${p.user}@${p.host}:${p.port}`);
      const pc = proxyClient;
      client = await dialWithRetry(t, () => forward(pc, t.host, t.port), `${t.user}@${t.host}:${t.port} via proxy ${p.host}`);
    } else {
      client = await dialWithRetry(t, async () => undefined, `${t.user}@${t.host}:${t.port}`);
    }
    return await fn(client);
  } finally {
    client?.end();
    proxyClient?.end();
  }
}

export interface RemoteResult {
  code: number | null;
  signal: string | undefined;
  stdout: string;
  stderr: string;
}

/** Runs one command in a session: env requests first, stdin written then closed. */
export function execRemote(c: Client, command: string, opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<RemoteResult> {
  return new Promise((resolve, reject) => {
    const execOpts = opts.env !== undefined && Object.keys(opts.env).length > 0 ? { env: opts.env } : {};
    c.exec(command, execOpts, (err: Error | undefined, stream: ClientChannel) => {
      if (err) {
        reject(err);
        return;
      }
      const out: Buffer[] = [];
      const errOut: Buffer[] = [];
      stream.on("data", (d: Buffer) => out.push(d));
      stream.stderr.on("data", (d: Buffer) => errOut.push(d));
      stream.on("close", (code: number | null, signal: string | undefined) => {
        resolve({ code, signal, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(errOut).toString("utf8") });
      });
      stream.end(opts.stdin ?? "");
    });
  });
}

function sftpOf(c: Client): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => c.sftp((err, s) => (err ? reject(err) : resolve(s))));
}

function sftpCall<T>(fn: (cb: (err: Error | null | undefined, v?: T) => void) => void): Promise<T | undefined> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

async function isDir(s: SFTPWrapper, p: string): Promise<boolean> {
  try {
    const st = await sftpCall<{ isDirectory(): boolean }>((cb) => s.stat(p, (e, v) => cb(e, v)));
    return st?.isDirectory() ?? false;
  } catch {
    return false;
  }
}

async function mkdirP(s: SFTPWrapper, dir: string): Promise<void> {
  if (dir === "/" || dir === "." || dir === "") return;
  if (await isDir(s, dir)) return;
  await mkdirP(s, path.posix.dirname(dir));
  await sftpCall<void>((cb) => s.mkdir(dir, (e) => cb(e)));
}

/**
 * CopyToRemote: parent directories are created; a remote path that is an existing directory
 * receives the file inside it; an existing file is overwritten.
 */
export async function copyToRemote(c: Client, content: { localPath: string } | { text: string }, remotePath: string): Promise<string> {
  const s = await sftpOf(c);
  try {
    await mkdirP(s, path.posix.dirname(remotePath));
    let dest = remotePath;
    if ("localPath" in content && (await isDir(s, remotePath))) dest = path.posix.join(remotePath, path.basename(content.localPath));
    if ("localPath" in content) {
      await sftpCall<void>((cb) => s.fastPut(content.localPath, dest, (e) => cb(e)));
    } else {
      await sftpCall<void>((cb) => s.writeFile(dest, content.text, (e) => cb(e)));
    }
    return dest;
  } finally {
    s.end();
  }
}
