/**
 * Who is calling, and what they may do: etcd's AuthInfoFromCtx / AuthInfoFromTLS and the
 * Auth service (user, role and permission management, Authenticate).
 *
 * An identity comes from a simple token (gRPC metadata `token`, or `authorization` as the
 * gateway passes it) or, with --client-cert-auth, from the client certificate's CN when no
 * token is given (etcd's behaviour). The gateway never uses the CN: etcd ignores it there too.
 *
 * Passwords are hashed here, before proposing, with bcrypt (etcd's algorithm and cost), so
 * every member stores the same hash and no log entry, snapshot or log line holds a password.
 */
import * as grpc from "@grpc/grpc-js";
import bcrypt from "bcryptjs";
import type { IncomingMessage } from "node:http";
import { AuthErrors, PERM_TYPES, byteOrder, type AuthPermission, type AuthRequest, type AuthStore, type PermType, type RequestAuth } from "../../kv/auth";
import type * as kvt from "../../kv/types";
import { EtcdError } from "../errors";
import type { Member } from "../member";
import { newTokenPrefix, tokenIndex } from "../auth-tokens";

/** What a request says about its sender, before it is checked. */
export interface Caller {
  token?: string;
  /**
   * The verified client certificate's CN (only with --client-cert-auth). grpcCaller reads it on
   * first use, and AuthGate only while auth is enabled: with auth off a certificate names nobody
   * (etcd's AuthInfoFromTLS) and the connection's certificate is never parsed (see
   * parsePeerCertificateOnce in listener.ts).
   */
  readonly cn?: string;
}

export interface AuthGateOptions {
  clientCertAuth: boolean;
  /** bcrypt cost of new hashes (etcd's --bcrypt-cost, default 10). */
  bcryptCost: number;
}

interface GrpcCallLike {
  metadata?: grpc.Metadata;
  getAuthContext?: () => { sslPeerCertificate?: { subject?: unknown } } | null;
}

/**
 * The first value of a metadata key. A client may send the key twice (python-etcd3 sends the
 * token both as call credentials and as metadata); HTTP/2 then joins the values with ", ", and
 * like etcd (which takes the first value) we take the first. Tokens never contain commas.
 */
function firstString(md: grpc.Metadata | undefined, key: string): string | undefined {
  const v = md?.get(key)[0];
  if (v === undefined) return undefined;
  const s = typeof v === "string" ? v : v.toString("utf8");
  return s.split(",")[0]!.trim();
}

/** The caller of a gRPC call (unary or stream). */
export function grpcCaller(call: GrpcCallLike, clientCertAuth: boolean): Caller {
  const token = firstString(call.metadata, "token") ?? firstString(call.metadata, "authorization");
  if (token !== undefined) return { token };
  if (!clientCertAuth) return {};
  let cn: string | undefined | null = null; // null: not read yet
  return {
    get cn(): string | undefined {
      if (cn === null) {
        const subject = call.getAuthContext?.()?.sslPeerCertificate?.subject as { CN?: string | string[] } | undefined;
        cn = subject === undefined ? undefined : ((Array.isArray(subject.CN) ? subject.CN[0] : subject.CN) ?? "");
      }
      return cn;
    },
  };
}

/** The caller of a gateway request: the Authorization header carries the token, as in grpc-gateway. */
export function httpCaller(req: IncomingMessage): Caller {
  const token = req.headers.authorization;
  return token !== undefined ? { token } : {};
}

/** Auth errors with the gRPC status etcd gives them. */
function toEtcd(e: unknown): never {
  const k = e as { grpcStatus?: unknown; message?: string };
  if (typeof k.grpcStatus === "number") throw new EtcdError(k.grpcStatus as grpc.status, k.message ?? "");
  throw e;
}

export class AuthGate {
  constructor(
    private readonly member: Member,
    readonly opts: AuthGateOptions,
  ) {}

  /** The replicated auth store, or undefined while the member is still starting. */
  get store(): AuthStore | undefined {
    return this.member.kv?.auth;
  }

  get enabled(): boolean {
    return this.store?.enabled ?? false;
  }

