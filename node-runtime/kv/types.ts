/**
 * Request and response shapes of the etcd v3 KV, Lease and Maintenance APIs as the state
 * machine sees them. Field names are etcd's proto names in snake_case (the server loads the
 * protos with proto-loader `keepCase: true`, `enums: String`), bytes are Buffers, revisions /
 * versions / counts / TTLs are numbers and 64-bit IDs are decimal strings ("0" = none).
 * The server converts int64 strings from the wire to numbers before calling in.
 */
import type { AuthApplyResult, AuthRequest, RequestAuth } from './auth';

export interface ResponseHeader {
  /** Filled by the server for top-level responses; the store leaves "0". */
  cluster_id: string;
  member_id: string;
  revision: number;
  raft_term: number;
}

export interface KeyValue {
  key: Buffer;
  create_revision: number;
  mod_revision: number;
  version: number;
  value: Buffer;
  lease: string;
}

export type SortOrder = 'NONE' | 'ASCEND' | 'DESCEND';
export type SortTarget = 'KEY' | 'VERSION' | 'CREATE' | 'MOD' | 'VALUE';

export interface RangeRequest {
  key: Buffer;
  range_end?: Buffer;
  limit?: number;
  revision?: number;
  sort_order?: SortOrder;
  sort_target?: SortTarget;
  serializable?: boolean;
  keys_only?: boolean;
  count_only?: boolean;
  min_mod_revision?: number;
  max_mod_revision?: number;
  min_create_revision?: number;
  max_create_revision?: number;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

export interface PutRequest {
  key: Buffer;
  value?: Buffer;
  lease?: string;
  prev_kv?: boolean;
  ignore_value?: boolean;
  ignore_lease?: boolean;
}

export interface PutResponse {
  header: ResponseHeader;
  prev_kv?: KeyValue;
}

export interface DeleteRangeRequest {
  key: Buffer;
  range_end?: Buffer;
  prev_kv?: boolean;
}

export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: number;
  prev_kvs: KeyValue[];
}

export type CompareResult = 'EQUAL' | 'GREATER' | 'LESS' | 'NOT_EQUAL';
export type CompareTarget = 'VERSION' | 'CREATE' | 'MOD' | 'VALUE' | 'LEASE';

/**
 * `target` selects which of the union fields is compared (like etcd, a missing union field
 * compares as 0 / empty). `target_union` is what proto-loader's `oneofs: true` adds; it is
 * accepted and ignored.
 */
export interface Compare {
  result: CompareResult;
  target: CompareTarget;
  key: Buffer;
  range_end?: Buffer;
  version?: number;
  create_revision?: number;
  mod_revision?: number;
  value?: Buffer;
  lease?: string;
  target_union?: string;
}

/** Exactly one of the request_* fields is set (proto-loader adds `request` naming it). */
export interface RequestOp {
  request_range?: RangeRequest;
  request_put?: PutRequest;
  request_delete_range?: DeleteRangeRequest;
  request_txn?: TxnRequest;
  request?: string;
}

export interface ResponseOp {
  response_range?: RangeResponse;
  response_put?: PutResponse;
  response_delete_range?: DeleteRangeResponse;
  response_txn?: TxnResponse;
  response: 'response_range' | 'response_put' | 'response_delete_range' | 'response_txn';
}

export interface TxnRequest {
  compare?: Compare[];
  success?: RequestOp[];
  failure?: RequestOp[];
}

export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactionRequest {
  revision: number;
  physical?: boolean;
}

export interface CompactionResponse {
  header: ResponseHeader;
}

export interface LeaseGrantRequest {
  /** Chosen by the proposing member ("0" lets the state machine derive one from the index). */
  ID: string;
  TTL: number;
}

export interface LeaseGrantResponse {
  header: ResponseHeader;
  ID: string;
  TTL: number;
  error: string;
}

export interface LeaseRevokeRequest {
  ID: string;
}

export interface LeaseRevokeResponse {
  header: ResponseHeader;
}

export interface LeaseTimeToLiveResponse {
  header: ResponseHeader;
  ID: string;
  /** Remaining seconds; -1 when the lease does not exist (etcd answers so, not with an error). */
  TTL: number;
  grantedTTL: number;
  keys: Buffer[];
}

export interface LeaseStatus {
  ID: string;
}

export interface LeaseLeasesResponse {
  header: ResponseHeader;
  leases: LeaseStatus[];
}

export type AlarmType = 'NONE' | 'NOSPACE' | 'CORRUPT';
export type AlarmAction = 'GET' | 'ACTIVATE' | 'DEACTIVATE';

export interface AlarmMember {
  memberID: string;
  alarm: AlarmType;
}

export interface AlarmRequest {
  action: AlarmAction;
  memberID: string;
  alarm: AlarmType;
}

export interface AlarmResponse {
  header: ResponseHeader;
  alarms: AlarmMember[];
}

export type EventType = 'PUT' | 'DELETE';

export interface Event {
  type: EventType;
  kv: KeyValue;
  prev_kv?: KeyValue;
}

export interface HashKVResponse {
  header: ResponseHeader;
  hash: number;
  compact_revision: number;
}

/**
 * One command replicated through the raft log. `auth` is who sent it (etcd's request header
 * username + auth revision): with auth enabled, the apply checks its permissions, so a grant
 * revoked between the API layer and the apply is honoured.
 */
export type KvCommand = (
  | { type: 'put'; req: PutRequest }
  | { type: 'deleteRange'; req: DeleteRangeRequest }
  | { type: 'txn'; req: TxnRequest }
  | { type: 'compact'; req: CompactionRequest }
  | { type: 'leaseGrant'; req: LeaseGrantRequest }
  | { type: 'leaseRevoke'; req: LeaseRevokeRequest }
  | { type: 'alarm'; req: AlarmRequest }
  | { type: 'auth'; req: AuthRequest }
) & { auth?: RequestAuth };

/** The answer to an applied auth command (the token of an authenticate, tokens to drop). */
export interface AuthResponse {
  header: ResponseHeader;
  result: AuthApplyResult;
}

export type KvResponse =
  | PutResponse
  | DeleteRangeResponse
  | TxnResponse
  | CompactionResponse
  | LeaseGrantResponse
  | LeaseRevokeResponse
  | AlarmResponse
  | AuthResponse;

export function header(revision: number): ResponseHeader {
  return { cluster_id: '0', member_id: '0', revision, raft_term: 0 };
}
