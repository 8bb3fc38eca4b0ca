/**
 * etcd's client-facing errors: gRPC status code + the exact message string. Clients (etcdctl,
 * clientv3, the etcd3 npm package) match on these strings, so they are protocol, not prose.
 */
import { status as Status } from "@grpc/grpc-js";

export class EtcdError extends Error {
  constructor(
    readonly code: Status,
    message: string,
  ) {
    super(message);
  }
}

const e = (code: Status, message: string) => () => new EtcdError(code, message);

export const Errors = {
  noLeader: e(Status.UNAVAILABLE, "etcdserver: no leader"),
  notLeader: e(Status.FAILED_PRECONDITION, "etcdserver: not leader"),
  timeout: e(Status.UNAVAILABLE, "etcdserver: request timed out"),
  stopped: e(Status.UNAVAILABLE, "etcdserver: server stopped"),
  corrupt: e(Status.DATA_LOSS, "etcdserver: corrupt cluster"),
  memberNotFound: e(Status.NOT_FOUND, "etcdserver: member not found"),
  peerUrlExists: e(Status.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists"),
  memberBadUrls: e(Status.INVALID_ARGUMENT, "etcdserver: given member URLs are invalid"),
  memberNotLearner: e(Status.FAILED_PRECONDITION, "etcdserver: can only promote a learner member"),
  learnerNotReady: e(Status.FAILED_PRECONDITION, "etcdserver: can only promote a learner member which is in sync with leader"),
  badLeaderTransferee: e(Status.FAILED_PRECONDITION, "etcdserver: bad leader transferee"),
  unhealthyCluster: e(Status.UNAVAILABLE, "etcdserver: unhealthy cluster"),
  timeoutLeaderTransfer: e(Status.UNAVAILABLE, "etcdserver: request timed out, leader transfer took too long"),
  /** Anything the raft core refused that is not "no leader" (dropped proposal, change in flight). */
  fromRaft(err: unknown): EtcdError {
    const msg = err instanceof Error ? err.message : String(err);
    if (/conf ?change/i.test(msg)) return new EtcdError(Status.FAILED_PRECONDITION, "etcdserver: unhealthy cluster");
    return new EtcdError(Status.UNAVAILABLE, "etcdserver: request timed out");
  },
  /** Normalises any thrown value into an EtcdError for the wire. */
  toEtcd(err: unknown): EtcdError {
    if (err instanceof EtcdError) return err;
    const coded = err as { code?: unknown; grpcCode?: unknown; message?: unknown };
    if (err instanceof Error && typeof coded.grpcCode === "number") return new EtcdError(coded.grpcCode, err.message);
    if (err instanceof Error && typeof coded.code === "string" && coded.code in Status) {
      return new EtcdError(Status[coded.code as keyof typeof Status] as Status, err.message);
    }
    return new EtcdError(Status.INTERNAL, err instanceof Error ? err.message : String(err));
  },
};
