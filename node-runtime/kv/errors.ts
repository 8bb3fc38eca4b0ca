/**
 * Errors the state machine and request validation return, with etcd 3.4's gRPC status code
 * and exact message: clients (etcdctl, the etcd3 npm client, clientv3) match on the text.
 */

export type GrpcCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'FAILED_PRECONDITION'
  | 'OUT_OF_RANGE'
  | 'RESOURCE_EXHAUSTED'
  | 'DATA_LOSS'
  | 'PERMISSION_DENIED'
  | 'UNAUTHENTICATED';

/** Numeric gRPC status codes, so the server can build a status without a lookup table. */
export const GRPC_STATUS: Record<GrpcCode, number> = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  FAILED_PRECONDITION: 9,
  RESOURCE_EXHAUSTED: 8,
  OUT_OF_RANGE: 11,
  DATA_LOSS: 15,
  PERMISSION_DENIED: 7,
  UNAUTHENTICATED: 16,
};

export class KvError extends Error {
  constructor(
    readonly code: GrpcCode,
    message: string,
  ) {
    super(message);
    this.name = 'KvError';
  }

  get grpcStatus(): number {
    return GRPC_STATUS[this.code];
  }
}

/** A watch asked for history that compaction removed; etcd cancels it with this revision. */
export class WatchCompactedError extends KvError {
  constructor(readonly compact_revision: number) {
    super('OUT_OF_RANGE', MSG.compacted);
    this.name = 'WatchCompactedError';
  }
}

export const MSG = {
  compacted: 'etcdserver: mvcc: required revision has been compacted',
  futureRev: 'etcdserver: mvcc: required revision is a future revision',
  leaseNotFound: 'etcdserver: requested lease not found',
  leaseExists: 'etcdserver: lease already exists',
  leaseTTLTooLarge: 'etcdserver: too large lease TTL',
  tooManyOps: 'etcdserver: too many operations in txn request',
  duplicateKey: 'etcdserver: duplicate key given in txn request',
  emptyKey: 'etcdserver: key is not provided',
  keyNotFound: 'etcdserver: key not found',
  noSpace: 'etcdserver: mvcc: database space exceeded',
  requestTooLarge: 'etcdserver: request is too large',
  valueProvided: 'etcdserver: value is provided',
  leaseProvided: 'etcdserver: lease is provided',
  notLeader: 'etcdserver: not leader',
  corrupt: 'etcdserver: corrupt cluster',
} as const;

export const errCompacted = (): KvError => new KvError('OUT_OF_RANGE', MSG.compacted);
export const errFutureRev = (): KvError => new KvError('OUT_OF_RANGE', MSG.futureRev);
export const errLeaseNotFound = (): KvError => new KvError('NOT_FOUND', MSG.leaseNotFound);
export const errLeaseExists = (): KvError => new KvError('FAILED_PRECONDITION', MSG.leaseExists);
export const errLeaseTTLTooLarge = (): KvError => new KvError('OUT_OF_RANGE', MSG.leaseTTLTooLarge);
export const errTooManyOps = (): KvError => new KvError('INVALID_ARGUMENT', MSG.tooManyOps);
export const errDuplicateKey = (): KvError => new KvError('INVALID_ARGUMENT', MSG.duplicateKey);
export const errEmptyKey = (): KvError => new KvError('INVALID_ARGUMENT', MSG.emptyKey);
export const errKeyNotFound = (): KvError => new KvError('INVALID_ARGUMENT', MSG.keyNotFound);
export const errNoSpace = (): KvError => new KvError('RESOURCE_EXHAUSTED', MSG.noSpace);
export const errRequestTooLarge = (): KvError => new KvError('INVALID_ARGUMENT', MSG.requestTooLarge);
export const errValueProvided = (): KvError => new KvError('INVALID_ARGUMENT', MSG.valueProvided);
export const errLeaseProvided = (): KvError => new KvError('INVALID_ARGUMENT', MSG.leaseProvided);
export const errNotLeader = (): KvError => new KvError('FAILED_PRECONDITION', MSG.notLeader);
export const errCorrupt = (): KvError => new KvError('DATA_LOSS', MSG.corrupt);
/** grpc-go's refusal of a response over its send limit, which is what etcd answers (at least `size` bytes). */
export const errResponseTooLarge = (size: number, max: number): KvError =>
  new KvError('RESOURCE_EXHAUSTED', `grpc: trying to send message larger than max (${size} vs. ${max})`);
/**
 * A field no etcd client can send (protobuf cannot carry it): not an int64, an unknown enum
 * value, an ID that is not a decimal int64. Only hand-made requests get here.
 */
export const errInvalidField = (field: string): KvError => new KvError('INVALID_ARGUMENT', `etcdserver: invalid ${field} in request`);
