/**
 * The etcd v3 gRPC services (KV, Watch, Lease, Cluster, Maintenance) on top of one Member.
 *
 * Handlers validate, turn wire shapes into state-machine requests, and either replicate them
 * (writes) or read locally after a read barrier (linearizable reads; serializable ones skip it).
 * Every response carries etcd's header, every error etcd's status code and message.
 */
import * as grpc from "@grpc/grpc-js";
import { randomBytes } from "node:crypto";
import { isReadOnlyTxn, isSerializableTxn, validateRange, validateTxn, type KvCommand } from "../../kv";
import type { RequestAuth } from "../../kv/auth";
import { etcdSnapshotChunksAsync } from "../../kv/etcd-backend/export";
import type * as kvt from "../../kv/types";
import type * as wire from "../etcd-types";
import { EtcdError, Errors } from "../errors";
import { parsePeerUrl } from "../../../components/topology";
import { memberIdFor } from "../identity";
import type { Member } from "../member";
import type { MemberInfo } from "../membership";
import { compactReq, deleteReq, putReq, rangeReq, toId, toNumber, txnReq } from "./convert";
import { serveWatch } from "./watch";
import { FRAME_PREFIX_BYTES, PreEncoded } from "./pre-encoded";
import { encodeTxnAnswer } from "../../kv/read-encoder";
import type { MessageStream } from "./stream";
import { AuthGate, authHandlers, grpcCaller, type Caller } from "./auth";

/** The etcd release whose API we implement; reported by Maintenance/Status as clients expect. */
export const ETCD_API_VERSION = "3.4.0";

type Unary<Req, Res> = grpc.handleUnaryCall<Req, Res>;

/** A turn of the event loop, between two steps of a long piece of work. */
const nextTick = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

export interface ServiceContext {
  member: Member;
  maxRequestBytes: number;
  maxTxnOps: number;
  /** Identities and permissions (default: no client-certificate identities, bcrypt cost 10). */
  auth?: AuthGate;
}

function gateOf(ctx: ServiceContext): AuthGate {
  ctx.auth ??= new AuthGate(ctx.member, { clientCertAuth: false, bcryptCost: 10 });
  return ctx.auth;
}

export function header(m: Member, revision?: number): wire.ResponseHeader {
  return {
    cluster_id: String(m.clusterId),
    member_id: String(m.id),
    revision: String(revision ?? m.currentRevision()),
    raft_term: String(m.currentTerm()),
  };
}

/**
 * A unary RPC as a plain async function (request and response in proto-loader's shapes; failures
 * are EtcdErrors). The gRPC services and the HTTP/JSON gateway run the same function; `caller`
 * is what the request says about its sender (token, certificate CN).
 */
export type UnaryFunction = (req: unknown, caller?: Caller) => Promise<unknown>;

const PLAIN = Symbol("plain unary function");

/** Wraps an async handler: errors become EtcdErrors; duration and outcome are recorded. */
function instrument<Req, Res>(
  ctx: ServiceContext,
  service: string,
  method: string,
  f: (req: Req, caller: Caller | undefined) => Promise<Res>,
): (req: Req, caller: Caller | undefined) => Promise<Res> {
  const { metrics } = ctx.member;
  return async (req, caller) => {
    const end = metrics.requestDuration.startTimer({ grpc_type: "unary", grpc_service: service, grpc_method: method });
    try {
      const res = await f(req, caller);
      metrics.requestsHandled.inc({ grpc_type: "unary", grpc_service: service, grpc_method: method, grpc_code: "OK" });
      return res;
    } catch (err) {
      const e = Errors.toEtcd(err);
      metrics.requestsHandled.inc({ grpc_type: "unary", grpc_service: service, grpc_method: method, grpc_code: grpc.status[e.code] ?? "UNKNOWN" });
      if (e.code === grpc.status.INTERNAL) ctx.member.log.error({ err, method }, "request failed");
      throw e;
    } finally {
      end();
    }
  };
}