  /** etcd's AuthInfoFromCtx (+ AuthInfoFromTLS): the identity, or undefined for none. Throws "invalid auth token". */
  async identify(c: Caller | undefined): Promise<RequestAuth | undefined> {
    if (c?.token !== undefined) {
      // A token from an Authenticate entry this member has not applied yet: wait for it, as etcd does.
      const index = tokenIndex(c.token);
      if (index !== undefined && this.member.kv !== undefined && index > this.member.kv.appliedIndex) {
        await this.member.readBarrier().catch(() => undefined);
      }
    }
    return this.identifyNow(c);
  }

  /** identify() without waiting (streams check synchronously). */
  identifyNow(c: Caller | undefined): RequestAuth | undefined {
    const store = this.store;
    if (c?.token !== undefined) {
      const index = tokenIndex(c.token);
      const user = index === undefined || store === undefined ? undefined : this.member.tokens.user(c.token);
      if (user === undefined || store === undefined) throw new EtcdError(grpc.status.UNAUTHENTICATED, AuthErrors.invalidAuthToken().message);
      return { username: user, revision: store.revision };
    }
    // As etcd's AuthInfoFromTLS: a certificate names a user only while auth is enabled.
    if (this.opts.clientCertAuth && store !== undefined && store.enabled) {
      const cn = c?.cn;
      if (cn !== undefined) return { username: cn, revision: store.revision };
    }
    return undefined;
  }

  /** Root only (etcd's IsAdminPermitted after AuthInfoFromCtx). */
  async requireAdmin(c: Caller | undefined): Promise<RequestAuth | undefined> {
    const ai = await this.identify(c);
    try {
      this.store?.checkAdmin(ai);
    } catch (e) {
      toEtcd(e);
    }
    return ai;
  }

  /** Any identity at all once auth is on (etcd's requireAuthInfo). */
  async requireIdentity(c: Caller | undefined): Promise<RequestAuth | undefined> {
    const ai = await this.identify(c);
    if (this.enabled && ai === undefined) toEtcd(AuthErrors.userEmpty());
    return ai;
  }

  /** Runs a permission check of the store, as an EtcdError on failure. */
  check(f: (s: AuthStore) => void): void {
    const s = this.store;
    if (s === undefined || !s.enabled) return;
    try {
      f(s);
    } catch (e) {
      toEtcd(e);
    }
  }

  /** etcd's doSerialize: a local read must not outlive a change of the auth store it was checked against. */
  checkNotStale(ai: RequestAuth | undefined): void {
    const s = this.store;
    if (ai !== undefined && ai.revision !== 0 && s !== undefined && s.enabled && ai.revision !== s.revision) toEtcd(AuthErrors.authOldRevision());
  }

  hash(password: string): Promise<string> {
    return bcrypt.hash(password, this.opts.bcryptCost);
  }

  compare(password: string, hash: string): Promise<boolean> {
    return bcrypt.compare(password, hash);
  }
}

// ---------------------------------------------------------------- the Auth service

/** Wire shapes of the Auth service (proto-loader, keepCase). */
interface WirePermission {
  permType?: PermType | number;
  key?: Buffer;
  range_end?: Buffer;
}

type Header = (rev?: number) => unknown;
type Replicate = (cmd: kvt.KvCommand) => Promise<unknown>;

export interface AuthServiceDeps {
  gate: AuthGate;
  member: Member;
  header: Header;
  replicate: Replicate;
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function buf(v: unknown): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v);
  if (typeof v === "string") return Buffer.from(v, "base64");
  return Buffer.alloc(0);
}

function permType(v: unknown): PermType {
  if (typeof v === "number") return PERM_TYPES[v] ?? "READ";
  return PERM_TYPES.includes(v as PermType) ? (v as PermType) : "READ";
}

