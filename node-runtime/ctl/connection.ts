/**
 * raftkvctl's connection to the cluster: global flags and ETCDCTL_* / RAFTKVCTL_* variables
 * resolved the way etcdctl resolves them, TLS credentials, and typed unary/streaming calls
 * with etcdctl's dial and command timeouts.
 *
 * This is our own thin client over @grpc/grpc-js and the .proto files in server/proto rather
 * than the `etcd3` npm package: etcd3 cannot add or promote learners, stream a snapshot to a
 * file, or hand back raw responses (headers, IDs as written) that etcdctl's output formats need.
 */
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { loadEtcdGrpc } from "../server/proto";
import { CtlError, ExitCode, rpcFailure } from "./errors";
import { parseGoDuration } from "./go-format";

export type OutputFormat = "simple" | "json" | "table" | "fields";

export interface GlobalOptions {
  endpoints: string[];
  cacert?: string;
  cert?: string;
  key?: string;
  insecureSkipTlsVerify: boolean;
  insecureTransport: boolean;
  dialTimeoutMs: number;
  commandTimeoutMs: number;
  writeOut: OutputFormat;
  hex: boolean;
  /**
   * --user / --password: log in with Authenticate and send its token with every call. The
   * password is undefined until asked for (`--user name` alone: see context.ts); an empty one
   * means no login, as in clientv3 (which logs in only with a name and a password).
   */
  auth?: { username: string; password: string | undefined };
}

/** Values of global flags as given on the command line (undefined when not given). */
export interface RawGlobalFlags {
  endpoints?: string;
  cacert?: string;
  cert?: string;
  key?: string;
  insecureSkipTlsVerify?: boolean;
  insecureTransport?: boolean;
  dialTimeout?: string;
  commandTimeout?: string;
  writeOut?: string;
  hex?: boolean;
  user?: string;
  password?: string;
}

function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[`RAFTKVCTL_${name}`] ?? env[`ETCDCTL_${name}`];
  return v === undefined || v === "" ? undefined : v;
}

function envBool(env: NodeJS.ProcessEnv, name: string): boolean | undefined {
  const v = envValue(env, name);
  if (v === undefined) return undefined;
  if (/^(1|t|true)$/i.test(v)) return true;
  if (/^(0|f|false)$/i.test(v)) return false;
  throw new CtlError(ExitCode.BadArgs, `invalid value ${JSON.stringify(v)} for ${name}: expected true or false`);
}

function duration(flag: string, value: string): number {
  try {
    return parseGoDuration(value);
  } catch (err) {
    throw new CtlError(ExitCode.BadArgs, `invalid argument ${JSON.stringify(value)} for "--${flag}" flag: ${(err as Error).message}`);
  }
}

/** Flags win over RAFTKVCTL_*, which wins over ETCDCTL_*, which wins over etcdctl's defaults. */
export function resolveGlobals(flags: RawGlobalFlags, env: NodeJS.ProcessEnv = process.env): GlobalOptions {
  const endpoints = (flags.endpoints ?? envValue(env, "ENDPOINTS") ?? "127.0.0.1:2379")
    .split(",")
    .map((e) => e.trim())
    .filter((e) => e !== "");
  const writeOut = flags.writeOut ?? envValue(env, "WRITE_OUT") ?? "simple";
  if (!["simple", "json", "table", "fields"].includes(writeOut)) {
    throw new CtlError(ExitCode.BadFeature, `unsupported output format ${JSON.stringify(writeOut)} (use simple, json, table or fields)`);
  }
  const opts: GlobalOptions = {
    endpoints,
    insecureSkipTlsVerify: flags.insecureSkipTlsVerify ?? envBool(env, "INSECURE_SKIP_TLS_VERIFY") ?? false,
    insecureTransport: flags.insecureTransport ?? envBool(env, "INSECURE_TRANSPORT") ?? true,
    dialTimeoutMs: duration("dial-timeout", flags.dialTimeout ?? envValue(env, "DIAL_TIMEOUT") ?? "2s"),
    commandTimeoutMs: duration("command-timeout", flags.commandTimeout ?? envValue(env, "COMMAND_TIMEOUT") ?? "5s"),
    writeOut: writeOut as OutputFormat,
    hex: flags.hex ?? envBool(env, "HEX") ?? false,
  };
  const cacert = flags.cacert ?? envValue(env, "CACERT");
  const cert = flags.cert ?? envValue(env, "CERT");
  const key = flags.key ?? envValue(env, "KEY");
  if (cacert !== undefined) opts.cacert = cacert;
  if (cert !== undefined) opts.cert = cert;
  if (key !== undefined) opts.key = key;
  if (endpoints.length === 0) throw new CtlError(ExitCode.BadArgs, "no endpoints given");
  const auth = authFlags(flags.user ?? envValue(env, "USER"), flags.password ?? envValue(env, "PASSWORD"));
  if (auth) opts.auth = auth;
  return opts;
}