/** A grpc-js unary handler that also carries its plain function (see unaryFunction). */
function unary<Req, Res>(
  ctx: ServiceContext,
  service: string,
  method: string,
  f: (req: Req, caller: Caller | undefined) => Promise<Res>,
): Unary<Req, Res> {
  const run = instrument(ctx, service, method, f);
  const clientCertAuth = gateOf(ctx).opts.clientCertAuth;
  const handler: Unary<Req, Res> = (call, cb) => {
    run(call.request, grpcCaller(call, clientCertAuth)).then(
      (res) => cb(null, res),
      (err: unknown) => {
        const e = Errors.toEtcd(err);
        cb({ code: e.code, details: e.message, message: e.message } as grpc.ServiceError, null);
      },
    );
  };
  const plain: UnaryFunction = (req, caller) => run(req as Req, caller);
  return Object.assign(handler, { [PLAIN]: plain });
}

/** The plain function behind unary `method` of a service built here; undefined for streams. */
export function unaryFunction(service: grpc.UntypedServiceImplementation, method: string): UnaryFunction | undefined {
  const h: unknown = service[method];
  return typeof h === "function" && PLAIN in h ? (h as { [PLAIN]: UnaryFunction })[PLAIN] : undefined;
}

/** Replicates a write; the member validates it like etcd's API layer does (kv/validate.ts) before proposing. */
async function replicate(ctx: ServiceContext, cmd: KvCommand): Promise<unknown> {
  return ctx.member.proposeKv(cmd);
}

function withHeader<T extends { header: unknown }>(m: Member, res: T): T {
  const rev = (res.header as { revision?: number } | undefined)?.revision;
  return { ...res, header: header(m, rev) };
}

/** The sender's identity travels with the command; the apply checks its permissions (etcd's authApplierV3). */
function as(ai: RequestAuth | undefined): { auth?: RequestAuth } {
  return ai ? { auth: ai } : {};
}

export function kvService(ctx: ServiceContext): grpc.UntypedServiceImplementation {
  const m = ctx.member;
  const gate = gateOf(ctx);
  return {
    Range: unary(ctx, "etcdserverpb.KV", "Range", async (req: wire.RangeRequest, caller) => {
      const r = rangeReq(req);
      // etcd refuses an empty key before reading ("etcdserver: key is not provided").
      const invalid = validateRange(r);
      if (invalid) throw invalid;
      const ai = await gate.identify(caller);
      if (!r.serializable) await m.readBarrier();
      else m.checkReadable();
      gate.check((s) => s.checkRange(ai, r.key, r.range_end));
      const res = m.kv.range(r);
      gate.checkNotStale(ai);
      return withHeader(m, res);
    }),
    Put: unary(ctx, "etcdserverpb.KV", "Put", async (req: wire.PutRequest, caller) => {
      const r = putReq(req);
      const ai = await gate.identify(caller);
      return withHeader(m, (await replicate(ctx, { type: "put", req: r, ...as(ai) })) as kvt.PutResponse);
    }),
    DeleteRange: unary(ctx, "etcdserverpb.KV", "DeleteRange", async (req: wire.DeleteRangeRequest, caller) => {
      const r = deleteReq(req);
      const ai = await gate.identify(caller);
      return withHeader(m, (await replicate(ctx, { type: "deleteRange", req: r, ...as(ai) })) as kvt.DeleteRangeResponse);
    }),
    Txn: unary(ctx, "etcdserverpb.KV", "Txn", async (req: wire.TxnRequest, caller) => {
      const r = txnReq(req);
      const ai = await gate.identify(caller);
      if (isReadOnlyTxn(r)) {
        // As etcd: a txn that only reads is served like a range, without a log entry (so no
        // member but this one reads for it), after a read barrier unless every range is
        // serializable.
        const invalid = validateTxn(r, ctx.maxTxnOps);
        if (invalid) throw invalid;
        if (!isSerializableTxn(r)) await m.readBarrier();
        else m.checkReadable();
        // The records are selected now, at one revision, and written out in steps (the answer
        // may be GiBs: one synchronous encoding stopped the member for seconds).
        const sel = m.kv.selectReadTxn(r, ai);
        gate.checkNotStale(ai);
        return new PreEncoded(await encodeTxnAnswer(sel, header(m, sel.revision), nextTick, FRAME_PREFIX_BYTES));
      }
      return withHeader(m, (await replicate(ctx, { type: "txn", req: r, ...as(ai) })) as kvt.TxnResponse);
    }),
    Compact: unary(ctx, "etcdserverpb.KV", "Compact", async (req: wire.CompactionRequest, caller) => {
      const r = compactReq(req);
      // Root only, as etcd now requires: compaction discards every tenant's history.
      await gate.requireAdmin(caller);
      return withHeader(m, (await replicate(ctx, { type: "compact", req: r })) as kvt.CompactionResponse);
    }),
  };
}