/** The plain functions behind each Auth RPC: (request, caller) → response. */
export function authHandlers(d: AuthServiceDeps): Record<string, (req: Record<string, unknown>, caller: Caller | undefined) => Promise<unknown>> {
  const { gate, member, header } = d;
  const store = (): AuthStore => {
    member.checkStarted();
    return member.kv.auth;
  };
  /** A replicated auth mutation, admin-checked here (fail fast) and again when applied. */
  const mutate = async (caller: Caller | undefined, req: AuthRequest | (() => Promise<AuthRequest>)): Promise<unknown> => {
    const ai = await gate.requireAdmin(caller);
    const r = typeof req === "function" ? await req() : req;
    await d.replicate({ type: "auth", req: r, ...(ai ? { auth: ai } : {}) });
    return { header: header() };
  };
  return {
    AuthEnable: (_req, c) => mutate(c, { op: "enable" }),
    AuthDisable: (_req, c) => mutate(c, { op: "disable" }),
    Authenticate: async (req) => {
      const name = str(req.name);
      const password = str(req.password);
      await member.readBarrier();
      // As etcd: check the password against the store, propose only the user name (never the
      // password), and try again if the store changed in between.
      for (let attempt = 0; ; attempt++) {
        const s = store();
        if (!s.enabled) toEtcd(AuthErrors.authNotEnabled());
        const checkedAt = s.revision;
        const user = s.user(name);
        if (!user) toEtcd(AuthErrors.authFailed());
        if (user.noPassword) throw new EtcdError(grpc.status.UNKNOWN, "auth: authentication failed, password was given for no password user");
        if (!(await gate.compare(password, user.password))) toEtcd(AuthErrors.authFailed());
        const res = (await d.replicate({ type: "auth", req: { op: "authenticate", name, prefix: newTokenPrefix() } })) as kvt.AuthResponse;
        if (store().revision === checkedAt || attempt >= 3) return { header: header(), token: res.result.token ?? "" };
      }
    },
    UserAdd: (req, c) => {
      const name = str(req.name);
      const noPassword = (req.options as { no_password?: boolean } | null | undefined)?.no_password === true;
      // etcd refuses an empty name before hashing anything.
      if (name.length === 0) toEtcd(AuthErrors.userEmpty());
      return mutate(c, async () => ({ op: "userAdd", name, hash: noPassword ? "" : await gate.hash(str(req.password)), noPassword }));
    },
    UserDelete: (req, c) => mutate(c, { op: "userDelete", name: str(req.name) }),
    UserChangePassword: (req, c) => mutate(c, async () => ({ op: "userChangePassword", name: str(req.name), hash: await gate.hash(str(req.password)) })),
    UserGrantRole: (req, c) => mutate(c, { op: "userGrantRole", user: str(req.user), role: str(req.role) }),
    UserRevokeRole: (req, c) => mutate(c, { op: "userRevokeRole", name: str(req.name), role: str(req.role) }),
    RoleAdd: (req, c) => mutate(c, { op: "roleAdd", name: str(req.name) }),
    RoleDelete: (req, c) => mutate(c, { op: "roleDelete", role: str(req.role) }),
    RoleGrantPermission: (req, c) => {
      const p = (req.perm ?? {}) as WirePermission;
      const perm: AuthPermission = { permType: permType(p.permType), key: buf(p.key).toString("latin1"), rangeEnd: buf(p.range_end).toString("latin1") };
      return mutate(c, { op: "roleGrantPermission", name: str(req.name), perm });
    },
    RoleRevokePermission: (req, c) =>
      mutate(c, { op: "roleRevokePermission", role: str(req.role), key: buf(req.key).toString("latin1"), rangeEnd: buf(req.range_end).toString("latin1") }),
    // Reads are served locally after a read barrier (etcd sends them through raft; same answers).
    UserGet: async (req, c) => {
      const name = str(req.name);
      const ai = await gate.identify(c);
      await member.readBarrier();
      // A user may read itself without being root.
      if (ai?.username !== name) await gate.requireAdmin(c);
      const u = store().user(name);
      if (!u) toEtcd(AuthErrors.userNotFound());
      return { header: header(), roles: [...u.roles] };
    },
    UserList: async (_req, c) => {
      await gate.requireAdmin(c);
      await member.readBarrier();
      return { header: header(), users: store().userNames() };
    },
    RoleGet: async (req, c) => {
      const role = str(req.role);
      const ai = await gate.identify(c);
      await member.readBarrier();
      // A user may read the roles it holds without being root.
      if (!(ai !== undefined && store().hasRole(ai.username, role))) await gate.requireAdmin(c);
      const r = store().role(role);
      if (!r) toEtcd(AuthErrors.roleNotFound());
      return {
        header: header(),
        perm: r.perms.map((p) => ({ permType: p.permType, key: Buffer.from(p.key, "latin1"), range_end: Buffer.from(p.rangeEnd, "latin1") })),
      };
    },
    RoleList: async (_req, c) => {
      await gate.requireAdmin(c);
      await member.readBarrier();
      return { header: header(), roles: store().roleNames().sort(byteOrder) };
    },
  };
}