/**
 * etcdctl 3.4's authCfgFromCmd: `--user name:password`, or `--user name --password pw` (then the
 * user flag is the whole name, colon included), or `--user name` alone, whose password is asked
 * for when the command first needs the server (undefined here).
 */
function authFlags(user: string | undefined, password: string | undefined): { username: string; password: string | undefined } | undefined {
  if (user === undefined || user === "") return undefined;
  if (password !== undefined && password !== "") return { username: user, password };
  const colon = user.indexOf(":");
  if (colon === -1) return { username: user, password: undefined };
  return { username: user.slice(0, colon), password: user.slice(colon + 1) };
}

interface Target {
  /** The endpoint as the user wrote it (printed by endpoint commands). */
  endpoint: string;
  address: string;
  tls: boolean;
}

function parseEndpoint(ep: string, tlsFiles: boolean, insecureTransport: boolean): Target {
  const m = /^(?:(https?|unixs?):\/\/)?([^/]+)\/?$/.exec(ep);
  if (!m) throw new CtlError(ExitCode.BadArgs, `invalid endpoint ${JSON.stringify(ep)}`);
  const scheme = m[1];
  const tls = scheme === "https" || scheme === "unixs" || (scheme === undefined && (tlsFiles || !insecureTransport));
  return { endpoint: ep, address: m[2]!, tls };
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new CtlError(ExitCode.BadConnection, `could not read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/**
 * Drops empty bytes fields before sending. protobufjs encodes a present empty Buffer as a
 * zero-length field, and etcd (gogoproto) decodes that as a non-nil empty slice: an empty
 * range_end then means "to the end of the keyspace", turning `get foo` into `get foo --from-key`.
 */
export function omitEmptyBytes<T>(msg: T): T {
  if (Array.isArray(msg)) return msg.map((x: unknown) => omitEmptyBytes(x)) as T;
  if (msg === null || typeof msg !== "object" || Buffer.isBuffer(msg)) return msg;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(msg as Record<string, unknown>)) {
    if (Buffer.isBuffer(v) && v.length === 0) continue;
    out[k] = omitEmptyBytes(v);
  }
  return out as T;
}

type ClientName = "KV" | "Watch" | "Lease" | "Cluster" | "Maintenance" | "Auth";

const AUTH_NOT_ENABLED = "etcdserver: authentication is not enabled";

/** Connections to the cluster's endpoints, opened lazily and closed by close(). */
export class Connection {
  private readonly clients = new Map<string, grpc.Client>();
  private readonly credentials: grpc.ChannelCredentials | undefined;
  private readonly insecure = grpc.credentials.createInsecure();
  /** The simple token from --user's login; undefined before it or when auth is off. */
  private token: string | undefined;
  private login: Promise<void> | undefined;
  readonly targets: Target[];

  constructor(readonly opts: GlobalOptions) {
    const tlsFiles = opts.cacert !== undefined || opts.cert !== undefined || opts.key !== undefined;
    this.targets = opts.endpoints.map((e) => parseEndpoint(e, tlsFiles, opts.insecureTransport));
    if (this.targets.some((t) => t.tls)) {
      if ((opts.cert === undefined) !== (opts.key === undefined)) {
        throw new CtlError(ExitCode.BadArgs, "--cert and --key must be given together");
      }
      const ca = opts.cacert !== undefined ? readPem(opts.cacert, "CA certificate") : null;
      const key = opts.key !== undefined ? readPem(opts.key, "key") : null;
      const cert = opts.cert !== undefined ? readPem(opts.cert, "certificate") : null;
      try {
        this.credentials = grpc.credentials.createSsl(ca, key, cert, {
          rejectUnauthorized: !opts.insecureSkipTlsVerify,
          ...(opts.insecureSkipTlsVerify ? { checkServerIdentity: () => undefined } : {}),
        });
      } catch (err) {
        throw new CtlError(ExitCode.BadConnection, `invalid TLS files: ${(err as Error).message}`);
      }
    }
  }

  /** The endpoints with their addresses, for per-endpoint commands. */
  endpointTargets(): Target[] {
    return this.targets;
  }

  /** A target for an endpoint not in --endpoints (from `--cluster` member lists). */
  targetFor(endpoint: string): Target {
    return parseEndpoint(endpoint, this.credentials !== undefined, this.opts.insecureTransport);
  }

  private client(service: ClientName, target: Target): grpc.Client {
    const k = `${service} ${target.address} ${target.tls}`;
    let c = this.clients.get(k);
    if (!c) {
      const Ctor = loadEtcdGrpc().clients[service];
      const creds = target.tls ? (this.credentials ?? grpc.credentials.createSsl()) : this.insecure;
      c = new Ctor(target.address, creds, {
        "grpc.keepalive_time_ms": 10000,
        "grpc.max_receive_message_length": -1,
        "grpc.enable_retries": 0,
      });
      this.clients.set(k, c);
    }
    return c;
  }

  /** Waits (at most --dial-timeout) until the channel to the target is connected. */
  async dial(target: Target): Promise<void> {
    const c = this.client("KV", target);
    const deadline = Date.now() + this.opts.dialTimeoutMs;
    await new Promise<void>((resolve, reject) => {
      c.waitForReady(deadline, (err) => {
        if (!err) return resolve();
        const why = this.lastChannelProblem(c);
        reject(new CtlError(ExitCode.Error, `context deadline exceeded (${target.endpoint}: ${why})`));
      });
    });
  }

  private lastChannelProblem(c: grpc.Client): string {
    const state = c.getChannel().getConnectivityState(false);
    return state === grpc.connectivityState.TRANSIENT_FAILURE ? "connection failed or TLS handshake rejected" : "not connected in time";
  }

  /**
   * clientv3's getToken, run once before the first call: Authenticate on each endpoint in
   * order within --dial-timeout. A server without auth ("authentication is not enabled") is
   * used without a token; any other failure fails the command as a connection error (exit 2).
   */
  private authenticate(): Promise<void> {
    const auth = this.opts.auth;
    if (!auth || auth.password === undefined || auth.password === "") return Promise.resolve();
    const password = auth.password;
    return (this.login ??= (async () => {
      let last: unknown;
      for (const t of this.targets) {
        try {
          await this.dial(t);
          const r = await this.call<{ name: string; password: string }, { token: string }>("Auth", "Authenticate", { name: auth.username, password }, t, this.opts.dialTimeoutMs);
          this.token = r.token;
          return;
        } catch (err) {
          if (err instanceof CtlError && err.message === AUTH_NOT_ENABLED) return;
          last = err;
        }
      }
      throw new CtlError(ExitCode.BadConnection, last instanceof Error ? last.message : String(last));
    })());
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set("hasleader", "true");
    if (this.token !== undefined && this.token !== "") md.set("token", this.token);
    return md;
  }

  /** The first endpoint that connects within --dial-timeout, tried in order. */
  async pick(): Promise<Target> {
    await this.authenticate();
    let last: unknown;
    for (const t of this.targets) {
      try {
        await this.dial(t);
        return t;
      } catch (err) {
        last = err;
      }
    }
    throw last instanceof CtlError ? last : new CtlError(ExitCode.Error, "context deadline exceeded");
  }

  /** A unary call with --command-timeout; errors become CtlErrors with etcd's message. */
  async unary<Req, Res>(service: ClientName, method: string, req: Req, target?: Target, timeoutMs?: number): Promise<Res> {
    const t = target ?? (await this.pick());
    if (target) {
      await this.authenticate();
      await this.dial(t);
    }
    return this.call(service, method, req, t, timeoutMs);
  }

  private call<Req, Res>(service: ClientName, method: string, req: Req, t: Target, timeoutMs?: number): Promise<Res> {
    const c = this.client(service, t) as unknown as Record<
      string,
      (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: Res) => void) => void
    >;
    const fn = c[method];
    if (typeof fn !== "function") throw new Error(`no method ${service}.${method}`);
    const md = this.metadata();
    return new Promise<Res>((resolve, reject) => {
      fn.call(c, omitEmptyBytes(req), md, { deadline: Date.now() + (timeoutMs ?? this.opts.commandTimeoutMs) }, (err, res) => {
        if (err) reject(rpcFailure(err));
        else resolve(res);
      });
    });
  }

  /** A server-streaming call without deadline (snapshot). */
  async serverStream<Req>(service: ClientName, method: string, req: Req): Promise<grpc.ClientReadableStream<unknown>> {
    const t = await this.pick();
    const c = this.client(service, t) as unknown as Record<string, (req: Req, md: grpc.Metadata) => grpc.ClientReadableStream<unknown>>;
    return c[method]!.call(c, omitEmptyBytes(req), this.metadata());
  }

  /** A bidirectional stream without deadline (watch, keep-alive). */
  async bidiStream(service: ClientName, method: string): Promise<grpc.ClientDuplexStream<unknown, unknown>> {
    const t = await this.pick();
    const c = this.client(service, t) as unknown as Record<string, (md: grpc.Metadata) => grpc.ClientDuplexStream<unknown, unknown>>;
    return c[method]!.call(c, this.metadata());
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