function newLeaseId(): string {
  // Positive int63, like etcd's lease IDs.
  return (randomBytes(8).readBigUInt64BE() >> 1n).toString();
}

/** Keys attached to a lease as the store holds them (latin1). */
function leaseKeys(m: Member, id: string): string[] {
  return m.kv.timeToLive(id, true, Date.now()).keys.map((k) => k.toString("latin1"));
}

export function leaseService(ctx: ServiceContext): grpc.UntypedServiceImplementation {
  const m = ctx.member;
  const gate = gateOf(ctx);
  return {
    LeaseGrant: unary(ctx, "etcdserverpb.Lease", "LeaseGrant", async (req: wire.LeaseGrantRequest, caller) => {
      await gate.requireIdentity(caller);
      const id = toId(req.ID) === "0" ? newLeaseId() : toId(req.ID);
      const cmd: KvCommand = { type: "leaseGrant", req: { ID: id, TTL: toNumber(req.TTL) } };
      return withHeader(m, (await replicate(ctx, cmd)) as kvt.LeaseGrantResponse);
    }),
    LeaseRevoke: unary(ctx, "etcdserverpb.Lease", "LeaseRevoke", async (req: wire.LeaseRevokeRequest, caller) => {
      const ai = await gate.identify(caller);
      return withHeader(m, (await replicate(ctx, { type: "leaseRevoke", req: { ID: toId(req.ID) }, ...as(ai) })) as kvt.LeaseRevokeResponse);
    }),
    LeaseTimeToLive: unary(ctx, "etcdserverpb.Lease", "LeaseTimeToLive", async (req: wire.LeaseTimeToLiveRequest, caller) => {
      const ai = await gate.requireIdentity(caller);
      await m.readBarrier();
      const id = toId(req.ID);
      // The attached keys are data: the caller must be allowed to read each of them.
      if (gate.enabled && !gate.store!.isAdmin(ai)) for (const k of leaseKeys(m, id)) gate.check((s) => s.checkRange(ai, k));
      const res = m.kv.timeToLive(id, req.keys, Date.now());
      if (res.TTL === -1) return withHeader(m, res);
      // Only the leader tracks deadlines; ask it for the time left.
      const remaining = await m.leaseRemaining(id);
      return withHeader(m, remaining === -1 ? { ...res, TTL: -1, grantedTTL: 0, keys: [] } : { ...res, TTL: remaining });
    }),
    LeaseLeases: unary(ctx, "etcdserverpb.Lease", "LeaseLeases", async (_req: unknown, caller) => {
      const ai = await gate.requireIdentity(caller);
      await m.readBarrier();
      const res = m.kv.leases();
      if (gate.enabled && !gate.store!.isAdmin(ai)) {
        for (const l of res.leases) for (const k of leaseKeys(m, l.ID)) gate.check((s) => s.checkRange(ai, k));
      }
      return withHeader(m, res);
    }),
    LeaseKeepAlive: (call: grpc.ServerDuplexStream<wire.LeaseKeepAliveRequest, wire.LeaseKeepAliveResponse>) =>
      serveLeaseKeepAlive(m, statusOnDestroy(call), keepAliveCheck(gate, grpcCaller(call, gate.opts.clientCertAuth))),
  };
}

/** etcd's checkLeaseRenew: renewing a lease needs write permission on every key attached to it. */
export function keepAliveCheck(gate: AuthGate, caller: Caller): (m: Member, id: string) => void {
  return (m, id) => {
    if (!gate.enabled) return;
    const ai = gate.identifyNow(caller);
    if (ai === undefined) gate.check((s) => s.checkAdmin(ai));
    if (gate.store!.isAdmin(ai)) return;
    for (const k of leaseKeys(m, id)) gate.check((s) => s.checkPut(ai, k));
  };
}

/**
 * A grpc-js server stream as a MessageStream whose destroy(err) ends the call with err's status
 * (code, details) in its trailers, as etcd ends a failed stream. grpc-js's own destroy(err)
 * drops the stream without any status: the client then waits for one, or sees a reset that
 * clients such as etcd3 take for a failed host (closing every connection to it).
 */
function statusOnDestroy<Req, Res>(call: grpc.ServerDuplexStream<Req, Res>): MessageStream<Req, Res> {
  return {
    write: (msg) => call.write(msg),
    end: () => call.end(),
    destroy: (err) => (err ? call.emit("error", err) : call.destroy()),
    pause: () => call.pause(),
    resume: () => call.resume(),
    on: (event: string, listener: (...a: unknown[]) => void) => call.on(event, listener),
  } as MessageStream<Req, Res>;
}

/** One LeaseKeepAlive stream (gRPC or the HTTP gateway's). */
export function serveLeaseKeepAlive(
  m: Member,
  call: MessageStream<wire.LeaseKeepAliveRequest, wire.LeaseKeepAliveResponse>,
  check: (m: Member, id: string) => void = () => undefined,
): void {
  // Like etcd, every request read before the client half-closes gets its answer, then the stream ends.
  let pending = 0;
  let ended = false;
  let failed = false;
  const settle = () => {
    pending--;
    if (ended && pending === 0 && !failed) call.end();
  };
  call.on("data", (req: wire.LeaseKeepAliveRequest) => {
    const id = toId(req.ID);
    pending++;
    Promise.resolve()
      .then(() => {
        check(m, id);
        return m.leaseKeepAlive(id);
      })
      .then(
      (ttl) => {
        if (!failed) call.write({ header: header(m), ID: id, TTL: String(ttl) });
        settle();
      },
      (err: unknown) => {
        const e = Errors.toEtcd(err);
        // etcd answers a keep-alive for an unknown lease with TTL 0, not with an error.
        if (e.code === grpc.status.NOT_FOUND) {
          if (!failed) call.write({ header: header(m), ID: id, TTL: "0" });
        } else if (!failed) {
          failed = true;
          call.destroy(Object.assign(new Error(e.message), { code: e.code, details: e.message }));
        }
        settle();
      },
    );
  });
  call.on("end", () => {
    ended = true;
    if (pending === 0 && !failed) call.end();
  });
  call.on("error", () => undefined);
}

function wireMember(x: MemberInfo): wire.Member {
  return { ID: String(x.id), name: x.name, peerURLs: x.peerURLs, clientURLs: x.clientURLs, isLearner: x.isLearner };
}

/**
 * Peer URLs a member may be given: exactly what the peer transport can dial (the shared
 * parsePeerUrl: https, a valid host, a port in 1..65535). A URL the transport refuses would
 * otherwise be committed and then fail on every member that applies it.
 */
function validPeerUrls(urls: unknown): urls is string[] {
  if (!Array.isArray(urls) || urls.length === 0) return false;
  return urls.every((u) => {
    if (typeof u !== "string") return false;
    try {
      parsePeerUrl(u);
      return true;
    } catch {
      return false;
    }
  });
}

/** etcd's Cluster service leaves the revision out of its headers (a zero is not sent). */
function clusterHeader(m: Member): wire.ResponseHeader {
  return { ...header(m), revision: "0" };
}

export function clusterService(ctx: ServiceContext): grpc.UntypedServiceImplementation {
  const m = ctx.member;
  const gate = gateOf(ctx);
  const token = m.cfg.initialClusterToken;
  return {
    MemberAdd: unary(ctx, "etcdserverpb.Cluster", "MemberAdd", async (req: wire.MemberAddRequest, caller) => {
      await gate.requireAdmin(caller);
      if (!validPeerUrls(req.peerURLs)) throw Errors.memberBadUrls();
      for (const url of req.peerURLs) if (m.membership.findByPeerUrl(url)) throw Errors.peerUrlExists();
      // etcd 3.4 allows one learner at a time (maxLearners = 1); clients see its refusal.
      if (req.isLearner && m.membership.learners().length >= 1) {
        throw new EtcdError(grpc.status.FAILED_PRECONDITION, "etcdserver: too many learner members in cluster");
      }
      // A new ID even at a removed member's old URL (etcd mixes in the time): peers refuse the
      // removed ID for good, so reusing it would commit a voter that can never join.
      let at = Date.now();
      let id = memberIdFor(req.peerURLs, token, at);
      while (m.membership.has(id) || m.membership.isRemoved(id)) id = memberIdFor(req.peerURLs, token, ++at);
      const members = await m.proposeMemberChange(req.isLearner ? "addLearner" : "addNode", id, { name: "", peerURLs: req.peerURLs });
      const added = members.find((x) => x.id === id);
      return {
        header: clusterHeader(m),
        member: added ? wireMember(added) : { ID: String(id), name: "", peerURLs: req.peerURLs, clientURLs: [], isLearner: req.isLearner },
        members: members.map(wireMember),
      };
    }),
    MemberRemove: unary(ctx, "etcdserverpb.Cluster", "MemberRemove", async (req: wire.MemberRemoveRequest, caller) => {
      await gate.requireAdmin(caller);
      const id = Number(toId(req.ID));
      if (!m.membership.has(id)) throw Errors.memberNotFound();
      const members = await m.proposeMemberChange("removeNode", id, undefined);
      return { header: clusterHeader(m), members: members.map(wireMember) };
    }),
    MemberUpdate: unary(ctx, "etcdserverpb.Cluster", "MemberUpdate", async (req: wire.MemberUpdateRequest, caller) => {
      await gate.requireAdmin(caller);
      const id = Number(toId(req.ID));
      const cur = m.membership.get(id);
      if (!cur) throw Errors.memberNotFound();
      if (!validPeerUrls(req.peerURLs)) throw Errors.memberBadUrls();
      for (const url of req.peerURLs) {
        const owner = m.membership.findByPeerUrl(url);
        if (owner && owner.id !== id) throw Errors.peerUrlExists();
      }
      const members = await m.updateMemberPeerUrls(id, req.peerURLs);
      return { header: clusterHeader(m), members: members.map(wireMember) };
    }),
    MemberList: unary(ctx, "etcdserverpb.Cluster", "MemberList", async (_req: unknown, caller) => {
      m.checkStarted();
      await gate.requireIdentity(caller);
      return { header: clusterHeader(m), members: m.membership.list().map(wireMember) };
    }),
    MemberPromote: unary(ctx, "etcdserverpb.Cluster", "MemberPromote", async (req: wire.MemberPromoteRequest, caller) => {
      await gate.requireAdmin(caller);
      const id = Number(toId(req.ID));
      const cur = m.membership.get(id);
      if (!cur) throw Errors.memberNotFound();
      if (!cur.isLearner) throw Errors.memberNotLearner();
      if (!(await m.learnerReady(id))) throw Errors.learnerNotReady();
      const members = await m.proposeMemberChange("promote", id, undefined);
      return { header: clusterHeader(m), members: members.map(wireMember) };
    }),
  };
}

/**
 * etcd 3.4's authMaintenanceServer hands the auth store's own errors to gRPC unconverted:
 * clients see code Unknown and "auth: ..." (e.g. `auth: permission denied`) for Snapshot,
 * Defragment, Hash and HashKV, and we answer them the same way.
 */
const RAW_AUTH_ERRORS: Record<string, string> = {
  "etcdserver: permission denied": "auth: permission denied",
  "etcdserver: user name is empty": "auth: user name is empty",
  "etcdserver: user name not found": "auth: user not found",
  "etcdserver: invalid auth token": "auth: invalid auth token",
};

async function requireAdminRaw(gate: AuthGate, caller: Caller | undefined): Promise<void> {
  try {
    await gate.requireAdmin(caller);
  } catch (e) {
    const raw = e instanceof Error ? RAW_AUTH_ERRORS[e.message] : undefined;
    if (raw !== undefined) throw new EtcdError(grpc.status.UNKNOWN, raw);
    throw e;
  }
}

export function maintenanceService(ctx: ServiceContext): grpc.UntypedServiceImplementation {
  const m = ctx.member;
  const gate = gateOf(ctx);
  return {
    Status: unary(ctx, "etcdserverpb.Maintenance", "Status", async (_req: unknown, caller) => {
      await gate.requireIdentity(caller);
      const st = m.status();
      return {
        header: header(m),
        version: ETCD_API_VERSION,
        dbSize: String(st.dbSize),
        leader: String(st.leader),
        raftIndex: String(st.commitIndex),
        raftTerm: String(st.term),
        raftAppliedIndex: String(st.appliedIndex),
        errors: m.alarms().map((a) => `memberID:${a.memberID} alarm:${a.alarm}`),
        dbSizeInUse: String(st.dbSize),
        isLearner: st.isLearner,
      };
    }),
    Alarm: unary(ctx, "etcdserverpb.Maintenance", "Alarm", async (req: wire.AlarmRequest, caller) => {
      // Anyone known may list alarms; only root raises or clears them (a NOSPACE stops every tenant's writes).
      if (req.action === "GET") await gate.requireIdentity(caller);
      else await gate.requireAdmin(caller);
      // etcd answers alarm requests without a header (`etcdctl alarm list -w json` prints {}).
      if (req.action === "GET") return { alarms: m.alarms() };
      const res = (await replicate(ctx, {
        type: "alarm",
        req: { action: req.action, memberID: toId(req.memberID), alarm: req.alarm },
      })) as kvt.AlarmResponse;
      return { alarms: res.alarms };
    }),
    Hash: unary(ctx, "etcdserverpb.Maintenance", "Hash", async (_req: unknown, caller) => {
      m.checkStarted();
      await requireAdminRaw(gate, caller);
      // Digested in steps: a synchronous pass over a large store would stop the member. The
      // header is the hashed state's.
      const hdr = header(m);
      return { header: hdr, hash: await m.kv.hashAsync(nextTick) };
    }),
    HashKV: unary(ctx, "etcdserverpb.Maintenance", "HashKV", async (req: wire.HashKVRequest, caller) => {
      m.checkStarted();
      await requireAdminRaw(gate, caller);
      return withHeader(m, await m.kv.hashKVAsync(toNumber(req.revision), nextTick));
    }),
    Defragment: unary(ctx, "etcdserverpb.Maintenance", "Defragment", async (_req: unknown, caller) => {
      await requireAdminRaw(gate, caller);
      return { header: header(m) };
    }),
    MoveLeader: unary(ctx, "etcdserverpb.Maintenance", "MoveLeader", async (req: { targetID: string }, caller) => {
      await gate.requireAdmin(caller);
      await m.moveLeader(Number(toId(req.targetID)));
      return { header: header(m) };
    }),
    Snapshot: async (call: grpc.ServerWritableStream<unknown, wire.SnapshotResponse>) => {
      try {
        m.checkStarted();
        // The whole key space, every tenant's: root only.
        await requireAdminRaw(gate, grpcCaller(call, gate.opts.clientCertAuth));
      } catch (err) {
        const e = Errors.toEtcd(err);
        // An error event ends the call with this status (destroy() would drop the stream without one).
        return void call.emit("error", Object.assign(new Error(e.message), { code: e.code, details: e.message }));
      }
      // etcd's backend format (bbolt + SHA-256) of the state as of now, produced page by page as the client takes it.
      const ms = m.membership.toState();
      const fail = (e: unknown): void => {
        const msg = `snapshot: ${(e as Error).message}`;
        call.emit("error", Object.assign(new Error(msg), { code: grpc.status.INTERNAL, details: msg }));
      };
      etcdSnapshotChunksAsync({ kv: m.kv.view(), members: ms.members, removedMembers: ms.removed }).then((snap) => {
        let sent = 0;
        const pump = (): void => {
          try {
            while (!call.cancelled) {
              const next = snap.chunks.next();
              if (next.done) return void call.end();
              sent += next.value.length;
              if (!call.write({ header: header(m), remaining_bytes: String(snap.size - sent), blob: next.value })) return void call.once("drain", pump);
            }
          } catch (e) {
            fail(e);
          }
        };
        pump();
      }, fail);
    },
  };
}

/** etcd's isWatchPermitted, checked at each watch creation: read permission on the watched range. */
export function watchCheck(gate: AuthGate, caller: Caller): (key: Buffer, end: Buffer | undefined) => Error | undefined {
  return (key, end) => {
    try {
      const ai = gate.identifyNow(caller);
      gate.check((s) => s.checkRange(ai, key, end));
      return undefined;
    } catch (e) {
      return e as Error;
    }
  };
}

export function watchService(ctx: ServiceContext): grpc.UntypedServiceImplementation {
  const gate = gateOf(ctx);
  return {
    Watch: (call: grpc.ServerDuplexStream<wire.WatchRequest, wire.WatchResponse>) =>
      serveWatch(ctx.member, call, watchCheck(gate, grpcCaller(call, gate.opts.clientCertAuth))),
  };
}

export function authService(ctx: ServiceContext): grpc.UntypedServiceImplementation {
  const m = ctx.member;
  const handlers = authHandlers({ gate: gateOf(ctx), member: m, header: (rev) => header(m, rev), replicate: (cmd) => replicate(ctx, cmd) });
  return Object.fromEntries(Object.entries(handlers).map(([method, f]) => [method, unary(ctx, "etcdserverpb.Auth", method, f)]));
}
